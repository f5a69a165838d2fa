//! The policy engine at work through the API: quorum, auto-approval, constraints,
//! break-glass, and eligibility checked again when an approval would grant.

use pim::catalog::Catalog;
use pim::model::Verdict;
use pim::service::Pim;
use pim_tests::{TestStack, history_actions, people};
use serde_json::{Value, json};
use std::sync::Arc;

/// A Thursday, 11:00 in Berlin: inside the example's office hours.
const THURSDAY_MORNING: &str = "2026-12-03T10:00:00Z";

async fn stack_on_thursday() -> TestStack {
    let stack = TestStack::start().await;
    stack.clock.set(THURSDAY_MORNING.parse().unwrap());
    stack
}

fn admin_request(minutes: u64, ticket: &str, marker: &str) -> Value {
    json!({
        "role": "prod-admin",
        "duration": format!("{minutes}m"),
        "ticket": ticket,
        "justification": format!("restart the stuck fleet, {marker}"),
    })
}

#[tokio::test]
async fn a_two_person_rule_grants_only_at_the_second_approval() {
    let stack = stack_on_thursday().await;
    let created = stack.create(people::BOB, admin_request(60, "CHG-1", &stack.account)).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let created = created.json();
    assert_eq!(created["approval_rule"], "two-person");
    assert_eq!(created["quorum"], 2);
    assert_eq!(created["approvers"], json!(["carol", "erin"]));
    let id = created["id"].as_str().unwrap().to_string();

    let first = stack.press(&stack.link_for("carol@example.com", &id).await, "approve").await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert!(first.text.contains("1 of 2 approvals"), "{}", first.text);
    let shown = stack.show(people::BOB, &id).await.json();
    assert_eq!(shown["state"], "pending");
    assert!(stack.role_policies("bob-workload").await.is_empty(), "one approval grants nothing");

    let second = stack.press(&stack.link_for("erin@example.com", &id).await, "approve").await;
    assert_eq!(second.status, 200, "{}", second.text);
    let shown = stack.show(people::BOB, &id).await.json();
    assert_eq!(shown["state"], "active");
    assert_eq!(stack.role_policies("bob-workload").await.len(), 1);
    assert_eq!(
        history_actions(&shown),
        ["request.created", "request.approval_recorded", "request.approved", "grant.activated"]
    );
    let history = shown["history"].as_array().unwrap();
    assert_eq!(history[1]["details"]["approvals"], 1);
    assert_eq!(history[2]["details"]["approval_rule"], "two-person");
    assert_eq!(history[0]["details"]["ticket"], "CHG-1");
}

#[tokio::test]
async fn a_deny_after_one_approval_ends_a_two_person_request() {
    let stack = stack_on_thursday().await;
    let id =
        stack.create(people::BOB, admin_request(60, "CHG-2", &stack.account)).await.json()["id"]
            .as_str()
            .unwrap()
            .to_string();
    stack.press(&stack.link_for("carol@example.com", &id).await, "approve").await;
    let denied = stack.press(&stack.link_for("erin@example.com", &id).await, "deny").await;
    assert_eq!(denied.status, 200, "{}", denied.text);
    assert_eq!(stack.show(people::BOB, &id).await.json()["state"], "denied");
    assert!(stack.role_policies("bob-workload").await.is_empty());
}

#[tokio::test]
async fn on_call_short_requests_are_granted_at_once_and_limited_to_one_at_a_time() {
    let stack = stack_on_thursday().await;
    let marker = stack.account.clone();
    let created = stack.create(people::ALICE, admin_request(10, "INC-7", &marker)).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let created = created.json();
    assert_eq!(created["state"], "active");
    assert_eq!(created["approval_rule"], "on-call-short");
    assert_eq!(created["approvers"], json!([]));
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(stack.role_policies("alice-workload").await.len(), 1);
    assert!(stack.all_mail_to("carol@example.com", &id).await.is_empty(), "nobody is asked");

    let shown = stack.show(people::ALICE, &id).await.json();
    assert_eq!(history_actions(&shown), ["request.created", "request.approved", "grant.activated"]);
    assert_eq!(shown["history"][1]["actor"]["id"], "policy");

    // max_active_grants is 1: a second grant of the role is refused while the first lives.
    let second = stack.create(people::ALICE, admin_request(10, "INC-8", &marker)).await;
    assert_eq!(
        (second.status, second.code().as_str()),
        (403, "too_many_active_grants"),
        "{}",
        second.text
    );
    assert!(stack.refusals().await.iter().any(|r| r["code"] == "too_many_active_grants"));
}

#[tokio::test]
async fn role_constraints_are_enforced_before_anything_is_stored() {
    let stack = stack_on_thursday().await;
    let before = stack.snapshot().await;
    let cases = [
        (
            json!({ "role": "prod-admin", "duration": "1h", "justification": "restart the stuck fleet now" }),
            "invalid_ticket",
        ),
        (
            json!({ "role": "prod-admin", "duration": "1h", "ticket": "JIRA-1", "justification": "restart the stuck fleet now" }),
            "invalid_ticket",
        ),
        (
            json!({ "role": "prod-admin", "duration": "1h", "ticket": "INC-1", "justification": "restart fleet" }),
            "invalid_justification",
        ),
        (
            json!({ "role": "prod-admin", "duration": "3h", "ticket": "INC-1", "justification": "restart the stuck fleet now" }),
            "duration_over_maximum",
        ),
    ];
    for (body, code) in cases {
        let answer = stack.create(people::BOB, body.clone()).await;
        assert_eq!((answer.status, answer.code().as_str()), (400, code), "{body}: {}", answer.text);
    }
    assert_eq!(stack.snapshot().await, before);
}

#[tokio::test]
async fn break_glass_grants_at_once_alerts_every_approver_and_is_recorded_as_high_severity() {
    let stack = stack_on_thursday().await;
    let marker = format!("break-glass {}", stack.account);
    let body = |minutes: u64| {
        json!({
            "role": "prod-admin", "duration": format!("{minutes}m"), "ticket": "INC-99", "break_glass": true,
            "justification": format!("production is down and nobody answers, {marker}"),
        })
    };

    let too_long = stack.create(people::BOB, body(45)).await;
    assert_eq!((too_long.status, too_long.code().as_str()), (400, "duration_over_maximum"));
    let not_allowed = stack
        .create(people::BOB, json!({ "role": "prod-readonly", "break_glass": true, "justification": format!("everything is on fire {marker}") }))
        .await;
    assert_eq!((not_allowed.status, not_allowed.code().as_str()), (403, "break_glass_not_allowed"));

    let created = stack.create(people::BOB, body(20)).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let created = created.json();
    assert_eq!(
        (created["state"].as_str(), created["break_glass"].as_bool()),
        (Some("active"), Some(true))
    );
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(stack.role_policies("bob-workload").await.len(), 1);
    for approver in ["carol@example.com", "erin@example.com"] {
        let alert = stack.mail_to(approver, &id).await;
        assert!(alert.subject.contains("BREAK-GLASS"), "{}", alert.subject);
    }
    let shown = stack.show(people::BOB, &id).await.json();
    let history = shown["history"].as_array().unwrap();
    assert_eq!(history[0]["details"]["severity"], "high");
    assert_eq!(history[1]["details"]["review_required"], true);
}

#[tokio::test]
async fn someone_removed_from_the_policy_while_waiting_is_not_granted() {
    let stack = TestStack::start().await;
    let id = stack.alice_requests_readonly().await["id"].as_str().unwrap().to_string();
    let link = stack.link_for("carol@example.com", &id).await;
    let token = link.rsplit('/').next().unwrap().to_string();

    // The policy is redeployed without alice among the engineers.
    let amended =
        pim_local::provision::EXAMPLE_POLICY.replace("engineers: [alice, bob]", "engineers: [bob]");
    let redeployed =
        Pim { catalog: Arc::new(Catalog::from_yaml(&amended).unwrap()), ..(*stack.pim).clone() };
    let err = redeployed.decide(&token, Verdict::Approve, None).await.unwrap_err();
    assert_eq!(err.code(), "requester_not_eligible");
    assert_eq!(stack.show(people::ALICE, &id).await.json()["state"], "pending");
    assert!(stack.role_policies("alice-workload").await.is_empty());
    assert!(stack.refusals().await.iter().any(|r| r["code"] == "requester_not_eligible"));

    // Denying is still possible.
    let denied = redeployed.decide(&token, Verdict::Deny, None).await.unwrap();
    assert_eq!(denied.state, pim::model::RequestState::Denied);
}

/// `POST /requests/{id}/review` as `caller`.
async fn review(stack: &TestStack, caller: &str, id: &str, body: Value) -> pim_tests::Answer {
    let body = serde_json::to_vec(&body).unwrap();
    let path = format!("/requests/{id}/review");
    stack.call(reqwest::Method::POST, &path, Some(caller), Some("application/json"), body).await
}

#[tokio::test]
async fn one_review_closes_a_break_glass_activation_and_an_unjustified_one_ends_its_access() {
    let stack = stack_on_thursday().await;
    let created = stack
        .create(
            people::BOB,
            json!({
                "role": "prod-admin", "duration": "20m", "ticket": "INC-7", "break_glass": true,
                "justification": format!("the fleet is down and nobody answers, {}", stack.account),
            }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json()["id"].as_str().unwrap().to_string();
    let found = |finding: &str| json!({ "finding": finding, "comment": "no outage on record at that time" });

    // Refused, with nothing changed: the requester, someone who is no reviewer, bad bodies.
    let own = review(&stack, people::BOB, &id, found("justified")).await;
    assert_eq!((own.status, own.code().as_str()), (403, "self_review"), "{}", own.text);
    let stranger = review(&stack, people::ALICE, &id, found("justified")).await;
    assert_eq!((stranger.status, stranger.code().as_str()), (404, "request_not_found"));
    let bodies = [
        json!({ "finding": "fine", "comment": "no outage on record at that time" }),
        json!({ "finding": "justified", "comment": "ok" }),
        json!({ "finding": "justified", "comment": "no outage on record", "extra": 1 }),
    ];
    for body in bodies {
        let answer = review(&stack, people::CAROL, &id, body.clone()).await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.text);
    }
    let before = stack.show(people::BOB, &id).await.json();
    assert_eq!((before["version"].as_u64(), before.get("review")), (Some(3), None));

    // Carol, an approver of the role, finds it unjustified: recorded once, access ends.
    let reviewed = review(&stack, people::CAROL, &id, found("unjustified")).await;
    assert_eq!(reviewed.status, 200, "{}", reviewed.text);
    let reviewed = reviewed.json();
    assert_eq!(
        (reviewed["state"].as_str(), reviewed["review"]["reviewer"].as_str()),
        (Some("active"), Some("carol"))
    );
    assert_eq!(reviewed["review"]["finding"], "unjustified");
    let again = review(&stack, people::CAROL, &id, found("justified")).await;
    assert_eq!((again.status, again.code().as_str()), (409, "already_reviewed"));

    let shown = stack.show(people::CAROL, &id).await;
    assert_eq!(shown.status, 200, "a reviewer sees what they review: {}", shown.text);
    let shown = shown.json();
    assert_eq!(history_actions(&shown).last().map(String::as_str), Some("break_glass.reviewed"));
    let record = shown["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(record["actor"]["id"], "carol");
    assert_eq!(record["details"]["finding"], "unjustified");
    assert_eq!(record["details"]["access_ended"], true);
    assert_eq!(record["details"]["severity"], "high");
    let refused: Vec<Value> = stack
        .refusals()
        .await
        .into_iter()
        .filter(|r| r["action"] == "break_glass.review_refused" && r["request_id"] == id)
        .collect();
    let codes: Vec<&str> = refused.iter().map(|r| r["code"].as_str().unwrap()).collect();
    assert_eq!(codes.len(), 2, "{refused:?}");
    assert!(codes.contains(&"self_review") && codes.contains(&"already_reviewed"), "{codes:?}");

    assert_eq!(stack.role_policies("bob-workload").await.len(), 1);
    stack.clock.advance(chrono::Duration::seconds(61));
    let group = stack.settings.schedule_group.clone();
    pim_local::firer::fire_due(&stack.clients.scheduler, &group, &stack.pim, stack.clock_now())
        .await
        .unwrap();
    assert!(stack.role_policies("bob-workload").await.is_empty());
    assert_eq!(stack.show(people::BOB, &id).await.json()["state"], "expired");
}

#[tokio::test]
async fn only_break_glass_is_reviewed_and_a_justified_finding_leaves_access_in_place() {
    let stack = stack_on_thursday().await;
    let ordinary = stack.alice_requests_readonly().await["id"].as_str().unwrap().to_string();
    let body = json!({ "finding": "justified", "comment": "looks right to me, fine" });
    let answer = review(&stack, people::ALICE, &ordinary, body.clone()).await;
    assert_eq!((answer.status, answer.code().as_str()), (409, "not_break_glass"));

    let created = stack
        .create(
            people::BOB,
            json!({
                "role": "prod-admin", "duration": "10m", "ticket": "INC-8", "break_glass": true,
                "justification": format!("payments are failing for everyone, {}", stack.account),
            }),
        )
        .await;
    let id = created.json()["id"].as_str().unwrap().to_string();
    let reviewed = review(&stack, people::CAROL, &id, body).await;
    assert_eq!(reviewed.status, 200, "{}", reviewed.text);
    let record = stack.show(people::BOB, &id).await.json()["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (record["action"].as_str(), record["details"]["access_ended"].as_bool()),
        (Some("break_glass.reviewed"), Some(false))
    );
    assert!(record["details"].get("severity").is_none(), "{record}");
    stack.clock.advance(chrono::Duration::seconds(61));
    let group = stack.settings.schedule_group.clone();
    pim_local::firer::fire_due(&stack.clients.scheduler, &group, &stack.pim, stack.clock_now())
        .await
        .unwrap();
    assert_eq!(stack.role_policies("bob-workload").await.len(), 1, "access stays until its end");
}
