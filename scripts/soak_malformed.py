#!/usr/bin/env python3
"""Explains the frames tshark's MSRP dissector flags as malformed in a soak capture.

    soak_malformed.py CAPTURE MSRP_PORT [DECODE_PORT...]

Wireshark 4.0's MSRP dissector adds a message body to its tree as a UTF-8 string; for some
binary bodies (seen: a `;` byte among the first bytes, as in `msrp load`'s 24-byte binary
sequence header when a session index or sequence number byte is 0x3b) it throws, and the
frame shows as "Malformed Packet (Exception occurred)" although the message is well formed.
For every flagged frame this script rebuilds its TCP payload as a lone packet (its own TCP
stream) in a fresh capture twice: as captured, and with the `;` bytes of the SEND bodies (not
the heads) replaced by `:`. A frame is "explained" when the lone copy is still flagged (the
verdict does not depend on the rest of the capture) and the copy with only body bytes changed
is clean: its start line, headers and end-line are then what the dissector accepts. Every
other flagged frame is "unexplained", and the soak fails.

Prints one JSON object: flagged, explained, unexplained (frame numbers), and the first
unexplained frame's payload start.
"""
import json
import re
import struct
import subprocess
import sys
import tempfile

END = re.compile(rb"\r\n-------([A-Za-z0-9.+%=-]+)[$+#]\r\n")
START = re.compile(rb"MSRP ([A-Za-z0-9.+%=-]+) SEND\r\n")


def tshark_fields(path, decode, filt, fields):
    cmd = ["tshark", "-r", path, *decode, "-Y", filt, "-T", "fields"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [l.split("\t") for l in out.splitlines() if l.strip()]


def fix_bodies(p):
    """The payload with ';' replaced by ':' in the bodies of complete SENDs in it."""
    out = bytearray(p)
    for m in START.finditer(p):
        head_end = p.find(b"\r\n\r\n", m.end() - 2)
        if head_end < 0:
            continue
        tid = m.group(1)
        e = p.find(b"\r\n-------" + tid, head_end + 4)
        if e < 0:
            e = len(p)
        for i in range(head_end + 4, e):
            if out[i] == 0x3B:
                out[i] = 0x3A
    return bytes(out)


def write_pcap(path, dport, payloads):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 101))
        for k, p in enumerate(payloads):
            tcp = struct.pack(">HHIIBBHHH", 20000 + k, dport, 1, 1, 5 << 4, 0x18, 65535, 0, 0)
            ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(p), k & 0xFFFF,
                             0x4000, 64, 6, 0, bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
            pkt = ip + tcp + p
            f.write(struct.pack("<IIII", k, 0, len(pkt), len(pkt)))
            f.write(pkt)


def main():
    cap, port = sys.argv[1], int(sys.argv[2])
    decode = ["-d", f"tcp.port=={port},msrp"]
    for extra in sys.argv[3:]:
        decode += ["-d", f"tcp.port=={extra},msrp"]
    flagged = tshark_fields(cap, decode, "_ws.malformed || _ws.expert.severity == error",
                            ["frame.number", "tcp.payload"])
    frames = [int(r[0]) for r in flagged]
    payloads = [bytes.fromhex(r[1].replace(":", "")) if len(r) > 1 else b"" for r in flagged]
    explained, unexplained = [], []
    if frames:
        with tempfile.TemporaryDirectory() as d:
            lone, fixed = f"{d}/lone.pcap", f"{d}/fixed.pcap"
            write_pcap(lone, port, payloads)
            write_pcap(fixed, port, [fix_bodies(p) for p in payloads])
            dec = ["-d", f"tcp.port=={port},msrp"]
            bad_lone = {int(r[0]) for r in tshark_fields(lone, dec, "_ws.malformed", ["frame.number"])}
            bad_fixed = {int(r[0]) for r in tshark_fields(fixed, dec, "_ws.malformed || _ws.expert.severity == error", ["frame.number"])}
            sends = {int(r[0]) for r in tshark_fields(fixed, dec, "msrp.method == \"SEND\"", ["frame.number"])}
        for k, (n, p) in enumerate(zip(frames, payloads)):
            i = k + 1
            if i in bad_lone and i not in bad_fixed and i in sends and fix_bodies(p) != p:
                explained.append(n)
            else:
                unexplained.append(n)
    first = None
    if unexplained:
        p = payloads[frames.index(unexplained[0])]
        first = p[:200].decode("latin-1")
    print(json.dumps({"flagged": len(frames), "explained": len(explained),
                      "unexplained": unexplained[:50], "unexplained_count": len(unexplained),
                      "first_unexplained_payload": first}))


if __name__ == "__main__":
    main()
