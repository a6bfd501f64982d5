//! `completions` and `man` as a packager runs them: the real binary's output,
//! checked against the command line clap parses, so a new subcommand or option
//! that either generator leaves out fails here.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Output, Stdio};

use clap::CommandFactory;
use masv_key_rotator::cli::Cli;
use masv_key_rotator::exit::Exit;

fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_masv-key-rotator"))
        .args(args)
        .env_remove("MASV_KEY_ROTATOR_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// Every subcommand (but clap's `help`) with the long options it accepts,
/// globals included, read from clap's own definition, not from the generators.
fn subcommands_and_options() -> BTreeMap<String, Vec<String>> {
    let mut cmd = Cli::command();
    cmd.build();
    let subs: BTreeMap<String, Vec<String>> = cmd
        .get_subcommands()
        .filter(|s| s.get_name() != "help" && !s.is_hide_set())
        .map(|s| {
            let longs = s
                .get_arguments()
                .filter(|a| !a.is_hide_set())
                .filter_map(|a| a.get_long().map(str::to_string))
                .collect();
            (s.get_name().to_string(), longs)
        })
        .collect();
    // The list cannot be vacuous: the spec's commands and the two new ones.
    for name in [
        "run",
        "once",
        "status",
        "history",
        "report",
        "rotate",
        "check-config",
        "demo",
        "completions",
        "man",
    ] {
        assert!(subs.contains_key(name), "clap lost {name}: {subs:?}");
    }
    assert!(subs["history"].contains(&"follow".to_string()));
    subs
}

/// How each shell's script spells a long option.
fn spelled(shell: &str, long: &str) -> String {
    match shell {
        "fish" => format!("-l {long}"),
        _ => format!("--{long}"),
    }
}

#[test]
fn completions_name_every_subcommand_and_option_for_each_shell() {
    let subs = subcommands_and_options();
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout(&bin(&["completions", shell]));
        for (name, longs) in &subs {
            assert!(script.contains(name.as_str()), "{shell}: no {name}");
            for long in longs {
                assert!(
                    script.contains(&spelled(shell, long)),
                    "{shell}: no {} (of {name})",
                    spelled(shell, long)
                );
            }
        }
        // Each shell's script is written for that shell.
        let registers = match shell {
            "bash" => script.lines().any(|l| {
                l.trim_start().starts_with("complete ") && l.ends_with(" masv-key-rotator")
            }),
            "zsh" => script.starts_with("#compdef masv-key-rotator"),
            _ => script.contains("complete -c masv-key-rotator"),
        };
        assert!(
            registers,
            "{shell}: the script does not register masv-key-rotator"
        );
    }
}

/// The bash script is valid bash, and sourcing it registers the completion.
#[test]
fn bash_completion_loads_and_registers() {
    let script = stdout(&bin(&["completions", "bash"]));
    let mut child = Command::new("bash")
        .args([
            "--norc",
            "--noprofile",
            "-c",
            "source /dev/stdin && complete -p masv-key-rotator",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains(" -F ") && out.stderr.is_empty(),
        "rc {:?}, stdout {said}, stderr {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn completions_for_an_unknown_shell_is_a_usage_error() {
    let usage = Some(i32::from(Exit::Usage.code()));
    let out = bin(&["completions", "powershell"]);
    assert_eq!(out.status.code(), usage);
    assert!(out.stdout.is_empty(), "a script was printed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("powershell") && err.contains("bash, zsh, fish"),
        "{err}"
    );
    let out = bin(&["completions"]);
    assert_eq!(out.status.code(), usage);
    assert!(out.stdout.is_empty(), "a script was printed");
    assert!(String::from_utf8_lossy(&out.stderr).contains("<SHELL>"));
}

/// The page split at its `.SH` headings: heading -> body.
fn sections(roff: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in roff.lines() {
        if let Some(h) = line.strip_prefix(".SH ") {
            out.push((h.trim_matches('"').replace("\\-", "-"), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(&line.replace("\\-", "-"));
            body.push('\n');
        }
    }
    out
}

#[test]
fn man_page_covers_every_command_and_option() {
    let roff = stdout(&bin(&["man"]));
    assert!(
        roff.lines()
            .any(|l| l.starts_with(".TH MASV-KEY-ROTATOR 1 ")),
        "no .TH line:\n{roff}"
    );
    let sections = sections(&roff);
    let headings: Vec<&str> = sections.iter().map(|(h, _)| h.as_str()).collect();
    for h in [
        "NAME",
        "SYNOPSIS",
        "OPTIONS",
        "COMMANDS",
        "EXIT STATUS",
        "FILES",
    ] {
        assert!(headings.contains(&h), "no {h} in {headings:?}");
    }
    for (name, longs) in subcommands_and_options() {
        let heading = format!("COMMAND: {}", name.to_uppercase());
        let body = &sections
            .iter()
            .find(|(h, _)| *h == heading)
            .unwrap_or_else(|| panic!("no section {heading:?} in {headings:?}"))
            .1;
        assert!(
            body.contains(&format!("masv-key-rotator {name}")),
            "{heading}: no synopsis"
        );
        // The synopsis names the options too: look for each in the command's
        // Options list, as the tag of an entry of its own.
        let options = body
            .split_once(".SS \"Options\"\n")
            .unwrap_or_else(|| panic!("{heading}: no Options subsection:\n{body}"))
            .1;
        let tags = entry_tags(options);
        for long in longs {
            let spelled = format!("\\fB--{long}\\fR");
            assert!(
                tags.iter().any(|t| t.contains(&spelled)),
                "{heading}: --{long} has no entry under Options:\n{options}"
            );
        }
    }
    let global = &sections.iter().find(|(h, _)| h == "OPTIONS").unwrap().1;
    let tags = entry_tags(global);
    for long in ["config", "debug", "help", "version"] {
        let spelled = format!("\\fB--{long}\\fR");
        assert!(
            tags.iter().any(|t| t.contains(&spelled)),
            "OPTIONS: no --{long}"
        );
    }
}

/// The tags of a roff list: the line after each `.TP`.
fn entry_tags(roff: &str) -> Vec<&str> {
    let lines: Vec<&str> = roff.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[0] == ".TP")
        .map(|w| w[1])
        .collect()
}

/// groff reads the page without a warning, and the rendered text has every
/// command's section (what `man masv-key-rotator` shows).
#[test]
fn man_page_is_valid_roff() {
    let roff = bin(&["man"]).stdout;
    let groff = |args: &[&str]| {
        let mut child = Command::new("groff")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("groff (Debian: groff-base, which man-db depends on)");
        child.stdin.take().unwrap().write_all(&roff).unwrap();
        child.wait_with_output().unwrap()
    };
    let checked = groff(&["-man", "-ww", "-z"]);
    assert!(
        checked.status.success() && checked.stderr.is_empty(),
        "groff warns: {}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let text = groff(&[
        "-man",
        "-Tutf8",
        "-P-c",
        "-P-b",
        "-P-o",
        "-P-u",
        "-rLL=200n",
    ]);
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    // groff turns \- into U+2212 under -Tutf8 unless told otherwise; compare
    // on plain hyphens.
    let text = text.replace(['\u{2212}', '\u{2010}'], "-");
    for name in subcommands_and_options().keys() {
        let heading = format!("COMMAND: {}", name.to_uppercase());
        assert!(
            text.contains(&heading),
            "rendered page has no {heading}:\n{text}"
        );
    }
    assert!(
        text.contains("--dry-run") && text.contains("EXIT STATUS"),
        "{text}"
    );
}
