//! The audit trail: one chain of records, shipped to the audit log group, verified against
//! signed checkpoints; tampering named; no secret anywhere.

use aws_smithy_types::retry::RetryConfig;
use pim::adapters::{DynamoRequestStore, KmsCheckpointSigner};
use pim::audit::chain::{GENESIS_HASH, hash_of};
use pim::audit::query::{Filter, receipt, records_of, table};
use pim::audit::verify::{FindingKind, Report, verify_stream};
use pim::audit::{Actor, AuditAction, AuditRecord, Outcome, Source};
use pim::ports::{AuditChain, RequestStore};
use pim_tests::{TestStack, people};
use serde_json::{Value, json};

fn signer(stack: &TestStack) -> KmsCheckpointSigner {
    KmsCheckpointSigner::new(stack.clients.kms.clone(), &stack.audit.checkpoint_key_id)
}

async fn verify(stack: &TestStack, lines: &[String]) -> Report {
    let head = stack.store().chain_head().await.unwrap();
    verify_stream(lines, &signer(stack), Some(&head)).await.unwrap()
}

/// Asserts sequences 1..=n, each linking to the one before, each hash its own.
fn assert_one_chain(records: &[Value]) {
    let mut prev = GENESIS_HASH.to_string();
    for (index, record) in records.iter().enumerate() {
        assert_eq!(record["sequence"], index as u64 + 1, "{record}");
        assert_eq!(record["prev_hash"], prev.as_str(), "{record}");
        assert_eq!(record["hash"], hash_of(record).as_str(), "{record}");
        prev = record["hash"].as_str().unwrap().to_string();
    }
}

/// The decision form behind a link: (cookie, csrf value).
async fn csrf_of(stack: &TestStack, link: &str) -> (String, String) {
    let (page, cookie) = stack.open(link).await;
    (cookie.unwrap(), page.csrf().unwrap())
}

#[tokio::test]
async fn a_whole_lifecycle_ships_every_record_in_order_and_leaks_no_secret() {
    pim_tests::capture_logs();
    let stack = TestStack::start().await;

    // A refusal with a control character in the user's text, then a whole elevation.
    let hostile_role = "prod\u{1b}[2Jwipe";
    let refused = stack
        .create(people::DAVE, json!({"role": hostile_role, "justification": "need to look around"}))
        .await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    let id = stack.alice_requests_readonly().await["id"].as_str().unwrap().to_string();
    let bob_link = stack.link_for("bob@example.com", &id).await;
    let carol_link = stack.link_for("carol@example.com", &id).await;
    let (cookie, csrf) = csrf_of(&stack, &bob_link).await;
    let decided =
        stack.post_form(&bob_link, &cookie, &format!("csrf={csrf}&decision=approve")).await;
    assert_eq!(decided.status, 200, "{}", decided.text);
    let shown = stack.show(people::ALICE, &id).await.json();
    let grant_id = shown["grant"]["id"].as_str().unwrap().to_string();
    stack.clock.set(shown["grant"]["ends_at"].as_str().unwrap().parse().unwrap());
    let payload = stack.schedule_payload(&format!("pim-expire-{grant_id}")).await;
    pim_revocation::handle(&stack.pim, payload).await.unwrap();

    // Exactly the expected records, in order, in one chain.
    let chain = stack.chain().await;
    let story: Vec<(&str, &str)> = chain
        .iter()
        .map(|r| (r["action"].as_str().unwrap(), r["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        story,
        [
            ("request.refused", "refused"),
            ("request.created", "success"),
            ("request.approved", "success"),
            ("grant.activated", "success"),
            ("grant.expired", "success"),
        ]
    );
    assert_one_chain(&chain);
    assert!(chain.iter().all(|r| r["schema"] == "pim.audit/2"));
    let history = shown["history"].as_array().unwrap();
    assert_eq!(history[0], chain[1], "the request's history holds the same sealed records");

    // All of them reach the log group, in order, with a checkpoint; a second run ships none.
    let shipped = pim_audit_shipper::handle(&stack.shipper).await.unwrap();
    assert_eq!(shipped, json!({"records": 5, "events": 4, "through": 5}));
    let again = pim_audit_shipper::handle(&stack.shipper).await.unwrap();
    assert_eq!(again, json!({"records": 0, "events": 0, "through": 5}));
    let lines = stack.audit_stream().await;
    assert_eq!(lines.len(), 6, "five records and their checkpoint");
    let streamed: Vec<Value> =
        lines[..5].iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(streamed, chain);
    let checkpoint: Value = serde_json::from_str(&lines[5]).unwrap();
    assert_eq!(checkpoint["schema"], "pim.audit-checkpoint/1");
    assert_eq!((&checkpoint["sequence"], &checkpoint["hash"]), (&json!(5), &chain[4]["hash"]));

    let report = verify(&stack, &lines).await;
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.records, report.checkpoints, report.head.sequence), (5, 1, 5));

    // Reading: filters, and the grant's receipt.
    let records = records_of(&lines);
    let by_bob = Filter { person: Some("bob".into()), ..Filter::default() };
    let actions: Vec<_> =
        records.iter().filter(|r| by_bob.matches(r)).map(|r| r.sequence).collect();
    assert_eq!(actions, [3], "bob decided; he requested nothing");
    let grants = Filter { action: Some("grant.".into()), ..Filter::default() };
    assert_eq!(records.iter().filter(|r| grants.matches(r)).count(), 2);
    let story = receipt(&grant_id, &records).expect("a receipt").join("\n");
    for expected in [
        "requested prod-readonly for PT1H by alice",
        "incident INC-1234: reading logs",
        "approved by bob",
        &format!(
            "policy pim-{grant_id} written on arn:aws:iam::123456789012:role/pim/alice-workload"
        ),
        "expired; policy",
    ] {
        assert!(story.contains(expected), "{expected} in:\n{story}");
    }
    assert!(receipt("grant-unknown", &records).is_none());

    // Control characters in user text come out escaped: in the stream and in the table.
    assert!(lines.iter().all(|line| !line.chars().any(char::is_control)));
    assert!(lines[0].contains(r"prod\u001b[2Jwipe"), "{}", lines[0]);
    let shown_table = table(&records).join("\n");
    assert!(shown_table.contains(r"prod\u{1b}[2Jwipe"), "{shown_table}");
    assert!(!shown_table.contains('\u{1b}'));

    // No token, MAC tag, CSRF value or cookie produced here appears in any record or log.
    let mut secrets = vec![csrf.clone(), cookie.split('=').nth(1).unwrap().to_string()];
    for link in [&bob_link, &carol_link] {
        let token = link.rsplit('/').next().unwrap().to_string();
        secrets.push(token.split('.').nth(1).unwrap().to_string());
        secrets.push(token);
    }
    let scanned = stack.clients.dynamodb.scan().table_name(&stack.settings.table).send().await;
    let everything = format!(
        "{:?}\n{}\n{}",
        scanned.unwrap().items(),
        lines.join("\n"),
        pim_tests::captured_logs()
    );
    assert!(everything.contains(&id), "the scan covers this test's records and logs");
    for secret in &secrets {
        assert!(secret.len() >= 16, "a real secret: {secret}");
        assert!(!everything.contains(secret.as_str()), "a secret leaked");
    }
}

/// A stack with two shipped batches: records 1–2 with a checkpoint, then 3–4 with one.
async fn two_batches() -> (TestStack, Vec<String>) {
    let stack = TestStack::start().await;
    let id = stack.alice_requests_readonly().await["id"].as_str().unwrap().to_string();
    let refused = stack
        .create(
            people::DAVE,
            json!({"role": "prod-readonly",
        "justification": "need to look around"}),
        )
        .await;
    assert_eq!(refused.status, 403);
    stack.shipper.ship().await.unwrap();
    let link = stack.link_for("carol@example.com", &id).await;
    assert_eq!(stack.press(&link, "approve").await.status, 200);
    stack.shipper.ship().await.unwrap();
    let lines = stack.audit_stream().await;
    assert_eq!(lines.len(), 6, "{lines:#?}");
    (stack, lines)
}

fn value(line: &str) -> Value {
    serde_json::from_str(line).unwrap()
}

/// Recomputes the hash of `record` after an edit, as a forger would.
fn resealed(mut record: Value) -> Value {
    record["hash"] = json!(hash_of(&record));
    record
}

#[tokio::test]
async fn the_verifier_names_the_first_bad_record_for_each_kind_of_tampering() {
    let (stack, intact) = two_batches().await;
    // Lines: 0 r1, 1 r2, 2 checkpoint 2, 3 r3, 4 r4, 5 checkpoint 4.
    let report = verify(&stack, &intact).await;
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.records, report.checkpoints), (4, 2));
    let id_of = |line: &str| value(line)["id"].as_str().unwrap().to_string();

    let check = |name: &str, report: Report, kind: FindingKind, sequence: u64| {
        let finding = report.finding.unwrap_or_else(|| panic!("{name}: not detected"));
        assert_eq!((finding.kind, finding.sequence), (kind, Some(sequence)), "{name}: {finding:?}");
        finding
    };

    // Deleted: record 3 gone.
    let mut lines = intact.clone();
    lines.remove(3);
    check("deleted", verify(&stack, &lines).await, FindingKind::Missing, 3);

    // Edited: record 2's outcome changed, hash left alone.
    let mut lines = intact.clone();
    lines[1] = lines[1].replace("\"refused\"", "\"success\"");
    assert_ne!(lines[1], intact[1]);
    let found = check("edited", verify(&stack, &lines).await, FindingKind::Edited, 2);
    assert_eq!(found.record_id, Some(id_of(&intact[1])));

    // Reordered: records 3 and 4 swapped.
    let mut lines = intact.clone();
    lines.swap(3, 4);
    check("reordered", verify(&stack, &lines).await, FindingKind::Reordered, 4);

    // Inserted: a well-formed record claiming sequence 2, linked to record 1.
    let mut forged = value(&intact[1]);
    forged["id"] = json!("00000000-0000-4000-8000-000000000000");
    forged["reason"] = json!("nothing to see");
    let mut lines = intact.clone();
    lines.insert(1, resealed(forged).to_string());
    let found = check("inserted", verify(&stack, &lines).await, FindingKind::Inserted, 2);
    assert_eq!(found.record_id.as_deref(), Some("00000000-0000-4000-8000-000000000000"));

    // Truncated: the last batch and its checkpoint cut off.
    let lines = intact[..3].to_vec();
    check("truncated", verify(&stack, &lines).await, FindingKind::Truncated, 3);

    // Forged: record 3 rewritten and every hash after it recomputed; only the signed
    // checkpoint of record 4 can tell.
    let mut third = value(&intact[3]);
    third["actor"]["id"] = json!("mallory");
    let third = resealed(third);
    let mut fourth = value(&intact[4]);
    fourth["prev_hash"] = third["hash"].clone();
    let fourth = resealed(fourth);
    let mut lines = intact.clone();
    lines[3] = third.to_string();
    lines[4] = fourth.to_string();
    check("rewritten", verify(&stack, &lines).await, FindingKind::Forged, 3);

    // Forged checkpoint: a signature that is not the key's.
    let mut checkpoint = value(&intact[2]);
    checkpoint["hash"] = value(&intact[0])["hash"].clone();
    let mut lines = intact.clone();
    lines[2] = checkpoint.to_string();
    check("checkpoint", verify(&stack, &lines).await, FindingKind::Forged, 2);

    // Appended: a well-formed record after the last checkpoint, which nobody signed.
    let mut appended = value(&intact[4]);
    appended["sequence"] = json!(5);
    appended["prev_hash"] = value(&intact[4])["hash"].clone();
    let mut lines = intact.clone();
    lines.push(resealed(appended).to_string());
    let head = stack.store().chain_head().await.unwrap();
    let report = verify_stream(&lines, &signer(&stack), Some(&head)).await.unwrap();
    check("appended", report, FindingKind::Unsigned, 5);

    // A batch shipped twice (at least once) is a redelivery, not tampering.
    let mut lines = intact.clone();
    lines.extend_from_slice(&intact[3..]);
    let report = verify(&stack, &lines).await;
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.redeliveries, 2);
}

#[tokio::test]
async fn concurrent_transitions_keep_one_chain() {
    let stack = TestStack::start().await;
    let body = json!({"role": "prod-readonly", "duration": "PT1H",
        "justification": "incident INC-1234: reading logs"});
    let creates = (0..6).map(|_| stack.create(people::ALICE, body.clone()));
    let refusals = (0..6).map(|_| stack.create(people::DAVE, body.clone()));
    let (created, refused) =
        tokio::join!(futures::future::join_all(creates), futures::future::join_all(refusals));
    assert!(created.iter().all(|a| a.status == 201), "every request is stored");
    assert!(refused.iter().all(|a| a.status == 403), "every refusal is answered");

    // Decisions on different requests, all at once.
    let mut decisions = Vec::new();
    for answer in &created {
        let id = answer.json()["id"].as_str().unwrap().to_string();
        decisions.push(stack.link_for("bob@example.com", &id).await);
    }
    let pressed = futures::future::join_all(decisions.iter().map(|l| stack.press(l, "deny"))).await;
    assert!(pressed.iter().all(|a| a.status == 200), "every denial commits");

    let chain = stack.chain().await;
    assert_eq!(chain.len(), 18, "six requests, six refusals, six denials");
    assert_one_chain(&chain);
    let head = stack.store().chain_head().await.unwrap();
    assert_eq!((head.sequence, head.hash.as_str()), (18, chain[17]["hash"].as_str().unwrap()));

    stack.shipper.ship().await.unwrap();
    let report = verify(&stack, &stack.audit_stream().await).await;
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.records, 18);
}

/// A store seals each record on the chain head it last wrote, without reading the head
/// again. When another writer moved the head meanwhile (another process, on Lambda), the
/// cached head is stale: the transaction is cancelled and carries the stored head back,
/// and the record is sealed again on it. A stale head costs one cancelled transaction in
/// place of the read it saved, and never a broken or forked chain, also when two writers
/// with stale heads race.
#[tokio::test]
async fn a_stale_cached_chain_head_costs_a_retry_never_a_broken_chain() {
    let stack = TestStack::through_proxy(RetryConfig::disabled()).await;
    let proxy = stack.proxy();
    let clients =
        pim_tests::clients_via(&stack.account, proxy.url(), RetryConfig::disabled()).await;
    let first = DynamoRequestStore::new(clients.dynamodb.clone(), &stack.settings.table);
    let second = DynamoRequestStore::new(clients.dynamodb.clone(), &stack.settings.table);
    let refusal = |n: u32| {
        AuditRecord::new(
            AuditAction::RequestRefused,
            Outcome::Refused,
            Actor::anonymous(),
            Source::Api,
            stack.clock_now(),
        )
        .because("test_refusal", &format!("refusal {n}"))
    };
    let key = |operation: &str| ("dynamodb".to_string(), operation.to_string());
    let write = async |store: &DynamoRequestStore, n: u32| {
        proxy.reset_counts();
        store.record_refusal(&refusal(n)).await.unwrap();
        proxy.counts()
    };

    // A new store reads the head once; after that its own last write is the head.
    let cold = write(&first, 1).await;
    assert_eq!(cold, [(key("GetItem"), 1), (key("TransactWriteItems"), 1)].into());
    let warm = write(&first, 2).await;
    assert_eq!(warm, [(key("TransactWriteItems"), 1)].into());

    // Another writer moves the head: the first store's cached head is now stale.
    let other = write(&second, 3).await;
    assert_eq!(other, [(key("GetItem"), 1), (key("TransactWriteItems"), 1)].into());
    let stale = write(&first, 4).await;
    assert_eq!(stale, [(key("TransactWriteItems"), 2)].into(), "cancelled once, no read");

    // Both stale or fresh at once, several times over: every record lands once.
    for round in 0..5 {
        let (one, two) = (refusal(10 + 2 * round), refusal(11 + 2 * round));
        let (a, b) = tokio::join!(first.record_refusal(&one), second.record_refusal(&two));
        a.unwrap();
        b.unwrap();
    }

    let chain = stack.chain().await;
    assert_eq!(chain.len(), 14);
    assert_one_chain(&chain);
    let mut reasons: Vec<&str> = chain.iter().map(|r| r["reason"].as_str().unwrap()).collect();
    reasons.sort_unstable();
    reasons.dedup();
    assert_eq!(reasons.len(), 14, "no record written twice");
    let head = stack.store().chain_head().await.unwrap();
    assert_eq!((head.sequence, head.hash.as_str()), (14, chain[13]["hash"].as_str().unwrap()));
    stack.shipper.ship().await.unwrap();
    let report = verify(&stack, &stack.audit_stream().await).await;
    assert!(report.is_intact(), "{report:?}");
}
