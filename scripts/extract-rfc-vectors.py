#!/usr/bin/env python3
"""Extract every MSRP message example of RFC 4975 and RFC 4976 into test vectors.

Run once, by hand, from the repository root:

    python3 scripts/extract-rfc-vectors.py /path/to/rfc-dir

It writes msrp-proto/tests/vectors/*.msrp with CRLF line endings. The tests never read the
RFC texts; they read the stored vectors. What this script changes in the examples, and why,
is listed in msrp-proto/tests/vectors/README.md (FIXES below).
"""
import os
import re
import sys

START = re.compile(r"^( +)MSRP ([A-Za-z0-9][A-Za-z0-9.+%=-]{3,31}) ([A-Z]+|\d{3}(?: .*)?)$")
END = re.compile(r"^-------([A-Za-z0-9][A-Za-z0-9.+%=-]{3,31})([$+#])$")
PAGE_FOOTER = re.compile(r"^(Campbell|Jennings), et al\. .*\[Page \d+\]$")
PAGE_HEADER = re.compile(r"^RFC 497[56] .* September 2007$")


def strip_pages(lines):
    """Remove page footers/headers, the form feed, and the blank padding around them.
    Returns the lines and the set of output indices where a page break was removed."""
    out, breaks = [], set()
    i = 0
    while i < len(lines):
        if PAGE_FOOTER.match(lines[i]):
            while out and out[-1].strip() == "":
                out.pop()
            i += 1
            while i < len(lines) and (lines[i].strip() in ("", "\f") or PAGE_HEADER.match(lines[i].lstrip("\f"))):
                i += 1
            breaks.add(len(out))
            continue
        out.append(lines[i])
        i += 1
    return out, breaks


def extract(path, rfc):
    with open(path, encoding="utf-8") as f:
        lines, breaks = strip_pages(f.read().split("\n"))
    msgs = []
    i = 0
    while i < len(lines):
        m = START.match(lines[i])
        if not m:
            i += 1
            continue
        indent = len(m.group(1))
        tid = m.group(2)
        block = [lines[i][indent:]]
        broke_after = []  # block indices after which a page break was removed
        j = i + 1
        ended = False
        while j < len(lines):
            if j in breaks:
                broke_after.append(len(block) - 1)
            line = lines[j]
            if START.match(line) or (line.strip() and len(line) - len(line.lstrip(" ")) < indent):
                break
            block.append(line[indent:] if line.strip() else "")
            j += 1
            if END.match(block[-1]):
                ended = True
                break
        # trailing blank lines are not part of the message
        while block and block[-1] == "":
            block.pop()
        msgs.append({"rfc": rfc, "tid": tid, "lines": block, "ended": ended,
                     "breaks": broke_after, "line": i + 1})
        i = j
    return msgs


def join_continuations(lines):
    """RFC 4976 §5.1/§3: 'A "\\" in the examples shows a line continuation [...] Neither the
    backslash, nor the extra CRLF is included in the actual request.' Only header lines."""
    out = []
    in_body = False
    for line in lines:
        if in_body:
            out.append(line)
            continue
        if line == "":
            in_body = True
            out.append(line)
            continue
        if out and line.startswith(" ") and (out[-1].endswith("\\") or out[-1].endswith(",")):
            prev = out.pop()
            if prev.endswith("\\"):
                prev = prev[:-1]
            else:
                # FIX: 'Authorization: Digest username="Alice",' lacks its backslash.
                prev = prev + " "
            out.append(prev + line.lstrip(" "))
            continue
        out.append(line)
    return out


def main():
    rfcdir = sys.argv[1] if len(sys.argv) > 1 else "../shared/rfc"
    outdir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "msrp-proto", "tests", "vectors")
    os.makedirs(os.path.join(outdir, "abridged"), exist_ok=True)
    report = []
    for rfc in ("4975", "4976"):
        msgs = extract(os.path.join(rfcdir, f"rfc{rfc}.txt"), rfc)
        for n, msg in enumerate(msgs, 1):
            lines = msg["lines"]
            if rfc == "4976":
                lines = join_continuations(lines)
            start = lines[0].split(" ")
            kind = start[2]
            notes = []
            # A page break fell between the headers and the body: restore the blank line.
            for b in msg["breaks"]:
                if b < len(lines) and lines[b].lower().startswith("content-type:") and lines[b + 1:b + 2] != [""]:
                    lines = lines[:b + 1] + [""] + lines[b + 1:]
                    notes.append("blank line before the body restored (lost at a page break)")
            if not msg["ended"]:
                lines = lines + [f"-------{msg['tid']}$"]
                notes.append("end-line missing in the RFC (page break); added")
            name = f"rfc{rfc}-{n:02d}-{msg['tid']}-{kind}.msrp"
            abridged = rfc == "4975" and not any(l.lower().startswith("to-path:") for l in lines)
            data = "".join(l + "\r\n" for l in lines).encode("utf-8")
            if abridged:
                with open(os.path.join(outdir, "abridged", name), "wb") as f:
                    f.write(data)
                notes.append("abridged in the RFC (no To-Path/From-Path): stored in abridged/ as is; "
                             "a completed copy with Figure 2's paths is in the main directory")
                # completed copy: the paths of Figure 2 (RFC 4975 §4)
                full = [lines[0],
                        "To-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp",
                        "From-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp"] + lines[1:]
                data = "".join(l + "\r\n" for l in full).encode("utf-8")
            with open(os.path.join(outdir, name), "wb") as f:
                f.write(data)
            report.append((name, notes))
    for name, notes in report:
        print(f"{name}\t{'; '.join(notes)}")


if __name__ == "__main__":
    main()
