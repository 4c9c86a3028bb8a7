//! The CLI's help, completions and man pages: every command (found by walking `--help`
//! itself, so new subcommands are covered without editing this test) prints its usage with
//! `--help` and exits 0; the main commands give examples; completions and man pages are
//! generated for every command.

use std::collections::BTreeSet;
use std::process::{Command, Output};

fn msrp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_msrp"))
        .args(args)
        .output()
        .expect("run msrp")
}

/// The names listed under "Commands:" in a help text (without clap's `help`).
fn subcommands(help: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut inside = false;
    for line in help.lines() {
        if line == "Commands:" {
            inside = true;
            continue;
        }
        if inside {
            if !line.starts_with("  ") {
                break;
            }
            // Entries are indented by two; wrapped descriptions by more.
            if line.as_bytes().get(2).is_some_and(|b| *b != b' ') {
                let name = line.split_whitespace().next().unwrap().to_string();
                if name != "help" {
                    names.push(name);
                }
            }
        }
    }
    names
}

/// Every command path, from `msrp --help` down (e.g. ["sdp", "plan"]).
fn all_commands() -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut todo = vec![Vec::<String>::new()];
    while let Some(path) = todo.pop() {
        assert!(out.len() < 200, "runaway command tree");
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let o = msrp(&args);
        let help = String::from_utf8(o.stdout).expect("utf-8 help");
        assert_eq!(o.status.code(), Some(0), "msrp {args:?}: {help}");
        let usage = format!("Usage: msrp {}", path.join(" "));
        assert!(
            help.contains(usage.trim_end()),
            "msrp {args:?} lacks {usage:?}:\n{help}"
        );
        assert!(help.lines().count() > 3, "msrp {args:?}: {help}");
        for sub in subcommands(&help) {
            let mut p = path.clone();
            p.push(sub);
            todo.push(p);
        }
        out.push(path);
    }
    out
}

#[test]
fn every_command_has_help_with_usage_and_exit_0() {
    let cmds = all_commands();
    let names: BTreeSet<String> = cmds.iter().map(|p| p.join(" ")).collect();
    // The commands the issues promise are all there, nested ones included.
    for must in [
        "",
        "demo",
        "offer",
        "answer",
        "relay",
        "relay hash-password",
        "load",
        "nat-check",
        "sdp",
        "sdp offer",
        "sdp answer",
        "sdp plan",
        "parse",
        "completions",
        "man",
        "version",
    ] {
        assert!(
            names.contains(must),
            "missing command {must:?} in {names:?}"
        );
    }
    // -h works too (short help).
    for p in &cmds {
        let mut args: Vec<&str> = p.iter().map(String::as_str).collect();
        args.push("-h");
        let o = msrp(&args);
        assert_eq!(o.status.code(), Some(0), "msrp {args:?}");
        assert!(!o.stdout.is_empty());
    }
}

#[test]
fn main_commands_give_examples_and_exit_codes() {
    for cmd in [
        "",
        "demo",
        "offer",
        "answer",
        "relay",
        "load",
        "nat-check",
        "sdp",
        "parse",
    ] {
        let args: Vec<&str> = cmd.split_whitespace().chain(["--help"]).collect();
        let help = String::from_utf8(msrp(&args).stdout).unwrap();
        assert!(help.contains("\nExamples:\n"), "msrp {cmd} --help: {help}");
        assert!(help.contains("Exit status"), "msrp {cmd} --help: {help}");
        // Each example line starts with a command that exists.
        for line in help.lines().filter(|l| l.starts_with("  msrp ")) {
            let sub = line.split_whitespace().nth(1).unwrap();
            let o = msrp(&[sub, "--help"]);
            assert_eq!(o.status.code(), Some(0), "example {line:?}");
        }
    }
    let top = String::from_utf8(msrp(&["--help"]).stdout).unwrap();
    assert!(top.contains("RUST_LOG"));
    assert!(top.contains("2 usage"));
}

#[test]
fn usage_errors_exit_2_and_name_the_problem() {
    let o = msrp(&["offer", "--no-such-flag"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.contains("--no-such-flag"), "{err}");
    let o = msrp(&["demo", "--size", "99999"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8(o.stderr).unwrap().contains("--size"));
}

#[test]
fn completions_for_every_shell_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let o = msrp(&["completions", shell]);
        assert_eq!(o.status.code(), Some(0), "{shell}");
        let script = String::from_utf8(o.stdout).unwrap();
        for word in ["nat-check", "demo", "remote-sdp", "hash-password"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    // The bash script is valid bash (when bash is installed, which Debian always has).
    if let Ok(s) = Command::new("bash").arg("--version").output() {
        if s.status.success() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("msrp.bash");
            std::fs::write(&path, msrp(&["completions", "bash"]).stdout).unwrap();
            let check = Command::new("bash").arg("-n").arg(&path).output().unwrap();
            assert!(
                check.status.success(),
                "{}",
                String::from_utf8_lossy(&check.stderr)
            );
        }
    }
    let o = msrp(&["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn man_pages_cover_every_command() {
    let o = msrp(&["man"]);
    assert_eq!(o.status.code(), Some(0));
    let page = String::from_utf8(o.stdout).unwrap();
    assert!(page.contains(".TH msrp 1"), "{page}");
    assert!(page.contains(".SH NAME"));
    assert!(page.contains(".SH SUBCOMMANDS") || page.contains("msrp\\-demo"));

    let dir = tempfile::tempdir().unwrap();
    let o = msrp(&["man", "--out-dir", dir.path().to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for path in all_commands() {
        let name = std::iter::once("msrp".to_string())
            .chain(path)
            .collect::<Vec<_>>()
            .join("-");
        let file = dir.path().join(format!("{name}.1"));
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(text.contains(&format!(".TH {name} 1")), "{name}: {text}");
    }
}
