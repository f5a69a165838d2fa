//! One whole elevation, and the other ways a request ends.

use chrono::{DateTime, Utc};
use pim::adapters::scheduler::at_expression;
use pim::model::ExpiryEvent;
use pim_tests::{TestStack, people};
use serde_json::{Value, json};

fn time(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn request_approve_grant_and_expire_end_to_end() {
    let stack = TestStack::start().await;

    // Request.
    let created = stack.alice_requests_readonly().await;
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["state"], "pending");
    assert_eq!(created["target_role_arn"], "arn:aws:iam::123456789012:role/pim/alice-workload");
    assert_eq!(created["approvers"], json!(["bob", "carol"]));

    // The approval email, as the emulator received it.
    let mail = stack.mail_to("bob@example.com", &id).await;
    assert_eq!(mail.from, "pim@example.com");
    assert!(mail.subject.contains("alice requests prod-readonly"), "{}", mail.subject);
    assert!(mail.body.contains("incident INC-1234: reading logs"));
    let link = stack.link_for("bob@example.com", &id).await;
    assert!(link.starts_with(&format!("{}/approvals/", stack.base_url)), "{link}");

    // Opening the link changes nothing.
    let before = stack.snapshot().await;
    let (page, cookie) = stack.open(&link).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("prod-readonly") && page.text.contains("value=\"approve\""));
    assert!(cookie.is_some());
    assert_eq!(stack.snapshot().await, before);

    // Approve through the page.
    let decided = stack.press(&link, "approve").await;
    assert_eq!(decided.status, 200, "{}", decided.text);
    assert!(decided.text.contains("Access is active until"), "{}", decided.text);

    let shown = stack.show(people::ALICE, &id).await.json();
    assert_eq!(shown["state"], "active");
    let grant = &shown["grant"];
    let (starts_at, ends_at) = (time(&grant["starts_at"]), time(&grant["ends_at"]));
    assert_eq!((ends_at - starts_at).num_seconds(), 3600);
    assert_eq!(starts_at, stack.clock_now());

    // The role holds exactly one grant policy, bounded by the window in UTC.
    let policies = stack.role_policies("alice-workload").await;
    let policy_name = format!("pim-{}", grant["id"].as_str().unwrap());
    assert_eq!(policies.keys().collect::<Vec<_>>(), vec![&policy_name]);
    let statements = policies[&policy_name]["Statement"].as_array().unwrap().clone();
    assert!(!statements.is_empty());
    for statement in &statements {
        assert_eq!(statement["Effect"], "Allow");
        assert_eq!(
            statement["Condition"]["DateGreaterThan"]["aws:CurrentTime"],
            grant["starts_at"]
        );
        assert_eq!(statement["Condition"]["DateLessThan"]["aws:CurrentTime"], grant["ends_at"]);
    }
    assert!(grant["ends_at"].as_str().unwrap().ends_with('Z'));

    // The schedule fires exactly at the policy's end, in UTC, once, then deletes itself.
    let schedule_name = format!("pim-expire-{}", grant["id"].as_str().unwrap());
    let schedule = stack
        .clients
        .scheduler
        .get_schedule()
        .group_name(&stack.settings.schedule_group)
        .name(&schedule_name)
        .send()
        .await
        .unwrap();
    assert_eq!(schedule.schedule_expression(), Some(at_expression(ends_at).as_str()));
    assert_eq!(schedule.schedule_expression_timezone(), Some("UTC"));
    assert_eq!(schedule.flexible_time_window().unwrap().mode().as_str(), "OFF");
    assert_eq!(schedule.action_after_completion().map(|a| a.as_str()), Some("DELETE"));
    let target = schedule.target().unwrap();
    assert_eq!(target.arn(), stack.settings.revocation_arn);
    assert_eq!(target.role_arn(), stack.settings.scheduler_role_arn);
    let dead_letter = target.dead_letter_config().and_then(|config| config.arn());
    assert_eq!(dead_letter, Some(stack.settings.schedule_dlq_arn.as_str()));

    // The requester is told.
    let told = stack.mail_to("alice@example.com", &id).await;
    assert!(told.subject.contains("approved"), "{}", told.subject);

    // Expiry: the revocation entry point with the schedule's own payload.
    stack.clock.set(ends_at);
    let payload = stack.schedule_payload(&schedule_name).await;
    assert_eq!(
        payload,
        ExpiryEvent {
            kind: "grant_expiry".into(),
            request_id: id.clone(),
            grant_id: grant["id"].as_str().unwrap().into()
        }
    );
    let outcome = pim_revocation::handle(&stack.pim, payload.clone()).await.unwrap();
    assert_eq!(outcome["outcome"], "expired");
    assert!(stack.role_policies("alice-workload").await.is_empty());

    // Delivering it again changes nothing more.
    let after_first = stack.snapshot().await;
    let again = pim_revocation::handle(&stack.pim, payload).await.unwrap();
    assert_eq!(again["outcome"], "already_ended");
    assert_eq!(stack.snapshot().await, after_first);

    // The audit records tell the whole story, in order.
    let shown = stack.show(people::ALICE, &id).await.json();
    assert_eq!(shown["state"], "expired");
    let history = shown["history"].as_array().unwrap();
    let story: Vec<(&str, &str, &str)> = history
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap(),
                r["outcome"].as_str().unwrap(),
                r["actor"]["id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        story,
        [
            ("request.created", "success", "alice"),
            ("request.approved", "success", "bob"),
            ("grant.activated", "success", "grant"),
            ("grant.expired", "success", "schedule"),
        ]
    );
    for (index, record) in history.iter().enumerate() {
        assert_eq!(record["schema"], "pim.audit/2");
        assert_eq!(record["request_id"], id.as_str());
        assert_eq!(record["request_version"], index as u64 + 1);
        assert!(record["time"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(history[0]["details"]["justification"], "incident INC-1234: reading logs");
    assert_eq!(history[2]["details"]["ends_at"], grant["ends_at"]);
    assert_eq!(history[3]["details"]["policy_was_present"], true);
}

#[tokio::test]
async fn a_denied_request_writes_nothing_to_iam_and_tells_the_requester() {
    let stack = TestStack::start().await;
    let id = stack.alice_requests_readonly().await["id"].as_str().unwrap().to_string();
    let link = stack.link_for("carol@example.com", &id).await;

    let denied = stack.press(&link, "deny").await;
    assert_eq!(denied.status, 200, "{}", denied.text);
    let shown = stack.show(people::ALICE, &id).await.json();
    assert_eq!(shown["state"], "denied");
    assert_eq!(shown["decisions"][0]["approver"], "carol");
    assert!(stack.role_policies("alice-workload").await.is_empty());
    // Only the request's reminder timer, which finds it decided when it fires.
    assert_eq!(stack.snapshot().await.schedules, [format!("pim-remind-{id}")]);
    assert!(stack.mail_to("alice@example.com", &id).await.subject.contains("denied"));

    // The other approver's link can no longer approve.
    let late = stack.press(&stack.link_for("bob@example.com", &id).await, "approve").await;
    assert_eq!(late.status, 200, "the page shows the request is over: {}", late.text);
    assert!(late.text.contains("nothing left to decide"));
    let before = stack.snapshot().await;
    let (_, cookie) = stack.open(&stack.link_for("bob@example.com", &id).await).await;
    let forced = stack
        .post_form(
            &stack.link_for("bob@example.com", &id).await,
            &cookie.unwrap(),
            &format!("csrf={}&decision=approve", "x"),
        )
        .await;
    assert_eq!(forced.status, 403, "{}", forced.text);
    assert_eq!(stack.snapshot().await.without_refusals(), before.without_refusals());
}

#[tokio::test]
async fn a_pending_request_can_be_cancelled_by_its_requester_only() {
    let stack = TestStack::start().await;
    let id = stack.alice_requests_readonly().await["id"].as_str().unwrap().to_string();
    let cancel = |caller: &'static str| {
        let path = format!("/requests/{id}/cancel");
        let stack = &stack;
        async move { stack.call(reqwest::Method::POST, &path, Some(caller), None, vec![]).await }
    };

    let by_bob = cancel(people::BOB).await;
    assert_eq!((by_bob.status, by_bob.code().as_str()), (404, "request_not_found"));

    let cancelled = cancel(people::ALICE).await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.text);
    assert_eq!(cancelled.json()["state"], "cancelled");

    let twice = cancel(people::ALICE).await;
    assert_eq!((twice.status, twice.code().as_str()), (409, "invalid_state"));

    // The approval link of a cancelled request decides nothing.
    let link = stack.link_for("bob@example.com", &id).await;
    let before = stack.snapshot().await;
    let (page, cookie) = stack.open(&link).await;
    assert!(page.csrf().is_none(), "no form on a cancelled request");
    let forced =
        stack.post_form(&link, &cookie.clone().unwrap(), "csrf=abc&decision=approve").await;
    assert_eq!(forced.status, 403);
    let cookie_value = cookie.unwrap().split_once('=').unwrap().1.to_string();
    let with_csrf = stack
        .post_form(
            &link,
            &format!("pim_csrf={cookie_value}"),
            &format!("csrf={cookie_value}&decision=approve"),
        )
        .await;
    assert_eq!((with_csrf.status, with_csrf.code().as_str()), (409, "invalid_state"));
    assert_eq!(stack.snapshot().await.without_refusals(), before.without_refusals());
    assert!(stack.role_policies("alice-workload").await.is_empty());
}

#[tokio::test]
async fn requesters_see_their_own_requests_and_oidc_callers_are_people_too() {
    let stack = TestStack::start().await;
    let first = stack.alice_requests_readonly().await["id"].as_str().unwrap().to_string();
    let by_oidc = stack
        .create_as_oidc(
            "Alice@Example.com",
            json!({ "role": "prod-db-admin", "justification": "CHG-7: schema migration" }),
        )
        .await;
    assert_eq!(by_oidc.status, 201, "{}", by_oidc.text);
    let second = by_oidc.json();
    assert_eq!(second["requester"], "alice");
    assert_eq!(second["duration_secs"], 1800, "the role's default duration applies");

    let listed = stack
        .call(reqwest::Method::GET, "/requests", Some(people::ALICE), None, vec![])
        .await
        .json();
    let ids: Vec<&str> =
        listed["requests"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&first.as_str()) && ids.contains(&second["id"].as_str().unwrap()));

    let bobs =
        stack.call(reqwest::Method::GET, "/requests", Some(people::BOB), None, vec![]).await.json();
    assert_eq!(bobs["requests"], json!([]));

    // An approver may look at a request they were asked about; others may not.
    assert_eq!(stack.show(people::CAROL, &first).await.status, 200);
    assert_eq!(stack.show(people::DAVE, &first).await.status, 404);
}

#[tokio::test]
async fn a_schedule_that_cannot_be_created_leaves_no_access_and_says_why() {
    let stack = TestStack::start().await;
    let id = stack.alice_requests_readonly().await["id"].as_str().unwrap().to_string();
    let link = stack.link_for("bob@example.com", &id).await;
    // Remove the schedule group: creating the expiry schedule now fails.
    stack
        .clients
        .scheduler
        .delete_schedule_group()
        .name(&stack.settings.schedule_group)
        .send()
        .await
        .unwrap();

    let decided = stack.press(&link, "approve").await;
    assert_eq!(
        (decided.status, decided.code().as_str()),
        (502, "grant_failed"),
        "{}",
        decided.text
    );
    assert!(decided.text.contains("expiry schedule could not be created"), "{}", decided.text);
    let shown = stack.show(people::ALICE, &id).await.json();
    assert_eq!(shown["state"], "failed");
    assert_eq!(shown["reason"], "the expiry schedule could not be created");
    assert!(stack.role_policies("alice-workload").await.is_empty());
    let actions: Vec<&str> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["request.created", "request.approved", "grant.failed"]);
    assert!(stack.mail_to("alice@example.com", &id).await.subject.contains("could not be granted"));
}
