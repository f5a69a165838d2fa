//! Lifecycle events on the stack's EventBridge bus: derived by the audit shipper from the
//! committed chain, delivered by the emulator to the rules' targets (log groups here), in
//! chain order, at least once, with no secret.

use aws_smithy_types::retry::RetryConfig;
use pim::adapters::EventBridgePublisher;
use pim::ports::AuditChain;
use pim::service::AuditShipper;
use pim_tests::proxy::FaultProxy;
use pim_tests::{TestStack, emulator_url, events_client_via, people};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A Thursday, 11:00 in Berlin: inside the example policy's office hours.
const THURSDAY_MORNING: &str = "2026-12-03T10:00:00Z";

/// A rule's event pattern in the template, as JSON.
fn template_pattern(rule: &str) -> Value {
    let template: serde_yaml::Value =
        serde_yaml::from_str(pim_local::provision::TEMPLATE).expect("the template is YAML");
    let pattern = &template["Resources"][rule]["Properties"]["EventPattern"];
    serde_json::to_value(pattern).expect("the pattern is plain YAML")
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|event| event["detail-type"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn a_lifecycle_reaches_subscribers_in_chain_order_once_shipped_and_leaks_no_secret() {
    pim_tests::capture_logs();
    let stack = TestStack::start().await;
    stack.clock.set(THURSDAY_MORNING.parse().unwrap());
    let everything = stack.subscribe("every-pim-event", &json!({ "source": ["pim"] })).await;
    let alerts = stack.subscribe("alerts", &template_pattern("AlertEventsRule")).await;

    // A refusal, then a whole elevation: request, approval, grant, expiry.
    let refused = stack
        .create(
            people::DAVE,
            json!({"role": "prod-readonly", "justification": "need to look around"}),
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    let id = stack.alice_requests_readonly().await["id"].as_str().unwrap().to_string();
    let bob_link = stack.link_for("bob@example.com", &id).await;
    let carol_link = stack.link_for("carol@example.com", &id).await;
    assert_eq!(stack.press(&bob_link, "approve").await.status, 200);
    let shown = stack.show(people::ALICE, &id).await.json();
    let grant = shown["grant"].clone();
    stack.clock.set(grant["ends_at"].as_str().unwrap().parse().unwrap());
    let grant_id = grant["id"].as_str().unwrap();
    let payload = stack.schedule_payload(&format!("pim-expire-{grant_id}")).await;
    pim_revocation::handle(&stack.pim, payload).await.unwrap();

    // Nothing is on the bus before the shipper runs: events come from shipped records only.
    assert!(stack.delivered(&everything).await.is_empty());
    let shipped = pim_audit_shipper::handle(&stack.shipper).await.unwrap();
    assert_eq!(shipped, json!({"records": 5, "events": 4, "through": 5}));

    // One event per transition, the refusal none, in chain order, each naming its record.
    let chain = stack.chain().await;
    let delivered = stack.delivered(&everything).await;
    assert_eq!(
        kinds(&delivered),
        ["Request Created", "Request Approved", "Grant Activated", "Grant Expired"]
    );
    for (event, record) in delivered.iter().zip(&chain[1..]) {
        let detail = &event["detail"];
        assert_eq!(event["source"], "pim");
        assert_eq!(detail["schema"], "pim.event/1");
        assert_eq!(
            (&detail["record_id"], &detail["sequence"]),
            (&record["id"], &record["sequence"])
        );
        assert_eq!(detail["action"], record["action"]);
        assert_eq!(detail["time"], record["time"]);
        assert_eq!(detail["request_id"], id.as_str());
        assert_eq!(detail["request_version"], record["request_version"]);
        assert_eq!(
            (&detail["requester"], &detail["role"]),
            (&json!("alice"), &json!("prod-readonly"))
        );
        assert!(detail.get("link_id").is_none(), "{detail}");
    }
    let states: Vec<&str> =
        delivered.iter().map(|event| event["detail"]["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["pending", "approved", "active", "expired"]);

    let created = &delivered[0]["detail"];
    assert_eq!(created["justification"], "incident INC-1234: reading logs");
    assert_eq!(created["approvers"], json!(["bob", "carol"]));
    assert_eq!(created["duration"], "PT1H");
    assert_eq!(created["target_role_arn"], "arn:aws:iam::123456789012:role/pim/alice-workload");
    assert!(created.get("grant_id").is_none(), "no grant before approval: {created}");
    let approved = &delivered[1]["detail"];
    assert_eq!(
        (&approved["actor"]["kind"], &approved["actor"]["id"]),
        (&json!("person"), &json!("bob"))
    );
    assert_eq!((&approved["approvals"], &approved["quorum"]), (&json!(1), &json!(1)));
    let activated = &delivered[2]["detail"];
    assert_eq!(activated["grant_id"], grant["id"]);
    assert_eq!(
        (&activated["starts_at"], &activated["ends_at"]),
        (&grant["starts_at"], &grant["ends_at"])
    );
    assert_eq!(activated["policy_name"], format!("pim-{grant_id}").as_str());
    let expired = &delivered[3]["detail"];
    assert_eq!(
        (&expired["ends_at"], &expired["actor"]["id"]),
        (&grant["ends_at"], &json!("schedule"))
    );

    // A second run puts nothing again; the example rule let none of these through.
    let again = pim_audit_shipper::handle(&stack.shipper).await.unwrap();
    assert_eq!(again, json!({"records": 0, "events": 0, "through": 5}));
    assert_eq!(stack.delivered(&everything).await.len(), 4);
    assert!(stack.delivered(&alerts).await.is_empty());

    // A break-glass activation: the template's example rule delivers exactly that event.
    let break_glass = stack
        .create(
            people::BOB,
            json!({
                "role": "prod-admin", "duration": "20m", "ticket": "INC-7", "break_glass": true,
                "justification": "the fleet is down and nobody answers the phone",
            }),
        )
        .await;
    assert_eq!(break_glass.status, 201, "{}", break_glass.text);
    let break_glass_id = break_glass.json()["id"].as_str().unwrap().to_string();
    let shipped = pim_audit_shipper::handle(&stack.shipper).await.unwrap();
    assert_eq!(shipped, json!({"records": 3, "events": 3, "through": 8}));
    let alerted = stack.delivered(&alerts).await;
    assert_eq!(kinds(&alerted), ["Break-Glass Activated"]);
    let detail = &alerted[0]["detail"];
    assert_eq!(
        (&detail["request_id"], &detail["requester"]),
        (&json!(break_glass_id), &json!("bob"))
    );
    assert_eq!((&detail["break_glass"], &detail["severity"]), (&json!(true), &json!("high")));
    assert_eq!(detail["review_required"], true);
    assert_eq!(detail["actor"]["id"], "policy");
    assert_eq!(
        kinds(&stack.delivered(&everything).await)[4..],
        ["Request Created", "Break-Glass Activated", "Grant Activated"]
    );

    // No token, MAC tag or link id appears on the bus or in the logs.
    let link_ids: Vec<String> = chain
        .iter()
        .filter_map(|record| record["details"]["link_id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(link_ids.len(), 1, "bob's decision names its link");
    let mut secrets = link_ids;
    for link in [&bob_link, &carol_link] {
        let token = link.rsplit('/').next().unwrap().to_string();
        secrets.push(token.split('.').nth(1).unwrap().to_string());
        secrets.push(token);
    }
    let on_the_bus = format!(
        "{:?}\n{:?}\n{}",
        stack.delivered(&everything).await,
        stack.delivered(&alerts).await,
        pim_tests::captured_logs()
    );
    assert!(on_the_bus.contains(&id), "the scan covers this test's events");
    for secret in &secrets {
        assert!(secret.len() >= 16, "a real secret: {secret}");
        assert!(!on_the_bus.contains(secret.as_str()), "a secret reached the bus or the logs");
    }
}

#[tokio::test]
async fn a_refused_event_keeps_the_cursor_and_the_next_run_delivers_the_batch() {
    let stack = TestStack::start().await;
    let everything = stack.subscribe("every-pim-event", &json!({ "source": ["pim"] })).await;

    // Eleven requests: one batch of eleven records, two PutEvents calls of ten and one.
    let mut ids = Vec::new();
    for _ in 0..11 {
        ids.push(stack.alice_requests_readonly().await["id"].as_str().unwrap().to_string());
    }
    let proxy = FaultProxy::start(&emulator_url(), 7).await;
    let client = events_client_via(&stack.account, proxy.url(), RetryConfig::disabled()).await;
    let shipper = AuditShipper {
        events: Arc::new(EventBridgePublisher::new(client, &stack.audit.event_bus)),
        ..stack.shipper.clone()
    };

    // The first call's last entry is refused: the run fails, the cursor stays, the second
    // call is never made, and subscribers have the nine events the bus took.
    proxy.fail_last_event_entry(1);
    let err = shipper.ship().await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(format!("{err:?}").contains("refused 1 of 10"), "{err:?}");
    assert_eq!(stack.store().shipped_through().await.unwrap(), 0);
    assert_eq!(proxy.count("events", "PutEvents"), 1);
    let first = stack.delivered(&everything).await;
    let sequences: Vec<u64> =
        first.iter().map(|event| event["detail"]["sequence"].as_u64().unwrap()).collect();
    assert_eq!(sequences, (1..=9).collect::<Vec<_>>());
    assert_eq!(stack.audit_stream().await.len(), 12, "the batch and its checkpoint, once");

    // The next run ships the batch again, in two calls, and moves the cursor.
    let shipped = shipper.ship().await.unwrap();
    assert_eq!((shipped.records, shipped.events, shipped.through), (11, 11, 11));
    assert_eq!(stack.store().shipped_through().await.unwrap(), 11);
    assert_eq!(proxy.count("events", "PutEvents"), 3);

    // Every record's event arrived, the first nine twice: consumers deduplicate on the
    // record id and find each request created once, in order.
    let delivered = stack.delivered(&everything).await;
    assert_eq!(delivered.len(), 9 + 11);
    let mut by_record: BTreeMap<u64, (String, usize)> = BTreeMap::new();
    for event in &delivered {
        let detail = &event["detail"];
        let entry = by_record
            .entry(detail["sequence"].as_u64().unwrap())
            .or_insert((detail["record_id"].as_str().unwrap().to_string(), 0));
        assert_eq!(entry.0, detail["record_id"].as_str().unwrap(), "one id per sequence");
        entry.1 += 1;
    }
    let copies: Vec<usize> = by_record.values().map(|(_, copies)| *copies).collect();
    assert_eq!(copies, [2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1]);
    let mut unique: Vec<&Value> = Vec::new();
    for event in &delivered {
        if !unique.iter().any(|seen| seen["detail"]["record_id"] == event["detail"]["record_id"]) {
            unique.push(event);
        }
    }
    let requests: Vec<&str> =
        unique.iter().map(|event| event["detail"]["request_id"].as_str().unwrap()).collect();
    assert_eq!(requests, ids);
    assert!(unique.iter().all(|event| event["detail-type"] == "Request Created"));
}
