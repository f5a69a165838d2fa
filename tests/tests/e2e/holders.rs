//! After activation and before a decision, against the emulator: relinquish and
//! administrator revoke (the policy is gone when the call answers), extension (the policy's
//! end condition and the schedule move together), and a pending request's reminder and
//! deadline, delivered the way their schedules deliver them.

use chrono::{DateTime, Duration, Utc};
use pim_tests::{TestStack, history_actions, people};
use serde_json::json;

/// A Thursday, 11:00 in Berlin: inside the example's office hours.
const THURSDAY_MORNING: &str = "2026-12-03T10:00:00Z";

/// Alice's active grant of prod-readonly, approved by bob: (request id, grant id, end).
async fn active_readonly(stack: &TestStack) -> (String, String, DateTime<Utc>) {
    let id = stack.alice_requests_readonly().await["id"].as_str().unwrap().to_string();
    let approved = stack.press(&stack.link_for("bob@example.com", &id).await, "approve").await;
    assert_eq!(approved.status, 200, "{}", approved.text);
    let shown = stack.show(people::ALICE, &id).await.json();
    let grant = shown["grant"]["id"].as_str().unwrap().to_string();
    let ends_at = shown["grant"]["ends_at"].as_str().unwrap().parse().unwrap();
    (id, grant, ends_at)
}

async fn schedule_at(stack: &TestStack, name: &str) -> Option<DateTime<Utc>> {
    stack.schedule_time(name).await
}

#[tokio::test]
async fn the_holder_relinquishes_and_the_policy_and_schedule_are_gone_at_once() {
    let stack = TestStack::start().await;
    let (id, grant, _) = active_readonly(&stack).await;
    assert_eq!(stack.role_policies("alice-workload").await.len(), 1);

    // Someone else is told there is no such grant; nothing changes.
    let before = stack.snapshot().await;
    let stranger =
        stack.post_json(people::BOB, &format!("/grants/{grant}/revoke"), json!({})).await;
    assert_eq!((stranger.status, stranger.code().as_str()), (404, "grant_not_found"));
    assert_eq!(stack.snapshot().await, before);

    let revoked =
        stack.post_json(people::ALICE, &format!("/grants/{grant}/revoke"), json!({})).await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    assert_eq!(revoked.json()["state"], "revoked");
    assert!(stack.role_policies("alice-workload").await.is_empty(), "gone when answered");
    assert_eq!(schedule_at(&stack, &format!("pim-expire-{grant}")).await, None);
    let shown = stack.show(people::ALICE, &id).await.json();
    assert_eq!(history_actions(&shown).last().unwrap(), "grant.revoked");
    let record = shown["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(record["details"]["revoked_by"], "holder");
    assert_eq!(record["reason"], "relinquished by the holder");

    // Twice is refused, and the expiry delivered anyway changes nothing.
    let again = stack.post_json(people::ALICE, &format!("/grants/{grant}/revoke"), json!({})).await;
    assert_eq!((again.status, again.code().as_str()), (409, "invalid_state"));
    let event = json!({ "kind": "grant_expiry", "request_id": id, "grant_id": grant });
    let answer = pim_revocation::handle_event(&stack.pim, event).await.unwrap();
    assert_eq!(answer["outcome"], "already_ended");
    assert_eq!(stack.show(people::ALICE, &id).await.json()["state"], "revoked");
}

#[tokio::test]
async fn an_administrator_revokes_anyones_grant_with_a_reason_and_the_holder_is_told() {
    let stack = TestStack::start().await;
    let (id, grant, _) = active_readonly(&stack).await;
    let erin = "arn:aws:sts::123456789012:assumed-role/security/erin";
    let path = format!("/grants/{grant}/revoke");

    let without = stack.post_json(erin, &path, json!({})).await;
    assert_eq!((without.status, without.code().as_str()), (400, "invalid_reason"));
    let control = stack.post_json(erin, &path, json!({ "reason": "short\u{1b}" })).await;
    assert_eq!(control.code(), "invalid_reason");
    let unknown_field = stack.post_json(erin, &path, json!({ "why": "x" })).await;
    assert_eq!(unknown_field.code(), "malformed_body");
    assert_eq!(stack.role_policies("alice-workload").await.len(), 1, "nothing happened yet");

    let reason = "credentials of the workload leaked, INC-99";
    let revoked = stack.post_json(erin, &path, json!({ "reason": reason })).await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    assert!(stack.role_policies("alice-workload").await.is_empty());
    let shown = stack.show(people::ALICE, &id).await.json();
    let record = shown["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(record["action"], "grant.revoked");
    assert_eq!(record["actor"]["id"], "erin");
    assert_eq!(record["details"]["revoked_by"], "administrator");
    assert_eq!(record["reason"], reason);
    let told = stack.all_mail_to("alice@example.com", &id).await;
    let told = told.iter().find(|m| m.subject.contains("revoked")).expect("the holder is told");
    assert!(told.body.contains(reason), "{}", told.body);
}

#[tokio::test]
async fn extension_moves_the_policy_end_and_the_schedule_together_within_policy() {
    let stack = TestStack::start().await;
    stack.clock.set(THURSDAY_MORNING.parse().unwrap());
    let body = json!({ "role": "prod-admin", "duration": "10m", "ticket": "INC-7",
        "justification": format!("restart the stuck fleet, {}", stack.account) });
    let created = stack.create(people::ALICE, body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let created = created.json();
    assert_eq!(created["state"], "active", "on-call-short approves by itself");
    let id = created["id"].as_str().unwrap().to_string();
    let grant = created["grant"]["id"].as_str().unwrap().to_string();
    let started: DateTime<Utc> = created["grant"]["starts_at"].as_str().unwrap().parse().unwrap();
    let path = format!("/grants/{grant}/extend");

    stack.clock.advance(Duration::minutes(3));
    let extended = stack.post_json(people::ALICE, &path, json!({ "by": "5m" })).await;
    assert_eq!(extended.status, 200, "{}", extended.text);
    let new_end = started + Duration::minutes(15);
    assert_eq!(extended.json()["grant"]["ends_at"], pim::render::iam_time(new_end));
    // IAM's condition and the schedule say the same new end.
    let policy = &stack.role_policies("alice-workload").await[&format!("pim-{grant}")];
    for statement in policy["Statement"].as_array().unwrap() {
        let end = &statement["Condition"]["DateLessThan"]["aws:CurrentTime"];
        assert_eq!(end, &json!(pim::render::iam_time(new_end)));
    }
    assert_eq!(schedule_at(&stack, &format!("pim-expire-{grant}")).await, Some(new_end));
    assert_eq!(
        stack.schedule_payload(&format!("pim-expire-{grant}")).await.grant_id,
        grant,
        "the moved schedule still ends this grant"
    );
    let shown = stack.show(people::ALICE, &id).await.json();
    let record = shown["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(record["action"], "grant.extended");
    assert_eq!(
        record["details"]["previous_ends_at"],
        pim::render::iam_time(started + Duration::minutes(10))
    );
    let told = stack.all_mail_to("alice@example.com", &id).await;
    assert!(told.iter().any(|m| m.subject.contains("extended")), "the holder is told");

    // Longer than on-call-short allows needs approvers, who read a reason: without one it
    // is refused and nothing moves (extensions.rs follows one through its approval).
    let before = stack.snapshot().await;
    let needs = stack.post_json(people::ALICE, &path, json!({ "by": "10m" })).await;
    assert_eq!((needs.status, needs.code().as_str()), (400, "reason_required"));
    let over = stack.post_json(people::ALICE, &path, json!({ "by": "PT3H" })).await;
    assert_eq!((over.status, over.code().as_str()), (400, "duration_over_maximum"));
    let zero = stack.post_json(people::ALICE, &path, json!({ "by": 0 })).await;
    assert_eq!(zero.code(), "invalid_duration");
    let erin = "arn:aws:sts::123456789012:assumed-role/security/erin";
    let not_holder = stack.post_json(erin, &path, json!({ "by": "1m" })).await;
    assert_eq!((not_holder.status, not_holder.code().as_str()), (403, "not_the_holder"));
    assert_eq!(stack.snapshot().await.without_refusals(), before.without_refusals());
    let refused: Vec<String> = stack
        .refusals()
        .await
        .iter()
        .filter(|r| r["action"] == "grant.change_refused")
        .map(|r| r["code"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(refused, ["duration_over_maximum", "not_the_holder"]);
}

#[tokio::test]
async fn approvers_are_reminded_once_halfway_and_an_undecided_request_expires_at_its_deadline() {
    let stack = TestStack::start().await;
    let created = stack.alice_requests_readonly().await;
    let id = created["id"].as_str().unwrap().to_string();
    let pending_until: DateTime<Utc> = created["pending_until"].as_str().unwrap().parse().unwrap();
    let created_at: DateTime<Utc> = created["created_at"].as_str().unwrap().parse().unwrap();
    let halfway = created_at + (pending_until - created_at) / 2;
    assert_eq!(schedule_at(&stack, &format!("pim-remind-{id}")).await, Some(halfway));
    let group = stack.settings.schedule_group.clone();
    let fire = || {
        pim_local::firer::fire_due(&stack.clients.scheduler, &group, &stack.pim, stack.clock_now())
    };

    // Neither approver decides; time passes.
    stack.clock.set(halfway);
    let fired = fire().await.unwrap();
    assert_eq!(fired.len(), 1, "{fired:?}");
    for approver in ["bob@example.com", "carol@example.com"] {
        let mail = stack.all_mail_to(approver, &id).await;
        assert_eq!(mail.len(), 2, "the request, then one reminder");
        assert!(mail.iter().any(|m| m.subject.starts_with("[pim] Reminder:")));
    }
    // The deadline timer replaced the reminder, a second after the deadline.
    let deadline = format!("pim-deadline-{id}");
    assert_eq!(schedule_at(&stack, &deadline).await, Some(pending_until + Duration::seconds(1)));
    // A repeated reminder delivery reminds nobody again.
    let repeat = json!({ "kind": "approval_reminder", "request_id": id });
    pim_revocation::handle_event(&stack.pim, repeat).await.unwrap();
    assert_eq!(stack.all_mail_to("bob@example.com", &id).await.len(), 2);

    stack.clock.set(pending_until + Duration::seconds(1));
    let fired = fire().await.unwrap();
    assert_eq!(fired.len(), 1, "{fired:?}");
    let shown = stack.show(people::ALICE, &id).await.json();
    assert_eq!(shown["state"], "expired");
    assert_eq!(shown["reason"], "not decided in time");
    assert_eq!(history_actions(&shown), ["request.created", "request.reminded", "request.expired"],);
    let told = stack.all_mail_to("alice@example.com", &id).await;
    let told = told.iter().find(|m| m.subject.contains("expired")).expect("the requester is told");
    assert!(told.body.contains("Europe/Berlin"), "local time beside UTC: {}", told.body);
    // A late link is refused and grants nothing.
    let first_link = stack.all_mail_to("bob@example.com", &id).await[0].links()[0].clone();
    let late = stack.press(&first_link, "approve").await;
    assert_ne!(late.status, 200, "{}", late.text);
    assert!(stack.role_policies("alice-workload").await.is_empty());
}

#[tokio::test]
async fn a_request_decided_before_its_reminder_reminds_nobody() {
    let stack = TestStack::start().await;
    let (id, _, _) = active_readonly(&stack).await;
    let created_at: DateTime<Utc> = stack.show(people::ALICE, &id).await.json()["created_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    stack.clock.set(created_at + Duration::hours(12));
    let group = stack.settings.schedule_group.clone();
    let fired =
        pim_local::firer::fire_due(&stack.clients.scheduler, &group, &stack.pim, stack.clock_now())
            .await
            .unwrap();
    let reminder = fired.iter().find(|f| f.name == format!("pim-remind-{id}")).expect("fired");
    let outcome = reminder.outcome.as_ref().unwrap()["outcome"].as_str().unwrap().to_string();
    assert!(outcome.starts_with("Nothing"), "{outcome}");
    assert_eq!(stack.all_mail_to("carol@example.com", &id).await.len(), 1, "no reminder");
    assert_eq!(schedule_at(&stack, &format!("pim-deadline-{id}")).await, None);
}

#[tokio::test]
async fn mail_shows_the_request_and_its_times_in_utc_and_the_policys_zone() {
    let stack = TestStack::start().await;
    let body = json!({ "role": "prod-readonly", "duration": "PT1H", "ticket": "INC-5",
        "justification": "incident INC-5: reading <b>logs</b>" });
    let created = stack.create(people::ALICE, body).await.json();
    let id = created["id"].as_str().unwrap();
    let mail = stack.mail_to("bob@example.com", id).await;
    for needle in ["alice", "prod-readonly", "INC-5", "PT1H", "Europe/Berlin", "UTC"] {
        assert!(mail.body.contains(needle), "{needle} missing: {}", mail.body);
    }
    assert!(mail.body.contains("&lt;b&gt;logs&lt;/b&gt;"), "user text is escaped in HTML");
    assert!(!mail.body.contains("<b>logs</b>"));
}

#[tokio::test]
async fn the_holder_is_warned_ten_minutes_before_the_end_of_a_long_enough_grant() {
    let stack = TestStack::start().await;
    let (id, _, ends_at) = active_readonly(&stack).await;
    let warning = format!("pim-warn-{id}");
    assert_eq!(schedule_at(&stack, &warning).await, Some(ends_at - Duration::minutes(10)));

    stack.clock.set(ends_at - Duration::minutes(10));
    let delivered = json!({ "kind": "grant_ending_soon", "request_id": id });
    let answer = pim_revocation::handle_event(&stack.pim, delivered.clone()).await.unwrap();
    assert_eq!(answer["outcome"], "Warned");
    let mail = stack.all_mail_to("alice@example.com", &id).await;
    let warned = mail.iter().find(|m| m.subject.contains("ends at")).expect("warned");
    assert!(warned.body.contains(&pim::render::iam_time(ends_at)), "{}", warned.body);

    // Once the grant is over (or far from its end), a delivery warns nobody.
    stack.clock.set(ends_at + Duration::minutes(1));
    let answer = pim_revocation::handle_event(&stack.pim, delivered).await.unwrap();
    assert_eq!(answer["outcome"], "Nothing(Active)");
    let after = stack.all_mail_to("alice@example.com", &id).await;
    assert_eq!(after.iter().filter(|m| m.subject.contains("ends at")).count(), 1);
}

#[tokio::test]
async fn a_revocation_whose_delete_keeps_failing_says_so_and_the_sweep_removes_the_policy() {
    let stack = TestStack::through_proxy(aws_smithy_types::retry::RetryConfig::disabled()).await;
    let (id, grant, _) = active_readonly(&stack).await;
    stack.proxy().throttle("iam", "DeleteRolePolicy", stack.pim.backoff.attempts);

    let path = format!("/grants/{grant}/revoke");
    let failed = stack.post_json(people::ALICE, &path, json!({})).await;
    assert_eq!(failed.status, 502, "{}", failed.text);
    // Recorded as revoked, with the failure after it; the policy (inert at its end) is
    // still there, and so is the expiry schedule that would remove it.
    let shown = stack.show(people::ALICE, &id).await.json();
    assert_eq!(shown["state"], "revoked");
    assert_eq!(
        history_actions(&shown)[history_actions(&shown).len() - 2..],
        ["grant.revoked", "grant.revocation_failed"]
    );
    let failure = shown["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (failure["source"].as_str(), failure["actor"]["id"].as_str()),
        (Some("api"), Some("revocation"))
    );
    assert_eq!(stack.role_policies("alice-workload").await.len(), 1);
    assert!(schedule_at(&stack, &format!("pim-expire-{grant}")).await.is_some());

    // The sweep finds a grant policy no live grant accounts for, and removes it.
    let report = stack.pim.sweep().await.unwrap();
    assert_eq!(report.orphans_removed, [format!("alice-workload/pim-{grant}")]);
    assert!(stack.role_policies("alice-workload").await.is_empty());
}

#[tokio::test]
async fn a_deadline_delivered_early_is_retried_and_changes_nothing() {
    let stack = TestStack::start().await;
    let id = stack.alice_requests_readonly().await["id"].as_str().unwrap().to_string();
    let before = stack.snapshot().await;
    let early = json!({ "kind": "request_expiry", "request_id": id });
    let err = pim_revocation::handle_event(&stack.pim, early).await.unwrap_err();
    assert!(err.is_retryable(), "the scheduler must deliver it again: {err:?}");
    assert_eq!(stack.snapshot().await, before);
    assert_eq!(stack.show(people::ALICE, &id).await.json()["state"], "pending");
}
