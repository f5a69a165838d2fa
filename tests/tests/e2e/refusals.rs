//! Requests that must be refused before anything is stored.

use pim_tests::{Answer, TestStack, people};
use serde_json::json;

fn assert_problem(answer: &Answer, status: u16, code: &str) {
    assert_eq!((answer.status, answer.code().as_str()), (status, code), "{}", answer.text);
    assert_eq!(answer.header("content-type").as_deref(), Some("application/problem+json"));
    let problem = answer.json();
    assert_eq!(problem["status"], status);
    assert_eq!(problem["type"], format!("urn:pim:problem:{code}"));
    assert!(!problem["detail"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn policy_refusals_are_403_with_a_record_and_nothing_else() {
    let stack = TestStack::start().await;
    // The emulator's mailbox is shared by all tests: look for this test's own marker.
    let marker = format!("refusal-{}", stack.account);
    let body = |role: &str| json!({ "role": role, "duration": "PT1H", "justification": format!("triage {marker}") });
    let cases = [
        (people::ALICE, body("no-such-role"), "role_not_in_catalog"),
        (people::DAVE, body("prod-readonly"), "not_eligible"),
        (people::BOB, body("prod-db-admin"), "not_eligible"),
        (people::MALLORY, body("prod-readonly"), "unknown_requester"),
    ];
    let before = stack.snapshot().await;
    for (caller, body, code) in &cases {
        let answer = stack.create(caller, body.clone()).await;
        assert_problem(&answer, 403, code);
    }
    let after = stack.snapshot().await;
    assert_eq!(
        after.without_refusals(),
        before.without_refusals(),
        "no request, policy or schedule"
    );
    assert!(stack.all_mail_to("bob@example.com", &marker).await.is_empty());
    assert!(stack.all_mail_to("carol@example.com", &marker).await.is_empty());

    let refusals = stack.refusals().await;
    let codes: Vec<&str> = refusals.iter().map(|r| r["code"].as_str().unwrap()).collect();
    assert_eq!(codes.len(), cases.len());
    for (_, _, code) in &cases {
        assert!(codes.contains(code), "{code} recorded: {codes:?}");
    }
    for refusal in &refusals {
        assert_eq!(refusal["action"], "request.refused");
        assert_eq!(refusal["outcome"], "refused");
        assert!(refusal["actor"]["principal"].as_str().unwrap().starts_with("arn:aws:sts::"));
        assert!(refusal["time"].as_str().unwrap().ends_with('Z'));
    }
}

#[tokio::test]
async fn malformed_or_hostile_bodies_are_4xx_and_write_nothing() {
    let stack = TestStack::start().await;
    let json_type = Some("application/json");
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let cases: Vec<(Option<&str>, Vec<u8>, u16, &str)> = vec![
        (json_type, b"{not json".to_vec(), 400, "malformed_body"),
        (json_type, vec![0xff, 0xfe, b'{', b'}'], 400, "malformed_body"),
        (json_type, vec![b' '; 1024 * 1024], 413, "body_too_large"),
        (json_type, deep.into_bytes(), 400, "malformed_body"),
        (json_type, br#"{"role":"prod-readonly","role":"prod-db-admin","justification":"incident INC-1: triage"}"#.to_vec(), 400, "malformed_body"),
        (json_type, br#"{"role":"prod-readonly","justification":"incident INC-1: triage","target_role_arn":"arn:aws:iam::123456789012:role/pim/bob-workload"}"#.to_vec(), 400, "malformed_body"),
        (json_type, br#"{"role":42,"justification":"incident INC-1: triage"}"#.to_vec(), 400, "malformed_body"),
        (json_type, br#"{"role":"prod-readonly","justification":"incident \u001b[2J INC-1"}"#.to_vec(), 400, "invalid_justification"),
        (json_type, br#"{"role":"prod-readonly","justification":"short"}"#.to_vec(), 400, "invalid_justification"),
        (Some("text/plain"), br#"{"role":"prod-readonly","justification":"incident INC-1: triage"}"#.to_vec(), 415, "unsupported_media_type"),
        (None, br#"{"role":"prod-readonly","justification":"incident INC-1: triage"}"#.to_vec(), 415, "unsupported_media_type"),
    ];
    let before = stack.snapshot().await;
    for (content_type, body, status, code) in cases {
        let answer = stack
            .call(reqwest::Method::POST, "/requests", Some(people::ALICE), content_type, body)
            .await;
        assert_problem(&answer, status, code);
    }
    assert_eq!(stack.snapshot().await, before, "zero writes, not even a refusal record");
}

#[tokio::test]
async fn durations_are_bounded_on_the_server() {
    let stack = TestStack::start().await;
    let before = stack.snapshot().await;
    let cases = [
        (json!("PT4H1S"), "duration_over_maximum"),
        (json!("P1D"), "duration_over_maximum"),
        (json!(0), "invalid_duration"),
        (json!(-60), "invalid_duration"),
        (json!("PT0S"), "invalid_duration"),
        (json!(1.5), "invalid_duration"),
        (json!("99999999999999999999999"), "invalid_duration"),
        (json!(u64::MAX), "invalid_duration"),
        (json!("an hour"), "invalid_duration"),
    ];
    for (duration, code) in cases {
        let answer = stack
            .create(people::ALICE, json!({ "role": "prod-readonly", "duration": duration, "justification": "incident INC-1: triage" }))
            .await;
        assert_problem(&answer, 400, code);
    }
    assert_eq!(stack.snapshot().await, before);

    // Exactly the maximum is accepted, in any accepted spelling.
    for duration in [json!("PT4H"), json!("4h"), json!(14_400)] {
        let answer = stack
            .create(people::ALICE, json!({ "role": "prod-readonly", "duration": duration, "justification": "incident INC-1: triage" }))
            .await;
        assert_eq!(answer.status, 201, "{}", answer.text);
        assert_eq!(answer.json()["duration_secs"], 14_400);
    }
}

#[tokio::test]
async fn callers_without_an_authenticated_identity_are_refused() {
    let stack = TestStack::start().await;
    let before = stack.snapshot().await;
    let body = serde_json::to_vec(
        &json!({ "role": "prod-readonly", "justification": "incident INC-1: triage" }),
    )
    .unwrap();
    let answer =
        stack.call(reqwest::Method::POST, "/requests", None, Some("application/json"), body).await;
    assert_problem(&answer, 403, "unauthenticated");
    let listed = stack.call(reqwest::Method::GET, "/requests", None, None, vec![]).await;
    assert_problem(&listed, 403, "unauthenticated");
    let garbage = stack.call(reqwest::Method::GET, "/requests", Some("alice"), None, vec![]).await;
    assert_problem(&garbage, 403, "unauthenticated");
    assert_eq!(stack.snapshot().await, before);
}

/// R23: a person's requests beyond the policy's hourly limit are refused with 429 and a
/// `Retry-After`, store nothing and send no mail, also when they race (the count is part
/// of the request's own transaction); the limit is per person, and the next hour counts
/// afresh.
#[tokio::test]
async fn a_flood_of_requests_is_refused_with_429_and_sends_no_mail() {
    let policy = pim_local::provision::EXAMPLE_POLICY.replacen(
        "  requests_per_hour: 20\n",
        "  requests_per_hour: 3\n",
        1,
    );
    assert!(policy.contains("requests_per_hour: 3"));
    let stack = TestStack::with_policy(&policy).await;
    let marker = format!("flood-{}", stack.account);
    let body = |n: usize| {
        json!({ "role": "prod-readonly", "duration": "PT1H",
                "justification": format!("incident {marker} number {n}") })
    };

    let before = stack.snapshot().await;
    let answers =
        futures::future::join_all((0..8).map(|n| stack.create(people::ALICE, body(n)))).await;
    let created: Vec<&Answer> = answers.iter().filter(|a| a.status == 201).collect();
    assert_eq!(created.len(), 3, "{:?}", answers.iter().map(|a| a.status).collect::<Vec<_>>());
    for refused in answers.iter().filter(|a| a.status != 201) {
        assert_problem(refused, 429, "too_many_requests");
        let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=3600).contains(&retry), "{retry}");
    }

    // Only the three are stored and mailed; each refusal is recorded.
    let listed = stack
        .call(reqwest::Method::GET, "/requests", Some(people::ALICE), None, vec![])
        .await
        .json();
    assert_eq!(listed["requests"].as_array().unwrap().len(), 3);
    assert_eq!(stack.all_mail_to("bob@example.com", &marker).await.len(), 3);
    assert_eq!(stack.all_mail_to("carol@example.com", &marker).await.len(), 3);
    let floods: Vec<_> =
        stack.refusals().await.into_iter().filter(|r| r["code"] == "too_many_requests").collect();
    assert_eq!(floods.len(), 5);
    assert!(floods.iter().all(|r| r["action"] == "request.refused"));
    let after = stack.snapshot().await;
    let new_requests =
        after.items.keys().filter(|k| k.starts_with("REQ#") && !before.items.contains_key(*k));
    assert_eq!(new_requests.filter(|k| k.ends_with("|REQUEST")).count(), 3);

    // Someone else is not held back by alice's flood.
    assert_eq!(stack.create(people::BOB, body(100)).await.status, 201);
    // The next hour counts afresh.
    stack.clock.advance(chrono::Duration::hours(1));
    assert_eq!(stack.create(people::ALICE, body(101)).await.status, 201);

    // Extension requests count too. In another hour (a Thursday morning, when alice's
    // on-call rule grants ten minutes of prod-admin at once), her grant and two requests
    // use up the three; the extension request that would mail approvers is refused.
    stack.clock.set("2026-12-03T10:00:00Z".parse().unwrap());
    let admin = json!({ "role": "prod-admin", "duration": "10m", "ticket": "INC-7",
        "justification": format!("restart the stuck fleet, {marker}") });
    let granted = stack.create(people::ALICE, admin).await.json();
    let grant = granted["grant"]["id"].as_str().expect("granted at once").to_string();
    for n in [102, 103] {
        assert_eq!(stack.create(people::ALICE, body(n)).await.status, 201);
    }
    let extend = json!({ "by": "PT30M", "reason": format!("the fleet needs longer, {marker}") });
    let path = format!("/grants/{grant}/extend");
    let body = serde_json::to_vec(&extend).unwrap();
    let refused = stack
        .call(reqwest::Method::POST, &path, Some(people::ALICE), Some("application/json"), body)
        .await;
    assert_problem(&refused, 429, "too_many_requests");
    let asked = format!("the fleet needs longer, {marker}");
    assert!(stack.all_mail_to("carol@example.com", &asked).await.is_empty(), "nothing mailed");
    let shown = stack.show(people::ALICE, granted["id"].as_str().unwrap()).await.json();
    assert_eq!(shown["grant"]["ends_at"], granted["grant"]["ends_at"]);
}
