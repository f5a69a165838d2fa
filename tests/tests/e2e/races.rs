//! Races: the emulator's own conditional writes, and concurrent decisions on one request.

use aws_sdk_dynamodb::types::AttributeValue;
use pim_tests::{TestStack, people, s};

/// The control: if the emulator let two conditional writes both succeed, no other race
/// test could be trusted.
#[tokio::test]
async fn the_emulator_lets_exactly_one_conditional_write_win() {
    let stack = TestStack::start().await;
    let table = stack.settings.table.clone();
    for round in 0..3 {
        let key = format!("RACE#{round}");
        stack
            .clients
            .dynamodb
            .put_item()
            .table_name(&table)
            .item("pk", s(&key))
            .item("sk", s("x"))
            .item("version", AttributeValue::N("1".into()))
            .send()
            .await
            .unwrap();
        let attempts = (0..50).map(|writer| {
            let client = stack.clients.dynamodb.clone();
            let (table, key) = (table.clone(), key.clone());
            async move {
                client
                    .update_item()
                    .table_name(table)
                    .key("pk", s(&key))
                    .key("sk", s("x"))
                    .update_expression("SET version = :next, writer = :writer")
                    .condition_expression("version = :expected")
                    .expression_attribute_values(":expected", AttributeValue::N("1".into()))
                    .expression_attribute_values(":next", AttributeValue::N("2".into()))
                    .expression_attribute_values(":writer", AttributeValue::N(writer.to_string()))
                    .send()
                    .await
            }
        });
        let results = futures::future::join_all(attempts).await;
        let winners = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(winners, 1, "round {round}: exactly one conditional write may win");
    }
}

async fn page_form(stack: &TestStack, link: &str, decision: &str) -> (String, String) {
    let (page, cookie) = stack.open(link).await;
    let cookie = cookie.expect("page sets the CSRF cookie");
    let csrf = page.csrf().unwrap();
    (cookie, format!("csrf={csrf}&decision={decision}"))
}

#[tokio::test]
async fn many_concurrent_approvals_make_exactly_one_grant() {
    let stack = TestStack::start().await;
    for _ in 0..3 {
        let id = stack.alice_requests_readonly().await["id"].as_str().unwrap().to_string();
        let mut forms = Vec::new();
        for email in ["bob@example.com", "carol@example.com"] {
            let link = stack.link_for(email, &id).await;
            for _ in 0..10 {
                let (cookie, form) = page_form(&stack, &link, "approve").await;
                forms.push((link.clone(), cookie, form));
            }
        }
        let attempts = forms.iter().map(|(link, cookie, form)| stack.post_form(link, cookie, form));
        let answers = futures::future::join_all(attempts).await;
        let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
        assert!(statuses.iter().all(|s| *s == 200 || *s == 409), "{statuses:?}");

        let shown = stack.show(people::ALICE, &id).await.json();
        assert_eq!(shown["state"], "active");
        let approvals = shown["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == "request.approved")
            .count();
        assert_eq!(approvals, 1);
        let grant_policy = format!("pim-{}", shown["grant"]["id"].as_str().unwrap());
        assert!(stack.role_policies("alice-workload").await.contains_key(&grant_policy));
    }
    let snapshot = stack.snapshot().await;
    assert_eq!(snapshot.policies["alice-workload"].len(), 3, "one policy per request");
    let expiries = snapshot.schedules.iter().filter(|s| s.starts_with("pim-expire-")).count();
    assert_eq!(expiries, 3, "one expiry schedule per grant");
}

#[tokio::test]
async fn approve_racing_deny_ends_in_exactly_one_decision() {
    let stack = TestStack::start().await;
    for _ in 0..4 {
        let id = stack.alice_requests_readonly().await["id"].as_str().unwrap().to_string();
        let bob = stack.link_for("bob@example.com", &id).await;
        let carol = stack.link_for("carol@example.com", &id).await;
        let (bob_cookie, approve) = page_form(&stack, &bob, "approve").await;
        let (carol_cookie, deny) = page_form(&stack, &carol, "deny").await;
        let (approved, denied) = tokio::join!(
            stack.post_form(&bob, &bob_cookie, &approve),
            stack.post_form(&carol, &carol_cookie, &deny)
        );
        assert_eq!(
            [approved.status, denied.status].iter().filter(|s| **s == 200).count(),
            1,
            "{} / {}",
            approved.text,
            denied.text
        );

        let shown = stack.show(people::ALICE, &id).await.json();
        let decisions = shown["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == "request.approved" || r["action"] == "request.denied")
            .count();
        assert_eq!(decisions, 1);
        let policy_present = shown["grant"]["id"].as_str().map(|grant| format!("pim-{grant}"));
        match shown["state"].as_str().unwrap() {
            "denied" => assert!(policy_present.is_none()),
            "active" => assert!(
                stack.role_policies("alice-workload").await.contains_key(&policy_present.unwrap())
            ),
            other => panic!("unexpected state {other}"),
        }
    }
}

/// Two of three must approve: after the first approval, the second (the quorum's last) and
/// a third approver's deny race. Exactly one outcome, repeated; a deny that wins leaves no
/// policy, an approval that wins leaves the deny refused.
#[tokio::test]
async fn the_last_approval_of_a_quorum_racing_a_deny_ends_in_exactly_one_outcome() {
    let shorthand = "    approvers: [bob, carol]\n";
    let policy = pim_local::provision::EXAMPLE_POLICY.replace(
        shorthand,
        "    approval: [{name: two-of-three, approvers: [bob, carol, erin], quorum: 2}]\n",
    );
    let stack = TestStack::with_policy(&policy).await;
    let mut outcomes = Vec::new();
    for _ in 0..5 {
        let id = stack.alice_requests_readonly().await["id"].as_str().unwrap().to_string();
        let first = stack.press(&stack.link_for("bob@example.com", &id).await, "approve").await;
        assert_eq!(first.status, 200, "{}", first.text);
        let carol = stack.link_for("carol@example.com", &id).await;
        let erin = stack.link_for("erin@example.com", &id).await;
        let (carol_cookie, approve) = page_form(&stack, &carol, "approve").await;
        let (erin_cookie, deny) = page_form(&stack, &erin, "deny").await;
        let (approved, denied) = tokio::join!(
            stack.post_form(&carol, &carol_cookie, &approve),
            stack.post_form(&erin, &erin_cookie, &deny)
        );
        let winners = [approved.status, denied.status].iter().filter(|s| **s == 200).count();
        assert_eq!(winners, 1, "{} / {}", approved.text, denied.text);

        let shown = stack.show(people::ALICE, &id).await.json();
        let terminal = shown["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == "request.approved" || r["action"] == "request.denied")
            .count();
        assert_eq!(terminal, 1, "one terminal decision");
        let state = shown["state"].as_str().unwrap().to_string();
        match state.as_str() {
            "denied" => {
                assert_eq!(denied.status, 200);
                assert!(shown["grant"].is_null());
            }
            "active" => {
                assert_eq!(approved.status, 200);
                let policy = format!("pim-{}", shown["grant"]["id"].as_str().unwrap());
                assert!(stack.role_policies("alice-workload").await.contains_key(&policy));
            }
            other => panic!("unexpected state {other}"),
        }
        outcomes.push(state);
    }
    // One policy per request that ended active, none for the denied ones.
    let policies = stack.role_policies("alice-workload").await;
    let active = outcomes.iter().filter(|s| *s == "active").count();
    assert_eq!(policies.len(), active, "{outcomes:?}");
}
