//! Snapshots of `pim`'s help: every command's `--help` is compared with its file in
//! `tests/help/`, and every command must show an example. The commands are found by walking
//! the help itself, so a new command without a snapshot or an example fails here. Set
//! `PIM_BLESS=1` to rewrite the snapshots after a deliberate change, and review the diff.

use std::path::Path;
use std::process::Command;

fn help(path: &[String]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_pim"))
        .args(path)
        .arg("--help")
        .env_remove("PIM_ENDPOINT")
        .env("NO_COLOR", "1")
        .output()
        .expect("pim runs");
    assert!(output.status.success(), "pim {path:?} --help failed");
    String::from_utf8(output.stdout).unwrap()
}

/// The subcommands a help text lists under `Commands:`.
fn subcommands(text: &str) -> Vec<String> {
    text.split("\nCommands:\n")
        .nth(1)
        .map(|rest| {
            rest.lines()
                .take_while(|line| line.starts_with("  "))
                .filter_map(|line| line.split_whitespace().next())
                .filter(|name| *name != "help")
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_command_has_help_with_an_example_matching_its_snapshot() {
    let folder = Path::new("tests/help");
    let bless = std::env::var_os("PIM_BLESS").is_some();
    let mut queue: Vec<Vec<String>> = vec![vec![]];
    let mut seen = Vec::new();
    let mut problems = Vec::new();
    while let Some(path) = queue.pop() {
        let text = help(&path);
        let children = subcommands(&text);
        for child in &children {
            let mut next = path.clone();
            next.push(child.clone());
            queue.push(next);
        }
        let name =
            if path.is_empty() { "pim".to_string() } else { format!("pim-{}", path.join("-")) };
        // A pure group (`pim mfa`, `pim policy`) needs a subcommand; its children show
        // the examples.
        let groups_only = !path.is_empty()
            && text.lines().any(|l| l.starts_with("Usage:") && l.ends_with("<COMMAND>"));
        if !groups_only && !text.contains("Example") {
            problems.push(format!("{name} has no example"));
        }
        let file = folder.join(format!("{name}.txt"));
        if bless {
            std::fs::create_dir_all(folder).unwrap();
            std::fs::write(&file, &text).unwrap();
        } else {
            let expected = std::fs::read_to_string(&file).unwrap_or_default();
            if expected != text {
                problems.push(format!("{name}:\n--- expected\n{expected}--- actual\n{text}"));
            }
        }
        seen.push(name);
    }
    seen.sort();
    for expected in [
        "pim-roles",
        "pim-request",
        "pim-status",
        "pim-list",
        "pim-cancel",
        "pim-extend",
        "pim-revoke",
        "pim-mfa-enroll",
        "pim-configure",
        "pim-completions",
        "pim-policy-check",
        "pim-policy-explain",
        "pim-audit",
    ] {
        assert!(seen.iter().any(|s| s == expected), "{expected} was not reached: {seen:?}");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn completions_are_printed_for_bash_zsh_and_fish() {
    for (shell, marker) in
        [("bash", "complete -F"), ("zsh", "#compdef pim"), ("fish", "complete -c pim")]
    {
        let output =
            Command::new(env!("CARGO_BIN_EXE_pim")).args(["completions", shell]).output().unwrap();
        assert!(output.status.success(), "{shell}");
        let script = String::from_utf8(output.stdout).unwrap();
        assert!(script.contains(marker), "{shell}: {}", &script[..200.min(script.len())]);
        for command in ["request", "revoke", "extend", "roles"] {
            assert!(script.contains(command), "{shell} completes {command}");
        }
    }
}

#[test]
fn usage_errors_exit_2() {
    let output = Command::new(env!("CARGO_BIN_EXE_pim")).args(["request"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let output =
        Command::new(env!("CARGO_BIN_EXE_pim")).args(["list", "--sideways"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
}
