//! `pim audit` as a user runs it: the binary, on an export file, verifying checkpoints
//! with a key in the emulator (started by `scripts/test`, found through `PIM_EMULATOR_URL`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use pim::adapters::KmsCheckpointSigner;
use pim::audit::chain::{ChainHead, Checkpoint, seal};
use pim::audit::{Actor, AuditAction, AuditRecord, Outcome, Source};
use pim::ports::CheckpointSigner;
use std::process::{Command, Output};

fn emulator_url() -> String {
    std::env::var("PIM_EMULATOR_URL").expect("run the tests with scripts/test")
}

/// A new checkpoint key in the emulator's default account.
async fn signer() -> KmsCheckpointSigner {
    let config = pim::adapters::sdk_config_loader()
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(emulator_url())
        .credentials_provider(aws_sdk_kms::config::Credentials::new("t", "t", None, None, "t"))
        .load()
        .await;
    let kms = aws_sdk_kms::Client::new(&config);
    let key = kms
        .create_key()
        .key_spec(aws_sdk_kms::types::KeySpec::EccNistP256)
        .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
        .send()
        .await
        .expect("create a key");
    let key_id = key.key_metadata.unwrap().arn.unwrap();
    KmsCheckpointSigner::new(kms, key_id)
}

/// Three records of one grant and the signed checkpoint of the last, as export lines.
async fn export(signer: &KmsCheckpointSigner) -> Vec<String> {
    let time = "2026-12-03T10:00:00Z".parse().unwrap();
    let alice = Actor::person("alice", None);
    let mut created =
        AuditRecord::new(AuditAction::RequestCreated, Outcome::Success, alice, Source::Api, time)
            .with("justification", "incident \u{1b}[2J 42")
            .with("duration", "PT1H");
    created.request_id = Some("req-1".into());
    created.role = Some("prod-readonly".into());
    let mut approved = AuditRecord::new(
        AuditAction::RequestApproved,
        Outcome::Success,
        Actor::person("bob", None),
        Source::Link,
        time,
    );
    approved.request_id = Some("req-1".into());
    let mut activated = AuditRecord::new(
        AuditAction::GrantActivated,
        Outcome::Success,
        Actor::system("grant"),
        Source::Link,
        time,
    );
    activated.request_id = Some("req-1".into());
    activated.grant_id = Some("grant-1".into());

    let mut head = ChainHead::genesis();
    let mut lines = Vec::new();
    for record in [created, approved, activated] {
        let (sealed, next) = seal(record, &head);
        lines.push(serde_json::to_string(&sealed).unwrap());
        head = next;
    }
    let mut checkpoint = Checkpoint::of(&head, signer.key_id(), time);
    checkpoint.signature =
        STANDARD.encode(signer.sign(&checkpoint.signed_message()).await.unwrap());
    lines.push(serde_json::to_string(&checkpoint).unwrap());
    lines
}

fn pim(args: &[&str], lines: &[String]) -> Output {
    let dir = std::env::temp_dir().join(format!("pim-cli-{}", unique_name()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("export.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_pim"))
        .args(args)
        .arg("--file")
        .arg(&file)
        .env("AWS_ENDPOINT_URL", emulator_url())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "t")
        .env("AWS_SECRET_ACCESS_KEY", "t")
        .env_remove("PIM_AUDIT_LOG_GROUP")
        .env_remove("PIM_TABLE")
        .output()
        .expect("pim runs");
    std::fs::remove_dir_all(&dir).ok();
    output
}

fn unique_name() -> String {
    format!("{}-{:?}", std::process::id(), std::thread::current().id()).replace(['(', ')'], "")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn verify_exits_zero_on_an_intact_export_and_one_naming_the_first_bad_record() {
    let signer = signer().await;
    let lines = export(&signer).await;

    let intact = pim(&["audit", "verify"], &lines);
    assert_eq!(intact.status.code(), Some(0), "{intact:?}");
    assert!(stdout(&intact).starts_with("intact: 3 records through sequence 3, 1 signed"));

    let mut edited = lines.clone();
    edited[1] = edited[1].replace("\"bob\"", "\"mallory\"");
    let found = pim(&["audit", "verify", "--json"], &edited);
    assert_eq!(found.status.code(), Some(1), "{found:?}");
    let report: serde_json::Value = serde_json::from_str(&stdout(&found)).unwrap();
    assert_eq!(report["finding"]["kind"], "edited");
    assert_eq!(
        (&report["finding"]["line"], &report["finding"]["sequence"]),
        (&2.into(), &2.into())
    );
}

#[tokio::test]
async fn listing_filters_escapes_and_receipts() {
    let signer = signer().await;
    let lines = export(&signer).await;

    let listed = pim(&["audit", "--person", "alice"], &lines);
    assert_eq!(listed.status.code(), Some(0), "{listed:?}");
    let table = stdout(&listed);
    assert_eq!(table.lines().count(), 2, "a header and alice's one record:\n{table}");
    assert!(table.contains("request.created"));

    let json = pim(&["audit", "--json", "--action", "grant."], &lines);
    let records: Vec<serde_json::Value> =
        stdout(&json).lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["action"], "grant.activated");

    let receipt = pim(&["audit", "receipt", "grant-1"], &lines);
    assert_eq!(receipt.status.code(), Some(0), "{receipt:?}");
    let story = stdout(&receipt);
    assert!(story.contains(r"incident \u{1b}[2J 42"), "escaped: {story}");
    assert!(!story.contains('\u{1b}'));
    assert!(story.contains("approved by bob"), "{story}");

    assert_eq!(pim(&["audit", "receipt", "grant-2"], &lines).status.code(), Some(1));
    let unreadable = Command::new(env!("CARGO_BIN_EXE_pim"))
        .args(["audit", "--file", "/nonexistent/export.jsonl"])
        .output()
        .unwrap();
    assert_eq!(unreadable.status.code(), Some(2));
}
