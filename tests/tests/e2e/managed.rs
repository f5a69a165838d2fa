//! Managed policies through the API against the emulator, which holds AWS's managed
//! policies (`scripts/emulator.py` loads them): the example's `security-audit` role renders
//! `AmazonS3ReadOnlyAccess` into the grant's inline policy and attaches `SecurityAudit` as
//! it is.

use chrono::Duration;
use pim::model::ExpiryEvent;
use pim::ports::{Attachment, AttachmentLedger};
use pim_local::provision::EXAMPLE_POLICY;
use pim_tests::{TestStack, people};
use serde_json::{Value, json};

const SECURITY_AUDIT: &str = "arn:aws:iam::aws:policy/SecurityAudit";
const S3_READ: &str = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess";
const ALICE_ROLE: &str = "alice-workload";

/// A granted request: its id, grant id, and the event that ends it.
struct Granted {
    id: String,
    grant_id: String,
    ends_at: chrono::DateTime<chrono::Utc>,
}

impl Granted {
    fn event(&self) -> ExpiryEvent {
        ExpiryEvent {
            kind: "grant_expiry".into(),
            request_id: self.id.clone(),
            grant_id: self.grant_id.clone(),
        }
    }
}

/// Alice asks for `role` for `duration` and carol approves through her link.
async fn grant(stack: &TestStack, role: &str, duration: &str) -> Granted {
    let created = stack
        .create(
            people::ALICE,
            json!({ "role": role, "duration": duration, "justification": "audit AUD-7 review" }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json()["id"].as_str().unwrap().to_string();
    let link = stack.link_for("carol@example.com", &id).await;
    let decided = stack.press(&link, "approve").await;
    assert_eq!(decided.status, 200, "{}", decided.text);
    let shown = stack.show(people::ALICE, &id).await.json();
    assert_eq!(shown["state"], "active", "{shown}");
    Granted {
        id,
        grant_id: shown["grant"]["id"].as_str().unwrap().into(),
        ends_at: shown["grant"]["ends_at"].as_str().unwrap().parse().unwrap(),
    }
}

async fn attached(stack: &TestStack, role: &str) -> Vec<String> {
    let listed = stack
        .clients
        .iam
        .list_attached_role_policies()
        .role_name(role)
        .send()
        .await
        .expect("list attached");
    let mut arns: Vec<String> =
        listed.attached_policies().iter().filter_map(|p| p.policy_arn().map(Into::into)).collect();
    arns.sort();
    arns
}

async fn attach(stack: &TestStack, role: &str, arn: &str) {
    stack.clients.iam.attach_role_policy().role_name(role).policy_arn(arn).send().await.unwrap();
}

async fn expire(stack: &TestStack, granted: &Granted) -> Value {
    pim_revocation::handle(&stack.pim, granted.event()).await.expect("expiry")
}

fn last_record(shown: &Value) -> Value {
    shown["history"].as_array().unwrap().last().unwrap().clone()
}

#[tokio::test]
async fn a_rendered_managed_policy_carries_both_time_conditions_on_every_allow() {
    let stack = TestStack::start().await;
    let granted = grant(&stack, "security-audit", "PT1H").await;

    let policies = stack.role_policies(ALICE_ROLE).await;
    let document = &policies[&format!("pim-{}", granted.grant_id)];
    let statements = document["Statement"].as_array().unwrap();
    let allows: Vec<&Value> = statements.iter().filter(|s| s["Effect"] == "Allow").collect();
    assert!(!allows.is_empty(), "{document}");
    let s3_read = allows.iter().any(|s| s["Action"].to_string().contains("s3:Get*"));
    assert!(s3_read, "the managed policy's statements are rendered: {document}");
    let end = pim::render::iam_time(granted.ends_at);
    let start = pim::render::iam_time(granted.ends_at - Duration::hours(1));
    for statement in &allows {
        let condition = &statement["Condition"];
        assert_eq!(condition["DateGreaterThan"]["aws:CurrentTime"], start.as_str(), "{statement}");
        assert_eq!(condition["DateLessThan"]["aws:CurrentTime"], end.as_str(), "{statement}");
    }

    let shown = stack.show(people::ALICE, &granted.id).await.json();
    let activated = last_record(&shown);
    assert_eq!(activated["action"], "grant.activated");
    let rendered = activated["details"]["managed_policies"][0].as_str().unwrap();
    assert!(rendered.starts_with(&format!("{S3_READ}@v")), "{rendered}");
}

#[tokio::test]
async fn an_attached_policy_is_attached_at_activation_and_detached_at_expiry() {
    let stack = TestStack::start().await;
    assert!(attached(&stack, ALICE_ROLE).await.is_empty());
    let granted = grant(&stack, "security-audit", "PT1H").await;
    assert_eq!(attached(&stack, ALICE_ROLE).await, [SECURITY_AUDIT]);

    stack.clock.set(granted.ends_at);
    let outcome = expire(&stack, &granted).await;
    assert_eq!(outcome["outcome"], "expired");
    assert!(attached(&stack, ALICE_ROLE).await.is_empty());
    assert!(stack.role_policies(ALICE_ROLE).await.is_empty());
    let shown = stack.show(people::ALICE, &granted.id).await.json();
    let expired = last_record(&shown);
    assert_eq!(expired["action"], "grant.expired");
    assert_eq!(expired["details"]["attachments"][SECURITY_AUDIT], "detached");

    // The same delivery again changes nothing.
    let before = stack.snapshot().await;
    let again = expire(&stack, &granted).await;
    assert_eq!(again["outcome"], "already_ended", "{again}");
    assert_eq!(stack.snapshot().await, before);
}

#[tokio::test]
async fn overlapping_grants_of_an_attached_policy_keep_it_until_the_last_ends() {
    let stack = TestStack::start().await;
    let first = grant(&stack, "security-audit", "PT1H").await;
    stack.clock.advance(Duration::minutes(10));
    let second = grant(&stack, "security-audit", "PT1H").await;
    assert_eq!(attached(&stack, ALICE_ROLE).await, [SECURITY_AUDIT]);

    stack.clock.set(first.ends_at);
    expire(&stack, &first).await;
    assert_eq!(attached(&stack, ALICE_ROLE).await, [SECURITY_AUDIT], "the second still holds it");
    let shown = stack.show(people::ALICE, &first.id).await.json();
    assert_eq!(last_record(&shown)["details"]["attachments"][SECURITY_AUDIT], "kept");
    // The sweep agrees: a live grant holds it, so it is neither detached nor standing access.
    let report = stack.pim.sweep().await.unwrap();
    assert!(report.attachments_detached.is_empty(), "{report:?}");
    assert!(report.standing_access.is_empty(), "{report:?}");

    stack.clock.set(second.ends_at);
    expire(&stack, &second).await;
    assert!(attached(&stack, ALICE_ROLE).await.is_empty());
}

#[tokio::test]
async fn an_activation_waits_for_a_detachment_in_progress_and_fails_cleanly_if_it_lasts() {
    let stack = TestStack::start().await;
    // A release that took the lease and has not finished (a revocation still detaching).
    let lease = Attachment {
        role_name: ALICE_ROLE.into(),
        policy_arn: SECURITY_AUDIT.into(),
        holders: vec![],
        attached: true,
        detaching: Some(pim::ports::DetachLease {
            by: "grant-leaving".into(),
            until: stack.clock_now() + Duration::minutes(2),
        }),
        version: 1,
    };
    stack.store().save_attachment(&lease).await.unwrap();

    let created = stack
        .create(
            people::ALICE,
            json!({ "role": "security-audit", "duration": "PT1H", "justification": "audit AUD-8 review" }),
        )
        .await;
    let id = created.json()["id"].as_str().unwrap().to_string();
    let link = stack.link_for("carol@example.com", &id).await;
    let decided = stack.press(&link, "approve").await;
    assert_eq!(decided.status, 502, "{}", decided.text);
    let shown = stack.show(people::ALICE, &id).await.json();
    assert_eq!(shown["state"], "failed", "{shown}");
    assert!(attached(&stack, ALICE_ROLE).await.is_empty(), "nothing attached under a lease");
    let stored = stack.store().load_attachment(ALICE_ROLE, SECURITY_AUDIT).await.unwrap();
    assert_eq!(stored, Some(lease.clone()), "the lease holder's item is untouched");

    // Once the lease lapses (its holder died), the next grant takes the attachment over.
    stack.clock.advance(Duration::minutes(3));
    let granted = grant(&stack, "security-audit", "PT1H").await;
    assert_eq!(attached(&stack, ALICE_ROLE).await, [SECURITY_AUDIT]);
    let stored = stack.store().load_attachment(ALICE_ROLE, SECURITY_AUDIT).await.unwrap().unwrap();
    assert_eq!(stored.holders, std::slice::from_ref(&granted.grant_id));
    assert_eq!(stored.detaching, None);
}

#[tokio::test]
async fn the_managed_policy_quota_is_checked_before_approval() {
    let policy = EXAMPLE_POLICY.replace("managed_policy_quota: 10", "managed_policy_quota: 2");
    let stack = TestStack::with_policy(&policy).await;
    attach(&stack, ALICE_ROLE, "arn:aws:iam::aws:policy/job-function/ViewOnlyAccess").await;
    attach(&stack, ALICE_ROLE, "arn:aws:iam::aws:policy/AWSSupportAccess").await;
    let before = stack.snapshot().await.without_refusals();

    let refused = stack
        .create(
            people::ALICE,
            json!({ "role": "security-audit", "duration": "PT1H", "justification": "audit AUD-9 review" }),
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert_eq!(refused.code(), "managed_policy_quota");
    assert!(refused.json()["detail"].as_str().unwrap().contains("quota of 2"), "{}", refused.text);
    assert_eq!(stack.snapshot().await.without_refusals(), before, "nothing but the refusal");
    assert!(stack.all_mail_to("carol@example.com", "AUD-9").await.is_empty());
    let refusal = stack.refusals().await.pop().unwrap();
    assert_eq!(refusal["code"], "managed_policy_quota", "{refusal}");

    // One already attached counts once: with it among the two, the grant fits.
    stack
        .clients
        .iam
        .detach_role_policy()
        .role_name(ALICE_ROLE)
        .policy_arn("arn:aws:iam::aws:policy/AWSSupportAccess")
        .send()
        .await
        .unwrap();
    attach(&stack, ALICE_ROLE, SECURITY_AUDIT).await;
    grant(&stack, "security-audit", "PT1H").await;
}

#[tokio::test]
async fn managed_policies_that_grant_too_much_or_too_large_are_refused_at_request() {
    // ReadOnlyAccess reads pim's table too; with no protected resources it is only too large.
    let unprotected = "managed_policy_quota: 10\n  protected_resources: []";
    let cases = [
        ("arn:aws:iam::aws:policy/IAMFullAccess", "managed_policy_refused", "would grant iam:"),
        (
            "arn:aws:iam::aws:policy/AmazonDynamoDBReadOnlyAccess",
            "managed_policy_refused",
            "reaches pim's own resources",
        ),
        ("arn:aws:iam::aws:policy/ReadOnlyAccess", "managed_policy_refused", "pim's own"),
        ("arn:aws:iam::aws:policy/NoSuchPolicyHere", "managed_policy_not_found", "does not exist"),
    ];
    let too_large = ("arn:aws:iam::aws:policy/ReadOnlyAccess", "policy_too_large", "IAM allows");
    let settings = [None, None, None, None, Some(unprotected)];
    for ((arn, code, says), settings) in cases.into_iter().chain([too_large]).zip(settings) {
        let mut policy = EXAMPLE_POLICY.replace(S3_READ, arn);
        if let Some(settings) = settings {
            policy = policy.replace("managed_policy_quota: 10", settings);
        }
        let stack = TestStack::with_policy(&policy).await;
        let refused = stack
            .create(
                people::ALICE,
                json!({ "role": "security-audit", "duration": "PT1H", "justification": "audit AUD-10 review" }),
            )
            .await;
        assert_eq!(
            (refused.status, refused.code().as_str()),
            (403, code),
            "{arn}: {}",
            refused.text
        );
        let detail = refused.json()["detail"].as_str().unwrap().to_string();
        assert!(detail.contains(says), "{arn}: {detail}");
        assert!(attached(&stack, ALICE_ROLE).await.is_empty(), "{arn}");
        assert!(stack.role_policies(ALICE_ROLE).await.is_empty(), "{arn}");
    }
}

#[tokio::test]
async fn the_sweep_detaches_a_pim_attachment_nobody_holds_and_reports_a_foreign_one() {
    let stack = TestStack::start().await;
    // pim attached SecurityAudit for a grant whose release never ran (a revocation that died).
    let orphan = Attachment {
        role_name: ALICE_ROLE.into(),
        policy_arn: SECURITY_AUDIT.into(),
        holders: vec!["grant-long-gone".into()],
        attached: true,
        detaching: None,
        version: 1,
    };
    stack.store().save_attachment(&orphan).await.unwrap();
    attach(&stack, ALICE_ROLE, SECURITY_AUDIT).await;
    // Someone attached ViewOnlyAccess by hand: standing access pim never touches.
    let foreign = "arn:aws:iam::aws:policy/job-function/ViewOnlyAccess";
    attach(&stack, ALICE_ROLE, foreign).await;

    let report = stack.pim.sweep().await.unwrap();
    assert_eq!(report.attachments_detached, [format!("{ALICE_ROLE}/{SECURITY_AUDIT}")]);
    assert_eq!(report.standing_access, [format!("{ALICE_ROLE}/{foreign}")]);
    assert_eq!(attached(&stack, ALICE_ROLE).await, [foreign]);
    let stored = stack.store().load_attachment(ALICE_ROLE, SECURITY_AUDIT).await.unwrap().unwrap();
    assert!(stored.holders.is_empty() && !stored.attached && stored.detaching.is_none());
    let chain = stack.chain().await;
    let detached = chain.iter().find(|r| r["action"] == "sweep.attachment_detached").unwrap();
    assert_eq!(detached["details"]["policy_arn"], SECURITY_AUDIT);
    assert_eq!(detached["details"]["ended_holders"], json!(["grant-long-gone"]));
    let standing = chain.iter().find(|r| r["action"] == "sweep.standing_access_found").unwrap();
    assert_eq!(standing["details"]["policy"], foreign);

    // A second pass changes nothing, and the same policy attached by hand later, after pim
    // detached its own, is someone else's: reported, not removed.
    assert!(stack.pim.sweep().await.unwrap().changed_nothing());
    attach(&stack, ALICE_ROLE, SECURITY_AUDIT).await;
    let report = stack.pim.sweep().await.unwrap();
    assert!(report.attachments_detached.is_empty(), "{report:?}");
    assert_eq!(report.standing_access, [format!("{ALICE_ROLE}/{SECURITY_AUDIT}")]);
    assert_eq!(attached(&stack, ALICE_ROLE).await.len(), 2);
}

#[tokio::test]
async fn the_sweep_leaves_an_attachment_a_live_grant_holds() {
    let stack = TestStack::start().await;
    let granted = grant(&stack, "security-audit", "PT1H").await;
    let report = stack.pim.sweep().await.unwrap();
    assert!(report.changed_nothing(), "{report:?}");
    assert_eq!(attached(&stack, ALICE_ROLE).await, [SECURITY_AUDIT]);
    // Past its end the sweep ends the grant, and with it releases the attachment.
    stack.clock.set(granted.ends_at + Duration::minutes(5));
    let report = stack.pim.sweep().await.unwrap();
    assert_eq!(report.overdue_ended, std::slice::from_ref(&granted.grant_id));
    assert!(attached(&stack, ALICE_ROLE).await.is_empty());
}
