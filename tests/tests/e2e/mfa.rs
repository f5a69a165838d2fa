//! One-time codes through the API: enrolment, the requester's code where the role requires
//! it, the approver's code on the confirmation page, and a fresh OIDC multi-factor sign-in.
//! Codes are computed from the secret the enrolment returned, at the stack's virtual time.

use chrono::Duration;
use pim_local::gateway::{OIDC_CLAIMS_HEADER, OIDC_HEADER};
use pim_local::provision::EXAMPLE_POLICY;
use pim_tests::{Answer, TestStack, people};
use serde_json::{Value, json};

/// The example policy with prod-readonly asking requesters and approvers for a code.
fn policy() -> String {
    let shorthand = "    approvers: [bob, carol]\n";
    assert_eq!(EXAMPLE_POLICY.matches(shorthand).count(), 1);
    EXAMPLE_POLICY.replace(
        shorthand,
        "    constraints: {requester_mfa: true}\n    approval:\n      - {name: with-codes, approvers: [bob, carol], approver_mfa: true}\n",
    )
}

/// Enrols `caller` and returns the secret's bytes, as their app would hold them.
async fn enrol(stack: &TestStack, caller: &str) -> Vec<u8> {
    let issued = stack.post_json(caller, "/mfa/enrollment", json!({})).await;
    assert_eq!(issued.status, 201, "{}", issued.text);
    let issued = issued.json();
    assert_eq!(issued["state"], "pending");
    let secret = issued["secret"].as_str().unwrap();
    assert!(issued["otpauth_uri"].as_str().unwrap().contains(&format!("secret={secret}")));
    let bytes = totp_rs::Secret::try_from_base32(secret).unwrap().as_bytes().to_vec();
    let confirmed = stack
        .post_json(caller, "/mfa/enrollment/confirm", json!({ "code": code(stack, &bytes, 0) }))
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.text);
    bytes
}

/// The code the app shows `offset` seconds from the stack's now.
fn code(stack: &TestStack, secret: &[u8], offset: i64) -> String {
    pim::mfa::code_at(secret, stack.clock_now() + Duration::seconds(offset)).unwrap()
}

fn readonly(code: Option<&str>) -> Value {
    let mut body = json!({ "role": "prod-readonly", "duration": "PT1H", "justification": "incident INC-77: reading logs" });
    if let Some(code) = code {
        body["mfa_code"] = json!(code);
    }
    body
}

fn refusal_codes(chain: &[Value]) -> Vec<String> {
    chain
        .iter()
        .filter(|r| r["outcome"] == "refused")
        .map(|r| r["code"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn requester_codes_right_wrong_reused_stale_and_missing() {
    let stack = TestStack::with_policy(&policy()).await;

    // Not enrolled yet: refused, and nothing is stored.
    let before = stack.snapshot().await;
    let refused = stack.create(people::ALICE, readonly(Some("123456"))).await;
    assert_eq!((refused.status, refused.code().as_str()), (403, "mfa_not_enrolled"));
    assert_eq!(stack.snapshot().await.without_refusals(), before.without_refusals());

    let secret = enrol(&stack, people::ALICE).await;
    // The confirming code's step is spent: the same code cannot create a request.
    stack.clock.advance(Duration::seconds(1));
    let reused = stack.create(people::ALICE, readonly(Some(&code(&stack, &secret, -1)))).await;
    assert_eq!((reused.status, reused.code().as_str()), (403, "mfa_code_used"), "{}", reused.text);

    stack.clock.advance(Duration::seconds(60));
    for (body, expected) in [
        (readonly(None), "mfa_required"),
        (readonly(Some("000000")), "mfa_invalid"),
        (readonly(Some("12345")), "mfa_invalid"),
        (readonly(Some(&code(&stack, &secret, -90))), "mfa_invalid"),
        (readonly(Some(&code(&stack, &secret, 90))), "mfa_invalid"),
    ] {
        let refused = stack.create(people::ALICE, body).await;
        assert_eq!(
            (refused.status, refused.code()),
            (403, expected.to_string()),
            "{}",
            refused.text
        );
    }

    // A code from the step before still counts (clock skew); then it is used up.
    let current = code(&stack, &secret, -30);
    let created = stack.create(people::ALICE, readonly(Some(&current))).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let again = stack.create(people::ALICE, readonly(Some(&current))).await;
    assert_eq!(again.code(), "mfa_code_used");
    // An older step after a newer one is refused too.
    let older = code(&stack, &secret, -60);
    let refused = stack.create(people::ALICE, readonly(Some(&older))).await;
    assert_eq!(refused.code(), "mfa_invalid", "two steps back is stale");

    let chain = stack.chain().await;
    let created_record = chain.iter().find(|r| r["action"] == "request.created").unwrap();
    assert_eq!(created_record["details"]["mfa"], "totp");
    assert_eq!(
        refusal_codes(&chain),
        [
            "mfa_not_enrolled",
            "mfa_code_used",
            "mfa_required",
            "mfa_invalid",
            "mfa_invalid",
            "mfa_invalid",
            "mfa_invalid",
            "mfa_code_used",
            "mfa_invalid"
        ]
    );
    // No code, and no secret, reaches a record.
    let text = serde_json::to_string(&chain).unwrap();
    assert!(!text.contains(&current) && !text.contains(&older), "a code reached a record");
    let base32 = totp_rs::Secret::new(secret.clone().into_boxed_slice()).to_base32();
    assert!(!text.contains(&base32), "the secret reached a record");
}

#[tokio::test]
async fn approvals_need_the_approvers_code_and_denials_do_not() {
    let stack = TestStack::with_policy(&policy()).await;
    let alice = enrol(&stack, people::ALICE).await;
    let bob = enrol(&stack, people::BOB).await;
    stack.clock.advance(Duration::seconds(30));

    let created = stack.create(people::ALICE, readonly(Some(&code(&stack, &alice, 0)))).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json()["id"].as_str().unwrap().to_string();
    let link = stack.link_for("bob@example.com", &id).await;

    // The page asks for the code; a plain press (no code) is refused and grants nothing.
    let (page, _) = stack.open(&link).await;
    assert!(page.text.contains("name=\"mfa_code\""), "{}", page.text);
    let refused = stack.press(&link, "approve").await;
    assert_eq!(refused.code(), "mfa_required", "{}", refused.text);
    assert!(stack.role_policies("alice-workload").await.is_empty());

    // Carol never enrolled: her approval is refused whatever she types.
    let carol_link = stack.link_for("carol@example.com", &id).await;
    let refused = press_with_code(&stack, &carol_link, "approve", "123456").await;
    assert_eq!(refused.code(), "mfa_not_enrolled", "{}", refused.text);

    let wrong = press_with_code(&stack, &link, "approve", "000000").await;
    assert_eq!(wrong.code(), "mfa_invalid", "{}", wrong.text);
    let approved = press_with_code(&stack, &link, "approve", &code(&stack, &bob, 0)).await;
    assert_eq!(approved.status, 200, "{}", approved.text);
    let shown = stack.show(people::ALICE, &id).await.json();
    assert_eq!(shown["state"], "active");
    let approval = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "request.approved")
        .unwrap()
        .clone();
    assert_eq!(approval["details"]["mfa"], "totp");

    // A denial grants nothing, so it needs no code.
    stack.clock.advance(Duration::seconds(60));
    let second = stack.create(people::ALICE, readonly(Some(&code(&stack, &alice, 0)))).await;
    let second_id = second.json()["id"].as_str().unwrap().to_string();
    let denied = stack.press(&stack.link_for("carol@example.com", &second_id).await, "deny").await;
    assert_eq!(denied.status, 200, "{}", denied.text);
    assert_eq!(stack.show(people::ALICE, &second_id).await.json()["state"], "denied");
}

/// Opens the link and submits the form with a typed code.
async fn press_with_code(stack: &TestStack, link: &str, decision: &str, code: &str) -> Answer {
    let (page, cookie) = stack.open(link).await;
    let csrf = page.csrf().unwrap();
    let form = format!("csrf={csrf}&decision={decision}&mfa_code={code}");
    stack.post_form(link, &cookie.unwrap(), &form).await
}

#[tokio::test]
async fn enrolment_is_confirmed_once_and_an_active_one_is_never_replaced() {
    let stack = TestStack::with_policy(&policy()).await;
    let confirm = |code: &str| json!({ "code": code });

    let nothing = stack.post_json(people::BOB, "/mfa/enrollment/confirm", confirm("123456")).await;
    assert_eq!(nothing.code(), "mfa_not_enrolled");

    // Issuing again while pending replaces the secret: the first one no longer confirms.
    let first = stack.post_json(people::BOB, "/mfa/enrollment", json!({})).await.json();
    let second = stack.post_json(people::BOB, "/mfa/enrollment", json!({})).await.json();
    assert_ne!(first["secret"], second["secret"]);
    let bytes = |issued: &Value| {
        totp_rs::Secret::try_from_base32(issued["secret"].as_str().unwrap())
            .unwrap()
            .as_bytes()
            .to_vec()
    };
    let stale = stack
        .post_json(
            people::BOB,
            "/mfa/enrollment/confirm",
            confirm(&code(&stack, &bytes(&first), 0)),
        )
        .await;
    assert_eq!(stale.code(), "mfa_invalid");
    let done = stack
        .post_json(
            people::BOB,
            "/mfa/enrollment/confirm",
            confirm(&code(&stack, &bytes(&second), 0)),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.text);

    let replaced = stack.post_json(people::BOB, "/mfa/enrollment", json!({})).await;
    assert_eq!((replaced.status, replaced.code().as_str()), (409, "mfa_already_enrolled"));
    let reconfirmed =
        stack.post_json(people::BOB, "/mfa/enrollment/confirm", confirm("123456")).await;
    assert_eq!(reconfirmed.code(), "mfa_already_enrolled");
    let unknown = stack.post_json(people::MALLORY, "/mfa/enrollment", json!({})).await;
    assert_eq!(unknown.code(), "unknown_requester");

    let actions: Vec<String> = stack
        .chain()
        .await
        .iter()
        .map(|r| format!("{} {}", r["action"].as_str().unwrap(), r["code"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        actions,
        [
            "mfa.refused mfa_not_enrolled",
            "mfa.enrollment_started ",
            "mfa.enrollment_started ",
            "mfa.refused mfa_invalid",
            "mfa.enrolled ",
            "mfa.refused mfa_already_enrolled",
            "mfa.refused mfa_already_enrolled",
        ]
    );
}

#[tokio::test]
async fn a_fresh_oidc_multi_factor_sign_in_counts_and_a_stale_one_does_not() {
    let stack = TestStack::with_policy(&policy()).await;
    let now = stack.clock_now().timestamp();
    let by_oidc = |claims: Value| {
        stack
            .http
            .post(format!("{}/requests", stack.base_url))
            .header(OIDC_HEADER, "alice@example.com")
            .header(OIDC_CLAIMS_HEADER, claims.to_string())
            .json(&readonly(None))
    };
    let fresh = json!({ "amr": "[pwd mfa]", "auth_time": (now - 60).to_string() });
    let answer = pim_tests::answer(by_oidc(fresh)).await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    let id = answer.json()["id"].as_str().unwrap().to_string();

    for claims in [
        json!({ "amr": "[pwd mfa]", "auth_time": (now - 600).to_string() }),
        json!({ "amr": "[pwd]", "auth_time": (now - 60).to_string() }),
        json!({}),
    ] {
        let answer = pim_tests::answer(by_oidc(claims.clone())).await;
        assert_eq!(answer.code(), "mfa_required", "{claims}: {}", answer.text);
    }
    let chain = stack.chain().await;
    let created = chain.iter().find(|r| r["request_id"] == id.as_str()).unwrap();
    assert_eq!(created["details"]["mfa"], "oidc");
}
