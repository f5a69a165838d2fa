//! Usage alerts against the emulator, from seeded history: a role activated unusually often,
//! eligible people who have not used a role, break-glass use and privilege found outside
//! the system; each published as an event through the audit chain and counted in the
//! report.

use chrono::Duration;
use pim_local::provision::EXAMPLE_POLICY;
use pim_tests::{TestStack, people};
use serde_json::{Value, json};

const ERIN: &str = "arn:aws:sts::123456789012:assumed-role/security/erin";

/// The example policy with tight thresholds: three grants in a day is often; thirty days
/// unused is a removal candidate. Without its scheduled review (the reviews' tests own
/// those, and the mailbox is shared).
fn policy() -> String {
    let start = EXAMPLE_POLICY.find("    review:\n").expect("the example has a review");
    let end = EXAMPLE_POLICY[start..].find("deadline: P14D\n").unwrap() + start + 15;
    let without_review = format!("{}{}", &EXAMPLE_POLICY[..start], &EXAMPLE_POLICY[end..]);
    let tight = without_review
        .replace("{ count: 10, within: P7D }", "{ count: 3, within: P1D }")
        .replace("unused_after: P90D", "unused_after: P30D");
    assert_ne!(tight, without_review, "the example sets both thresholds");
    tight
}

async fn oversight(stack: &TestStack) -> Value {
    pim_revocation::handle_event(&stack.pim, json!({ "kind": "oversight" })).await.unwrap()
}

fn names(value: &Value) -> Vec<String> {
    let mut names: Vec<String> =
        value.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    names.sort();
    names
}

/// alice's prod-readonly, approved by bob, a minute after whatever came before.
async fn alice_readonly(stack: &TestStack) -> Value {
    stack.clock.advance(Duration::minutes(1));
    let id = stack.alice_requests_readonly().await["id"].as_str().unwrap().to_string();
    let approved = stack.press(&stack.link_for("bob@example.com", &id).await, "approve").await;
    assert_eq!(approved.status, 200, "{}", approved.text);
    stack.show(people::ALICE, &id).await.json()
}

#[tokio::test]
async fn each_alert_is_raised_once_from_seeded_history_and_reaches_the_bus() {
    let stack = TestStack::with_policy(&policy()).await;
    let from = stack.clock_now();
    let alerts = stack
        .subscribe(
            "alerts",
            &json!({ "source": ["pim"], "detail-type": ["Access Alert", "Break-Glass Activated"] }),
        )
        .await;

    // Two grants of prod-readonly to alice: under the threshold.
    let mut grants = vec![alice_readonly(&stack).await, alice_readonly(&stack).await];
    let first = oversight(&stack).await["alerts"].clone();
    assert_eq!(first["frequent_activation"], json!([]));
    // Nobody has used anything else yet: every other eligible pair is a candidate.
    let eligible = [
        "alice/prod-admin",
        "alice/prod-db-admin",
        "alice/security-audit",
        "bob/prod-admin",
        "bob/prod-readonly",
        "bob/security-audit",
    ];
    assert_eq!(names(&first["unused_eligibility"]), eligible);

    // The third within a day is unusual; a second run repeats nothing.
    grants.push(alice_readonly(&stack).await);
    let second = oversight(&stack).await["alerts"].clone();
    assert_eq!(
        second,
        json!({ "frequent_activation": ["alice/prod-readonly"], "unused_eligibility": [] })
    );
    assert_eq!(
        oversight(&stack).await["alerts"],
        json!({ "frequent_activation": [], "unused_eligibility": [] })
    );

    // Break-glass use, and a policy put on bob's role outside pim, found by the sweep.
    let glass = stack
        .create(
            people::BOB,
            json!({ "role": "prod-admin", "duration": "20m", "ticket": "INC-9", "break_glass": true,
                "justification": "the fleet is down and nobody answers the phone" }),
        )
        .await;
    assert_eq!(glass.status, 201, "{}", glass.text);
    let foreign = json!({ "Version": "2012-10-17", "Statement": [{ "Effect": "Allow",
        "Action": "ec2:TerminateInstances", "Resource": "*" }] });
    stack
        .clients
        .iam
        .put_role_policy()
        .role_name("bob-workload")
        .policy_name("left-from-last-incident")
        .policy_document(foreign.to_string())
        .send()
        .await
        .unwrap();
    stack.pim.sweep().await.unwrap();

    // The records, as the chain holds them.
    let chain = stack.chain().await;
    let raised: Vec<&Value> = chain.iter().filter(|r| r["action"] == "alert.raised").collect();
    assert_eq!(raised.len(), eligible.len() + 1);
    let frequent = raised.iter().find(|r| r["details"]["alert"] == "frequent_activation").unwrap();
    assert_eq!(
        (frequent["requester"].as_str(), frequent["role"].as_str()),
        (Some("alice"), Some("prod-readonly"))
    );
    assert_eq!(frequent["details"]["count"], 3);
    assert_eq!(frequent["details"]["within"], "P1D");
    let ids: Vec<&Value> = grants.iter().map(|g| &g["grant"]["id"]).collect();
    assert_eq!(frequent["details"]["grants"].as_array().unwrap().iter().collect::<Vec<_>>(), ids);

    // On the bus: one Access Alert per alert record, the standing access as one more, and
    // the break-glass activation.
    pim_audit_shipper::handle(&stack.shipper).await.unwrap();
    let delivered = stack.delivered(&alerts).await;
    let kinds: Vec<(String, String)> = delivered
        .iter()
        .map(|e| {
            let kind = e["detail-type"].as_str().unwrap().to_string();
            (kind, e["detail"]["alert"].as_str().unwrap_or_default().to_string())
        })
        .collect();
    let count =
        |kind: &str, alert: &str| kinds.iter().filter(|(k, a)| k == kind && a == alert).count();
    assert_eq!(count("Access Alert", "unused_eligibility"), eligible.len());
    assert_eq!(count("Access Alert", "frequent_activation"), 1);
    assert_eq!(count("Access Alert", "standing_access"), 1);
    assert_eq!(count("Break-Glass Activated", ""), 1);
    assert_eq!(delivered.len(), eligible.len() + 3, "{kinds:?}");
    let standing = delivered.iter().find(|e| e["detail"]["alert"] == "standing_access").unwrap();
    assert_eq!(standing["detail"]["policy"], "left-from-last-incident");
    let event = delivered.iter().find(|e| e["detail"]["alert"] == "frequent_activation").unwrap();
    assert_eq!(
        (event["detail"]["person"].as_str(), event["detail"]["count"].as_i64()),
        (Some("alice"), Some(3))
    );

    // The report counts them.
    let to = stack.clock_now() + Duration::seconds(1);
    let path = format!(
        "/reports?from={}&to={}",
        pim::render::iam_time(from - Duration::seconds(1)),
        pim::render::iam_time(to)
    );
    let report = stack.call(reqwest::Method::GET, &path, Some(ERIN), None, vec![]).await;
    assert_eq!(report.status, 200, "{}", report.text);
    assert_eq!(
        report.json()["summary"]["alerts"],
        json!({ "frequent_activation": 1, "unused_eligibility": eligible.len(), "standing_access": 1, "break_glass": 1 })
    );

    // Thirty-one days later alice's use of prod-readonly is stale too (and bob's break-glass
    // use of prod-admin), and three old grants are no longer frequent.
    stack.clock.advance(Duration::days(31));
    let later = oversight(&stack).await["alerts"].clone();
    assert_eq!(later["frequent_activation"], json!([]));
    assert_eq!(names(&later["unused_eligibility"]), ["alice/prod-readonly", "bob/prod-admin"]);
    let stale = stack
        .chain()
        .await
        .into_iter()
        .rev()
        .find(|r| r["requester"] == "alice" && r["action"] == "alert.raised")
        .unwrap();
    assert_eq!(stale["details"]["last_grant_id"], grants[2]["grant"]["id"]);
}
