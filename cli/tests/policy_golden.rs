//! Golden tests of `pim policy check`: each document in `tests/policy/` is checked by the
//! real binary and its output compared with the `.expected` file beside it. Set
//! `PIM_BLESS=1` to rewrite the expected files after a deliberate change, and review the diff.

use std::path::Path;
use std::process::Command;

#[test]
fn check_output_matches_the_golden_files() {
    let corpus = Path::new("tests/policy");
    let mut files: Vec<_> = std::fs::read_dir(corpus)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "the corpus is in tests/policy");

    let mut mismatches = Vec::new();
    for file in files {
        let output = Command::new(env!("CARGO_BIN_EXE_pim"))
            .args(["policy", "check"])
            .arg(&file)
            .output()
            .expect("pim runs");
        let actual = format!(
            "exit: {}\n{}",
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout)
        );
        let expected_path = file.with_extension("expected");
        if std::env::var_os("PIM_BLESS").is_some() {
            std::fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if actual != expected {
            mismatches
                .push(format!("{}:\n--- expected\n{expected}--- actual\n{actual}", file.display()));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn the_example_policy_passes_check() {
    let output = Command::new(env!("CARGO_BIN_EXE_pim"))
        .args(["policy", "check", "../infra/policy.example.yaml"])
        .output()
        .expect("pim runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
}
