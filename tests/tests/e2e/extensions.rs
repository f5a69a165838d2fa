//! Extensions that need approvers, against the emulator: the extension request is mailed,
//! decided through the approvers' links like any request, and the approval that completes
//! its quorum moves the grant's end, its IAM condition and its schedule together; a denial
//! or a grant that ended first moves nothing.

use chrono::{DateTime, Duration, Utc};
use pim::render::iam_time;
use pim_tests::{TestStack, history_actions, people};
use serde_json::{Value, json};

/// A Thursday, 11:00 in Berlin: inside the example's office hours.
const THURSDAY_MORNING: &str = "2026-12-03T10:00:00Z";

const CAROL: &str = "carol@example.com";
const ERIN: &str = "erin@example.com";

/// Alice's on-call grant of prod-admin for ten minutes, approved by its rule at once:
/// (request id, grant id, start).
async fn short_admin_grant(stack: &TestStack) -> (String, String, DateTime<Utc>) {
    stack.clock.set(THURSDAY_MORNING.parse().unwrap());
    let body = json!({ "role": "prod-admin", "duration": "10m", "ticket": "INC-7",
        "justification": format!("restart the stuck fleet, {}", stack.account) });
    let created = stack.create(people::ALICE, body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let created = created.json();
    assert_eq!(created["state"], "active", "on-call-short approves ten minutes by itself");
    let grant = created["grant"]["id"].as_str().unwrap().to_string();
    let started = created["grant"]["starts_at"].as_str().unwrap().parse().unwrap();
    (created["id"].as_str().unwrap().to_string(), grant, started)
}

/// Asks for `by` more on `grant` with a reason; the answer must be an extension request.
async fn ask_extension(stack: &TestStack, grant: &str, by: &str) -> Value {
    let path = format!("/grants/{grant}/extend");
    let reason = "the rollout needs another pass over the fleet";
    let asked = stack.post_json(people::ALICE, &path, json!({ "by": by, "reason": reason })).await;
    assert_eq!(asked.status, 202, "{}", asked.text);
    asked.json()
}

/// The end in every statement's `DateLessThan` of the grant's policy on alice's role.
async fn policy_ends(stack: &TestStack, grant: &str) -> Vec<Value> {
    let policy = &stack.role_policies("alice-workload").await[&format!("pim-{grant}")];
    let statements = policy["Statement"].as_array().unwrap();
    statements.iter().map(|s| s["Condition"]["DateLessThan"]["aws:CurrentTime"].clone()).collect()
}

#[tokio::test]
async fn an_approved_extension_moves_the_grants_end_condition_and_schedule_together() {
    let stack = TestStack::start().await;
    let (id, grant, started) = short_admin_grant(&stack).await;
    let old_end = started + Duration::minutes(10);
    stack.clock.advance(Duration::minutes(2));

    let asked = ask_extension(&stack, &grant, "20m").await;
    let new_end = old_end + Duration::minutes(20);
    let ext_id = asked["id"].as_str().unwrap().to_string();
    assert_ne!(ext_id, id, "the extension is a request of its own");
    assert_eq!(asked["state"], "pending");
    assert_eq!(asked["approval_rule"], "on-call-long", "thirty minutes in all needs approvers");
    assert_eq!(asked["extends"]["grant_id"], grant.as_str());
    assert_eq!(asked["extends"]["extend_to"], iam_time(new_end));
    assert_eq!(
        asked["pending_until"],
        iam_time(old_end),
        "it can be decided while the grant lasts"
    );
    assert_eq!(asked["undelivered_notifications"], json!([]));

    // Nothing has moved yet: the grant still ends at its old time everywhere.
    assert!(policy_ends(&stack, &grant).await.iter().all(|end| end == &json!(iam_time(old_end))));
    assert_eq!(stack.schedule_time(&format!("pim-expire-{grant}")).await, Some(old_end));

    // Each approver is mailed what the extension is and until when.
    let mail = stack.mail_to(CAROL, &ext_id).await;
    assert!(mail.subject.contains("asks to extend prod-admin by PT20M"), "{}", mail.subject);
    for fact in [grant.as_str(), &iam_time(old_end), &iam_time(new_end), "another pass"] {
        assert!(mail.body.contains(fact), "{fact} missing from {}", mail.body);
    }
    let link = stack.link_for(CAROL, &ext_id).await;
    let (page, _) = stack.open(&link).await;
    assert!(page.text.contains("Extension request"), "{}", page.text);
    assert!(page.text.contains(&iam_time(new_end)), "{}", page.text);

    stack.clock.advance(Duration::minutes(1));
    let approved = stack.press(&link, "approve").await;
    assert_eq!(approved.status, 200, "{}", approved.text);
    assert!(approved.text.contains(&format!("now lasts until {}", iam_time(new_end))));

    // The grant, its IAM condition and its schedule all say the new end.
    let original = stack.show(people::ALICE, &id).await.json();
    assert_eq!(original["state"], "active");
    assert_eq!(original["grant"]["ends_at"], iam_time(new_end));
    assert_eq!(original["grant"]["starts_at"], iam_time(started), "the start stays");
    assert!(policy_ends(&stack, &grant).await.iter().all(|end| end == &json!(iam_time(new_end))));
    assert_eq!(stack.schedule_time(&format!("pim-expire-{grant}")).await, Some(new_end));
    assert_eq!(stack.schedule_payload(&format!("pim-expire-{grant}")).await.grant_id, grant);
    let last = original["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "grant.extended");
    assert_eq!(last["details"]["extension_request"], ext_id.as_str());
    assert_eq!(last["details"]["approved_by"], json!(["carol"]));
    assert_eq!(last["details"]["previous_ends_at"], iam_time(old_end));

    // The extension request is applied, with its own records; both records were sealed
    // into the chain by one write, the decision first.
    let extension = stack.show(people::ALICE, &ext_id).await.json();
    assert_eq!(extension["state"], "applied");
    assert!(extension["grant"].is_null(), "it opens no grant of its own");
    assert_eq!(history_actions(&extension), ["request.created", "request.approved"]);
    let decided = &extension["history"].as_array().unwrap()[1];
    assert_eq!(decided["details"]["extends"], grant.as_str());
    assert_eq!(decided["sequence"].as_u64().unwrap() + 1, last["sequence"].as_u64().unwrap());

    let told = stack.all_mail_to("alice@example.com", &id).await;
    assert!(
        told.iter().any(|m| m.subject.contains(&format!("extended until {}", iam_time(new_end))))
    );

    // The other approver's link now shows a decided request with nothing to press.
    let before = stack.snapshot().await;
    let (late, _) = stack.open(&stack.link_for(ERIN, &ext_id).await).await;
    assert_eq!(late.status, 200, "{}", late.text);
    assert!(late.text.contains("<strong>applied</strong>; there is nothing left to decide"));
    assert!(!late.text.contains("name=\"decision\""), "no buttons: {}", late.text);
    assert_eq!(stack.snapshot().await, before);

    // Expiry at the new end removes the policy and ends the grant.
    stack.clock.set(new_end);
    let payload = stack.schedule_payload(&format!("pim-expire-{grant}")).await;
    stack.pim.expire_grant(&payload).await.unwrap();
    assert_eq!(stack.show(people::ALICE, &id).await.json()["state"], "expired");
    assert!(!stack.role_policies("alice-workload").await.contains_key(&format!("pim-{grant}")));
}

#[tokio::test]
async fn a_denied_extension_moves_nothing_and_the_holder_is_told() {
    let stack = TestStack::start().await;
    let (id, grant, started) = short_admin_grant(&stack).await;
    let old_end = started + Duration::minutes(10);
    let ext_id = ask_extension(&stack, &grant, "30m").await["id"].as_str().unwrap().to_string();
    let link = stack.link_for(ERIN, &ext_id).await;

    let denied = stack.press(&link, "deny").await;
    assert_eq!(denied.status, 200, "{}", denied.text);
    assert_eq!(stack.show(people::ALICE, &ext_id).await.json()["state"], "denied");
    let original = stack.show(people::ALICE, &id).await.json();
    assert_eq!(
        (original["state"].as_str(), original["grant"]["ends_at"].as_str()),
        (Some("active"), Some(iam_time(old_end).as_str()))
    );
    assert_eq!(
        history_actions(&original),
        ["request.created", "request.approved", "grant.activated"]
    );
    assert!(policy_ends(&stack, &grant).await.iter().all(|end| end == &json!(iam_time(old_end))));
    assert_eq!(stack.schedule_time(&format!("pim-expire-{grant}")).await, Some(old_end));
    let told = stack.mail_to("alice@example.com", &ext_id).await;
    assert!(
        told.body.contains("Your extension request for prod-admin was denied"),
        "{}",
        told.body
    );
}

#[tokio::test]
async fn an_extension_of_a_grant_that_ended_first_is_refused_and_moves_nothing() {
    let stack = TestStack::start().await;
    let (id, grant, _) = short_admin_grant(&stack).await;
    let ext_id = ask_extension(&stack, &grant, "20m").await["id"].as_str().unwrap().to_string();
    let link = stack.link_for(CAROL, &ext_id).await;

    let relinquished =
        stack.post_json(people::ALICE, &format!("/grants/{grant}/revoke"), json!({})).await;
    assert_eq!(relinquished.status, 200, "{}", relinquished.text);
    let before = stack.snapshot().await;
    let refused = stack.press(&link, "approve").await;
    assert_eq!((refused.status, refused.code().as_str()), (403, "grant_ended"), "{}", refused.text);
    assert_eq!(stack.snapshot().await.without_refusals(), before.without_refusals());
    assert_eq!(stack.show(people::ALICE, &id).await.json()["state"], "revoked");
    assert_eq!(stack.show(people::ALICE, &ext_id).await.json()["state"], "pending");
    let refusal = stack.refusals().await.into_iter().last().unwrap();
    assert_eq!(
        (refusal["action"].as_str(), refusal["code"].as_str()),
        (Some("decision.refused"), Some("grant_ended"))
    );
    assert!(!stack.role_policies("alice-workload").await.contains_key(&format!("pim-{grant}")));
}

#[tokio::test]
async fn an_extension_needing_approvers_needs_a_reason_and_stays_within_the_maximum() {
    let stack = TestStack::start().await;
    let (_, grant, _) = short_admin_grant(&stack).await;
    let path = format!("/grants/{grant}/extend");
    let before = stack.snapshot().await;
    let bare = stack.post_json(people::ALICE, &path, json!({ "by": "30m" })).await;
    assert_eq!((bare.status, bare.code().as_str()), (400, "reason_required"));
    let short =
        stack.post_json(people::ALICE, &path, json!({ "by": "30m", "reason": "more" })).await;
    assert_eq!((short.status, short.code().as_str()), (400, "invalid_justification"));
    let over = stack
        .post_json(
            people::ALICE,
            &path,
            json!({ "by": "PT2H", "reason": "the rollout needs another pass" }),
        )
        .await;
    assert_eq!((over.status, over.code().as_str()), (400, "duration_over_maximum"));
    assert_eq!(stack.snapshot().await.without_refusals(), before.without_refusals());
    assert!(stack.all_mail_to(CAROL, &grant).await.is_empty(), "no approver was asked");
}

/// The approval that completes an extension and the holder relinquishing the grant, at the
/// same moment, many times: the extension is applied exactly when the grant's record says
/// it was extended, and a revoked grant never has its end moved afterwards.
#[tokio::test]
async fn an_extension_racing_a_relinquish_is_applied_with_the_grant_or_not_at_all() {
    let stack = TestStack::start().await;
    let mut outcomes = std::collections::BTreeSet::new();
    for round in 0..6 {
        let (id, grant, started) = short_admin_grant(&stack).await;
        let old_end = started + Duration::minutes(10);
        let ext_id = ask_extension(&stack, &grant, "20m").await["id"].as_str().unwrap().to_string();
        let link = stack.link_for(CAROL, &ext_id).await;
        let (page, cookie) = stack.open(&link).await;
        let form = format!("csrf={}&decision=approve", page.csrf().unwrap());
        let revoke_path = format!("/grants/{grant}/revoke");
        let (approved, revoked) = tokio::join!(
            stack.post_form(&link, cookie.as_deref().unwrap(), &form),
            stack.post_json(people::ALICE, &revoke_path, json!({})),
        );

        let original = stack.show(people::ALICE, &id).await.json();
        let extension = stack.show(people::ALICE, &ext_id).await.json();
        let extended = history_actions(&original).iter().any(|a| a == "grant.extended");
        assert_eq!(extension["state"] == "applied", extended, "round {round}: {original}");
        assert_eq!(approved.status == 200, extended, "round {round}: {}", approved.text);
        let end = if extended { old_end + Duration::minutes(20) } else { old_end };
        assert_eq!(original["grant"]["ends_at"], iam_time(end), "round {round}");
        if revoked.status == 200 {
            assert_eq!(original["state"], "revoked");
            let history = history_actions(&original);
            let revoked_at = history.iter().position(|a| a == "grant.revoked").unwrap();
            assert!(history[revoked_at..].iter().all(|a| a != "grant.extended"), "{history:?}");
        } else {
            // The extension's write moved the grant under the relinquish: it said so.
            assert_eq!((revoked.status, revoked.code().as_str()), (409, "stale_request"));
            assert!(extended);
            let retried = stack.post_json(people::ALICE, &revoke_path, json!({})).await;
            assert_eq!(retried.status, 200, "{}", retried.text);
        }
        outcomes.insert((extended, revoked.status));
        assert!(!stack.role_policies("alice-workload").await.contains_key(&format!("pim-{grant}")));
    }
    println!("outcomes seen (extended, relinquish status): {outcomes:?}");
}
