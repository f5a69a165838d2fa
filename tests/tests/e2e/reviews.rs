//! Access reviews against the emulator: a campaign started on demand and decided through the
//! reviewers' mailed links, whose removal yields the expected change to the policy
//! document; and a campaign started on its schedule that misses its deadline.

use chrono::Duration;
use pim_local::provision::EXAMPLE_POLICY;
use pim_tests::{Answer, TestStack, people};
use serde_json::{Value, json};

const ERIN: &str = "arn:aws:sts::123456789012:assumed-role/security/erin";

async fn start(stack: &TestStack, caller: &str, body: Value) -> Answer {
    let body = serde_json::to_vec(&body).unwrap();
    stack
        .call(reqwest::Method::POST, "/reviews", Some(caller), Some("application/json"), body)
        .await
}

async fn oversight(stack: &TestStack) -> Value {
    pim_revocation::handle_event(&stack.pim, json!({ "kind": "oversight" })).await.unwrap()
}

/// The review links mailed to `email` for `campaign`, by the person they decide about. The
/// mail is matched by this stack's own link prefix: the mailbox is shared by every test.
async fn review_links(stack: &TestStack, email: &str, campaign: &str) -> Vec<(String, String)> {
    let mail = stack.mail_to(email, &format!("{}/reviews/", stack.base_url)).await;
    assert!(mail.body.contains(campaign), "{}", mail.body);
    let people: Vec<String> = mail
        .body
        .split("<li>")
        .skip(1)
        .map(|item| item.split(':').next().unwrap().to_string())
        .collect();
    people.into_iter().zip(mail.links()).collect()
}

fn link_for<'a>(links: &'a [(String, String)], person: &str) -> &'a str {
    &links.iter().find(|(p, _)| p == person).unwrap_or_else(|| panic!("no link for {person}")).1
}

/// The actions of the chain's records about `campaign`, in order.
async fn campaign_actions(stack: &TestStack, campaign: &str) -> Vec<String> {
    let chain = stack.chain().await;
    chain
        .iter()
        .filter(|r| r["details"]["campaign_id"] == campaign)
        .map(|r| r["action"].as_str().unwrap().to_string())
        .collect()
}

/// The diff the test expects for denying `names` on prod-admin, built from the example
/// policy's own lines: its `deny: [dave]` line gains the names, with three lines of
/// context either side.
fn expected_diff(names: &str) -> String {
    let lines: Vec<&str> = EXAMPLE_POLICY.lines().collect();
    let at = lines.iter().position(|l| *l == "    deny: [dave]").expect("the example denies dave");
    let mut diff =
        format!("--- a/policy.yaml\n+++ b/policy.yaml\n@@ -{},7 +{},7 @@\n", at - 2, at - 2);
    for line in &lines[at - 3..at] {
        diff.push_str(&format!(" {line}\n"));
    }
    diff.push_str("-    deny: [dave]\n");
    diff.push_str(&format!("+    deny: [dave, {names}]\n"));
    for line in &lines[at + 1..at + 4] {
        diff.push_str(&format!(" {line}\n"));
    }
    diff
}

#[tokio::test]
async fn a_campaign_through_mailed_links_keeps_one_removes_another_and_proposes_the_policy_change()
{
    let stack = TestStack::start().await;

    // Only administrators start reviews, of roles the policy has reviewers for.
    let before = stack.snapshot().await;
    let refused = start(&stack, people::ALICE, json!({ "role": "prod-admin" })).await;
    assert_eq!((refused.status, refused.code().as_str()), (403, "not_an_administrator"));
    assert_eq!(stack.snapshot().await.without_refusals(), before.without_refusals());
    let before = stack.snapshot().await;
    let cases = [
        (json!({ "role": "root" }), 404, "unknown_role"),
        (json!({ "role": "prod-readonly" }), 409, "no_review_policy"),
        (json!({ "role": "prod-admin", "extra": 1 }), 400, "malformed_body"),
        (json!({}), 400, "malformed_body"),
    ];
    for (body, status, code) in cases {
        let answer = start(&stack, ERIN, body.clone()).await;
        assert_eq!((answer.status, answer.code().as_str()), (status, code), "{body}");
    }
    assert_eq!(stack.snapshot().await, before);

    let started = start(&stack, ERIN, json!({ "role": "prod-admin" })).await;
    assert_eq!(started.status, 201, "{}", started.text);
    let campaign = started.json();
    let id = campaign["id"].as_str().unwrap().to_string();
    assert_eq!(campaign["state"], "open");
    assert_eq!(campaign["reviewers"], json!(["carol", "erin"]));
    let people: Vec<&Value> =
        campaign["items"].as_array().unwrap().iter().map(|i| &i["person"]).collect();
    assert_eq!(
        people,
        [&json!("alice"), &json!("bob")],
        "dave is denied, carol and erin cannot request"
    );
    let deadline: chrono::DateTime<chrono::Utc> =
        campaign["deadline"].as_str().unwrap().parse().unwrap();
    assert_eq!(deadline - stack.clock_now(), Duration::days(14));

    // Each reviewer gets a link per person.
    let carol = review_links(&stack, "carol@example.com", &id).await;
    let erin = review_links(&stack, "erin@example.com", &id).await;
    assert_eq!(carol.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(), ["alice", "bob"]);
    assert_eq!(erin.len(), 2);

    // Opening a link, as a mail scanner would, changes nothing.
    let before = stack.snapshot().await;
    for _ in 0..5 {
        let (page, _) = stack.open(link_for(&carol, "alice")).await;
        assert_eq!(page.status, 200, "{}", page.text);
        assert!(page.text.contains("value=\"keep\"") && page.text.contains("method=\"post\""));
        assert_eq!(page.header("cache-control").as_deref(), Some("no-store"));
    }
    assert_eq!(stack.snapshot().await, before);

    // A POST without the page's CSRF token decides nothing.
    let forged =
        stack.post_form(link_for(&carol, "alice"), "pim_csrf=x", "csrf=y&decision=remove").await;
    assert_eq!((forged.status, forged.code().as_str()), (403, "csrf_mismatch"));
    // A review link is not an approval link.
    let approval_path = link_for(&carol, "alice").replace("/reviews/", "/approvals/");
    let (misused, _) = stack.open(&approval_path).await;
    assert_eq!((misused.status, misused.code().as_str()), (403, "invalid_link"));

    // erin opens her page for alice; carol keeps alice meanwhile; erin's decision is then
    // refused and recorded.
    let (erin_page, erin_cookie) = stack.open(link_for(&erin, "alice")).await;
    let erin_csrf = erin_page.csrf().unwrap();
    let kept = stack.press(link_for(&carol, "alice"), "keep").await;
    assert_eq!(kept.status, 200, "{}", kept.text);
    assert!(kept.text.contains("1 people left to decide"), "{}", kept.text);
    let form = format!("csrf={erin_csrf}&decision=remove");
    let late = stack.post_form(link_for(&erin, "alice"), &erin_cookie.unwrap(), &form).await;
    assert_eq!((late.status, late.code().as_str()), (409, "already_decided"));
    let replay = stack.press(link_for(&carol, "alice"), "remove").await;
    assert_eq!(replay.status, 200, "the page opens and shows the decision: {}", replay.text);
    assert!(replay.text.contains("nothing left to decide"), "{}", replay.text);

    // erin removes bob: the campaign completes with the change to the policy.
    let removed = stack.press(link_for(&erin, "bob"), "remove").await;
    assert_eq!(removed.status, 200, "{}", removed.text);
    assert!(removed.text.contains("The review is complete"), "{}", removed.text);

    let actions = campaign_actions(&stack, &id).await;
    assert_eq!(actions, ["review.started", "review.decided", "review.decided", "review.completed"]);
    let chain = stack.chain().await;
    let completed = chain.iter().rfind(|r| r["action"] == "review.completed").unwrap();
    assert_eq!(completed["details"]["removed"], json!(["bob"]));
    assert_eq!(completed["details"]["kept"], json!(["alice"]));
    let diff = completed["details"]["policy_diff"].as_str().unwrap();
    assert_eq!(diff, expected_diff("bob"));
    let decided: Vec<&Value> = chain.iter().filter(|r| r["action"] == "review.decided").collect();
    assert_eq!(
        (
            decided[0]["actor"]["id"].as_str(),
            decided[0]["details"]["person"].as_str(),
            decided[0]["details"]["decision"].as_str()
        ),
        (Some("carol"), Some("alice"), Some("keep"))
    );
    let refusals: Vec<&Value> =
        chain.iter().filter(|r| r["action"] == "review.decision_refused").collect();
    assert!(refusals.iter().any(|r| r["code"] == "already_decided"), "{refusals:#?}");

    // The diff applied to the example makes bob ineligible, and only for this role.
    let applied =
        pim::catalog::diff::deny_people(EXAMPLE_POLICY, "prod-admin", &["bob".into()]).unwrap();
    let catalog = pim::catalog::Catalog::from_yaml(&applied).unwrap();
    let bob = catalog.person("bob").unwrap();
    assert!(
        pim::service::visibility::eligibility_of(catalog.role("prod-admin").unwrap(), bob)
            .is_none()
    );
    assert!(
        pim::service::visibility::eligibility_of(catalog.role("prod-readonly").unwrap(), bob)
            .is_some()
    );

    // The administrators are mailed the change.
    let told = stack.all_mail_to("erin@example.com", &id).await;
    let told = told.iter().find(|m| m.subject.contains("complete")).expect("completion mail");
    assert!(told.body.contains("+    deny: [dave, bob]"), "{}", told.body);
}

#[tokio::test]
async fn a_scheduled_campaign_starts_once_per_period_and_is_reported_when_overdue() {
    let stack = TestStack::start().await;
    let first = oversight(&stack).await["reviews"].clone();
    let started = first["started"].as_array().unwrap().clone();
    assert_eq!(started.len(), 1, "{first}");
    let id = started[0].as_str().unwrap().to_string();
    let period = stack.clock_now().timestamp() / (90 * 86_400);
    assert_eq!(id, format!("rev-prod-admin-{period}"));
    assert_eq!(
        oversight(&stack).await["reviews"],
        json!({ "started": [], "completed": [], "overdue": [] })
    );

    let carol = review_links(&stack, "carol@example.com", &id).await;
    assert_eq!(stack.press(link_for(&carol, "alice"), "keep").await.status, 200);

    // A day before the deadline nothing is reported; past it, once.
    stack.clock.advance(Duration::days(13));
    assert_eq!(oversight(&stack).await["reviews"]["overdue"], json!([]));
    stack.clock.advance(Duration::days(1) + Duration::minutes(1));
    assert_eq!(oversight(&stack).await["reviews"]["overdue"], json!([id]));
    assert_eq!(oversight(&stack).await["reviews"]["overdue"], json!([]));

    let actions = campaign_actions(&stack, &id).await;
    assert_eq!(actions, ["review.started", "review.decided", "review.overdue"]);
    let overdue =
        stack.chain().await.into_iter().rfind(|r| r["action"] == "review.overdue").unwrap();
    assert_eq!(overdue["details"]["undecided"], json!(["bob"]));
    for email in ["carol@example.com", "erin@example.com"] {
        let mail = stack.all_mail_to(email, &id).await;
        assert!(
            mail.iter().any(|m| m.subject.contains("overdue") && m.body.contains("bob")),
            "{email}"
        );
    }

    // The links expired with the deadline.
    let late = stack.press(link_for(&carol, "bob"), "remove").await;
    assert_eq!((late.status, late.code().as_str()), (403, "link_expired"));
}
