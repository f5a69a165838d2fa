//! Approval links and the approval page: what a scanner, a forger, a replayer or another
//! site can do with them (nothing).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use pim::token::{self, LinkClaims, TOKEN_VERSION};
use pim_tests::{TestStack, people};
use serde_json::{Value, json};

fn split(link: &str) -> (String, String) {
    let (base, token) = link.rsplit_once('/').unwrap();
    (base.to_string(), token.to_string())
}

#[tokio::test]
async fn scanner_gets_and_heads_change_nothing_and_the_page_is_locked_down() {
    let stack = TestStack::start().await;
    let id = stack.alice_requests_readonly().await["id"].as_str().unwrap().to_string();
    let link = stack.link_for("bob@example.com", &id).await;
    let before = stack.snapshot().await;

    for _ in 0..50 {
        let (page, _) = stack.open(&link).await;
        assert_eq!(page.status, 200);
        let head = stack.http.head(&link).send().await.unwrap();
        assert_eq!(head.status(), 200);
    }
    assert_eq!(
        stack.snapshot().await,
        before,
        "GET and HEAD must not write anything, not even a refusal"
    );

    let (page, _) = stack.open(&link).await;
    assert_eq!(page.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(page.header("referrer-policy").as_deref(), Some("no-referrer"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"), "{csp}");
    assert!(page.text.contains("<form method=\"post\">"));
    assert!(!page.text.to_lowercase().contains("<script"));
    let cookie = page.header("set-cookie").unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(stack.role_policies("alice-workload").await.is_empty());
}

async fn cookie_value(stack: &TestStack, link: &str) -> String {
    let (_, cookie) = stack.open(link).await;
    cookie.unwrap()
}

#[tokio::test]
async fn a_link_works_once_even_when_replayed_concurrently() {
    let stack = TestStack::start().await;
    let id = stack.alice_requests_readonly().await["id"].as_str().unwrap().to_string();
    let link = stack.link_for("bob@example.com", &id).await;
    let cookie = cookie_value(&stack, &link).await;
    let csrf = cookie.split_once('=').unwrap().1.to_string();
    let form = format!("csrf={csrf}&decision=approve");

    let attempts = (0..12).map(|_| stack.post_form(&link, &cookie, &form));
    let answers = futures::future::join_all(attempts).await;
    let winners = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(
        winners,
        1,
        "{:?}",
        answers.iter().map(|a| (a.status, a.code())).collect::<Vec<_>>()
    );
    for loser in answers.iter().filter(|a| a.status != 200) {
        assert_eq!(loser.status, 409, "{}", loser.text);
        assert!(
            ["link_already_used", "invalid_state", "stale_request"]
                .contains(&loser.code().as_str())
        );
    }
    assert_eq!(stack.role_policies("alice-workload").await.len(), 1);
    let expiries = stack.snapshot().await.schedules;
    assert_eq!(expiries.iter().filter(|s| s.starts_with("pim-expire-")).count(), 1);

    // A later replay is refused too, and changes nothing.
    let before = stack.snapshot().await;
    let replay = stack.post_form(&link, &cookie, &form).await;
    assert_eq!(replay.status, 409);
    assert_eq!(stack.snapshot().await.without_refusals(), before.without_refusals());
}

#[tokio::test]
async fn tampered_forged_and_truncated_links_are_refused_with_403() {
    let stack = TestStack::start().await;
    let id = stack.alice_requests_readonly().await["id"].as_str().unwrap().to_string();
    let other = stack.alice_requests_readonly().await["id"].as_str().unwrap().to_string();
    let link = stack.link_for("bob@example.com", &id).await;
    let (base, token) = split(&link);
    let (payload, mac) = token.split_once('.').unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let reencode =
        |changed: Value| format!("{}.{mac}", URL_SAFE_NO_PAD.encode(changed.to_string()));

    let mut forged = Vec::new();
    for (field, value) in [
        ("rid", json!(other)),
        ("apr", json!("carol")),
        ("lid", json!("link-x")),
        ("exp", json!(4_000_000_000i64)),
        ("kid", json!("alias/other")),
    ] {
        let mut changed = claims.clone();
        changed[field] = value;
        forged.push(reencode(changed));
    }
    forged.push(token[..token.len() - 3].to_string());
    forged.push(payload.to_string());
    forged.push(format!("{token}{}", "A".repeat(2000)));
    forged.push(format!("{payload}.{}", URL_SAFE_NO_PAD.encode([0u8; 32])));
    let mut flipped = token.clone().into_bytes();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    forged.push(String::from_utf8(flipped).unwrap());
    forged.push("not-a-token".into());

    let before = stack.snapshot().await;
    let refusals_before = stack.refusals().await.len();
    for candidate in &forged {
        let target = format!("{base}/{candidate}");
        let (page, cookie) = stack.open(&target).await;
        assert_eq!((page.status, page.code().as_str()), (403, "invalid_link"), "GET {candidate}");
        assert!(cookie.is_none());
        let posted = stack.post_form(&target, "pim_csrf=abc", "csrf=abc&decision=approve").await;
        assert_eq!(
            (posted.status, posted.code().as_str()),
            (403, "invalid_link"),
            "POST {candidate}"
        );
    }
    assert_eq!(stack.snapshot().await.without_refusals(), before.without_refusals());
    let refusals = stack.refusals().await;
    assert_eq!(
        refusals.len() - refusals_before,
        forged.len(),
        "one refusal record per refused POST"
    );
    for refusal in &refusals {
        assert_eq!(refusal["action"], "decision.refused");
        let text = refusal.to_string();
        assert!(!text.contains(mac), "no MAC in audit records");
    }
}

#[tokio::test]
async fn expired_links_are_refused_at_and_after_their_expiry() {
    let stack = TestStack::start().await;
    let created = stack.alice_requests_readonly().await;
    let id = created["id"].as_str().unwrap().to_string();
    let link = stack.link_for("bob@example.com", &id).await;
    let cookie = cookie_value(&stack, &link).await;
    let csrf = cookie.split_once('=').unwrap().1.to_string();

    let pending_until: chrono::DateTime<chrono::Utc> =
        created["pending_until"].as_str().unwrap().parse().unwrap();
    stack.clock.set(pending_until);
    let before = stack.snapshot().await;
    let (page, _) = stack.open(&link).await;
    assert_eq!((page.status, page.code().as_str()), (403, "link_expired"));
    let posted = stack.post_form(&link, &cookie, &format!("csrf={csrf}&decision=approve")).await;
    assert_eq!((posted.status, posted.code().as_str()), (403, "link_expired"));
    stack.clock.advance(chrono::Duration::days(3));
    let posted = stack.post_form(&link, &cookie, &format!("csrf={csrf}&decision=approve")).await;
    assert_eq!((posted.status, posted.code().as_str()), (403, "link_expired"));
    assert_eq!(stack.snapshot().await.without_refusals(), before.without_refusals());
    assert!(stack.role_policies("alice-workload").await.is_empty());
}

#[tokio::test]
async fn decisions_without_the_csrf_token_or_from_another_site_are_refused() {
    let stack = TestStack::start().await;
    let id = stack.alice_requests_readonly().await["id"].as_str().unwrap().to_string();
    let link = stack.link_for("bob@example.com", &id).await;
    let cookie = cookie_value(&stack, &link).await;
    let csrf = cookie.split_once('=').unwrap().1.to_string();
    let good_form = format!("csrf={csrf}&decision=approve");
    let before = stack.snapshot().await;

    // No token, a wrong token, no cookie.
    for (cookie, form) in [
        (cookie.as_str(), "decision=approve".to_string()),
        (cookie.as_str(), "csrf=wrong&decision=approve".into()),
        ("", good_form.clone()),
    ] {
        let answer = stack.post_form(&link, cookie, &form).await;
        assert_eq!((answer.status, answer.code().as_str()), (403, "csrf_mismatch"), "{form}");
    }
    // Another origin, or a cross-site fetch.
    let cross = stack
        .http
        .post(&link)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .body(good_form.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    let cross = stack
        .http
        .post(&link)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", &cookie)
        .header("sec-fetch-site", "cross-site")
        .body(good_form.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    // Not a form.
    let json = stack
        .http
        .post(&link)
        .header("content-type", "application/json")
        .header("cookie", &cookie)
        .body(r#"{"decision":"approve"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 415);

    assert_eq!(stack.snapshot().await.without_refusals(), before.without_refusals());
    let codes: Vec<String> =
        stack.refusals().await.iter().map(|r| r["code"].as_str().unwrap().to_string()).collect();
    assert_eq!(codes.iter().filter(|c| *c == "csrf_mismatch").count(), 3);
    assert_eq!(codes.iter().filter(|c| *c == "cross_site_request").count(), 2);

    // The real page still works afterwards.
    let decided = stack.post_form(&link, &cookie, &good_form).await;
    assert_eq!(decided.status, 200, "{}", decided.text);
}

#[tokio::test]
async fn nobody_approves_their_own_request_whatever_the_spelling() {
    let stack = TestStack::start().await;
    // bob may request prod-readonly and also approves it; his own request goes to carol only.
    let shouted = people::BOB.to_uppercase().replace("ARN:AWS:STS", "arn:aws:sts");
    let created = stack.create(&shouted, json!({
        "role": "prod-readonly", "duration": "30m", "justification": "checking my own alarms"
    })).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let created = created.json();
    assert_eq!(created["requester"], "bob");
    assert_eq!(created["approvers"], json!(["carol"]));
    let id = created["id"].as_str().unwrap().to_string();
    assert!(
        stack.all_mail_to("bob@example.com", &id).await.is_empty(),
        "bob is not asked about his own request"
    );

    // Even a genuinely signed link for bob cannot approve it.
    let claims = LinkClaims {
        v: TOKEN_VERSION,
        kid: stack.settings.link_key_id.clone(),
        rid: id.clone(),
        apr: "bob".into(),
        lid: "link-self".into(),
        exp: created["pending_until"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
            .timestamp(),
        sub: None,
    };
    let token = token::issue(stack.pim.signer.as_ref(), &claims).await.unwrap();
    let link = format!("{}/approvals/{token}", stack.base_url);
    let before = stack.snapshot().await;
    let (page, cookie) = stack.open(&link).await;
    assert_eq!((page.status, page.code().as_str()), (403, "self_approval"));
    assert!(cookie.is_none());
    let posted = stack.post_form(&link, "pim_csrf=a", "csrf=a&decision=approve").await;
    assert_eq!((posted.status, posted.code().as_str()), (403, "self_approval"));
    assert_eq!(stack.snapshot().await.without_refusals(), before.without_refusals());
    let refusal = stack
        .refusals()
        .await
        .into_iter()
        .find(|r| r["code"] == "self_approval")
        .expect("recorded");
    assert_eq!(refusal["request_id"], id.as_str());
    assert_eq!(refusal["actor"]["id"], "bob");
}
