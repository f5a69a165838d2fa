//! Revocation under faults, the sweep, and the cost of one elevation, all through the
//! fault proxy against the emulator. Time is the stack's manual clock; the only real waits
//! are the retry budget's millisecond backoffs.

use aws_smithy_types::retry::RetryConfig;
use chrono::{DateTime, Duration, Utc};
use pim::metrics::names;
use pim::model::ExpiryEvent;
use pim_tests::{TestStack, history_actions, people};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// A granted request: its id, grant id and end.
struct Granted {
    id: String,
    grant_id: String,
    ends_at: DateTime<Utc>,
}

impl Granted {
    fn policy(&self) -> String {
        format!("pim-{}", self.grant_id)
    }

    fn schedule(&self) -> String {
        format!("pim-expire-{}", self.grant_id)
    }

    fn event(&self) -> ExpiryEvent {
        ExpiryEvent {
            kind: "grant_expiry".into(),
            request_id: self.id.clone(),
            grant_id: self.grant_id.clone(),
        }
    }
}

/// Alice asks for prod-readonly for `duration` and bob approves through his link.
async fn grant(stack: &TestStack, duration: &str) -> Granted {
    let created = stack
        .create(
            people::ALICE,
            json!({ "role": "prod-readonly", "duration": duration, "justification": "incident INC-7: logs" }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json()["id"].as_str().unwrap().to_string();
    let link = stack.link_for("bob@example.com", &id).await;
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

async fn shown(stack: &TestStack, id: &str) -> Value {
    stack.show(people::ALICE, id).await.json()
}

async fn alice_policies(stack: &TestStack) -> Vec<String> {
    stack.role_policies("alice-workload").await.into_keys().collect()
}

fn retries_on() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(std::time::Duration::from_millis(1))
}

#[tokio::test]
async fn throttling_below_the_retry_budget_still_removes_the_policy() {
    let stack = TestStack::through_proxy(RetryConfig::disabled()).await;
    let granted = grant(&stack, "PT1H").await;
    let budget = stack.pim.backoff.attempts;
    stack.proxy().throttle("iam", "DeleteRolePolicy", budget - 1);

    stack.clock.set(granted.ends_at + Duration::seconds(30));
    let outcome = pim_revocation::handle(&stack.pim, granted.event()).await.unwrap();
    assert_eq!(outcome["outcome"], "expired");
    assert!(alice_policies(&stack).await.is_empty());
    assert_eq!(stack.proxy().count("iam", "DeleteRolePolicy"), u64::from(budget));
    assert_eq!(stack.metrics.total(names::REVOCATION_RETRIES), f64::from(budget - 1));
    assert_eq!(stack.metrics.values(names::REVOCATION_LAG), [30.0]);
    assert_eq!(stack.metrics.total(names::REVOCATION_FAILURES), 0.0);
}

#[tokio::test]
async fn throttling_past_the_budget_fails_loudly_and_the_next_sweep_removes_the_policy() {
    let stack = TestStack::through_proxy(RetryConfig::disabled()).await;
    let granted = grant(&stack, "PT1H").await;
    stack.proxy().throttle("iam", "DeleteRolePolicy", stack.pim.backoff.attempts);

    stack.clock.set(granted.ends_at);
    let err = pim_revocation::handle(&stack.pim, granted.event()).await.unwrap_err();
    assert!(err.is_retryable(), "the platform must retry: {err:?}");
    assert_eq!(alice_policies(&stack).await, [granted.policy()]);
    assert_eq!(stack.metrics.total(names::REVOCATION_FAILURES), 1.0);
    let after_failure = shown(&stack, &granted.id).await;
    assert_eq!(after_failure["state"], "active");
    let failure = after_failure["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(failure["action"], "grant.revocation_failed");
    assert_eq!(failure["outcome"], "failure");
    assert_eq!(failure["details"]["policy_name"], granted.policy().as_str());

    stack.clock.advance(Duration::minutes(5));
    let report = stack.pim.sweep().await.unwrap();
    assert_eq!(report.overdue_ended, vec![granted.grant_id.clone()]);
    assert!(alice_policies(&stack).await.is_empty());
    let ended = shown(&stack, &granted.id).await;
    assert_eq!(ended["state"], "expired");
    let last = ended["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["action"].as_str(), last["actor"]["id"].as_str()),
        (Some("grant.expired"), Some("sweep"))
    );
    assert_eq!(last["details"]["cleanup_lag_secs"], 300);

    let before = stack.snapshot().await;
    assert!(stack.pim.sweep().await.unwrap().changed_nothing());
    assert_eq!(stack.snapshot().await, before);
}

#[tokio::test]
async fn lost_replies_on_every_write_converge_without_duplicates_or_orphans() {
    let stack = TestStack::through_proxy(retries_on()).await;
    let proxy = stack.proxy();
    // The first transaction of the approval is the decision; the second is activation.
    // The request's reminder timer is the first schedule; the grant's expiry the second.
    proxy.lose_reply_after("scheduler", "CreateSchedule", 1, 1);
    proxy.lose_reply("iam", "PutRolePolicy", 1);
    proxy.lose_reply_after("dynamodb", "TransactWriteItems", 2, 1);
    let granted = grant(&stack, "PT1H").await;
    // Reminder, expiry (its lost reply retried), and the holder's warning before the end.
    assert_eq!(proxy.count("scheduler", "CreateSchedule"), 4, "the lost reply was retried");
    assert_eq!(proxy.count("iam", "PutRolePolicy"), 2);

    let snapshot = stack.snapshot().await;
    assert_eq!(snapshot.policies["alice-workload"], [granted.policy()], "one policy");
    let reminder = format!("pim-remind-{}", granted.id);
    let warning = format!("pim-warn-{}", granted.id);
    let mut schedules = snapshot.schedules.clone();
    schedules.sort();
    assert_eq!(schedules, [granted.schedule(), reminder, warning], "no cleanup");
    let activated = history_actions(&shown(&stack, &granted.id).await);
    assert_eq!(activated, ["request.created", "request.approved", "grant.activated"]);

    proxy.lose_reply("iam", "DeleteRolePolicy", 1);
    proxy.lose_reply("dynamodb", "TransactWriteItems", 1);
    stack.clock.set(granted.ends_at);
    pim_revocation::handle(&stack.pim, granted.event()).await.unwrap();
    let ended = shown(&stack, &granted.id).await;
    assert_eq!(ended["state"], "expired");
    assert_eq!(
        history_actions(&ended),
        ["request.created", "request.approved", "grant.activated", "grant.expired"]
    );
    assert!(alice_policies(&stack).await.is_empty());
    assert!(stack.pim.sweep().await.unwrap().changed_nothing(), "nothing left to repair");
}

#[tokio::test]
async fn a_revoke_arriving_while_the_policy_is_written_leaves_no_policy_for_good() {
    let stack = TestStack::through_proxy(RetryConfig::disabled()).await;
    let id = stack.alice_requests_readonly().await["id"].as_str().unwrap().to_string();
    let link = stack.link_for("bob@example.com", &id).await;
    let hold = stack.proxy().hold("iam", "PutRolePolicy");

    let revoke_meanwhile = async {
        hold.arrived().await;
        let approved = stack.pim.store.load_request(&id).await.unwrap().unwrap();
        let grant = approved.grant.clone().expect("approved with a grant");
        let outcome = stack.pim.expire_grant(&ExpiryEvent::for_grant(&id, &grant)).await;
        hold.release();
        (grant, outcome)
    };
    let (decided, (grant, revoked)) = tokio::join!(stack.press(&link, "approve"), revoke_meanwhile);
    assert!(matches!(revoked, Ok(pim::service::ExpiryOutcome::Expired { .. })), "{revoked:?}");
    assert_ne!(decided.status, 200, "activation lost the race: {}", decided.text);
    assert_eq!(shown(&stack, &id).await["state"], "expired");

    // The late write landed; revocation is asked to take it back within a minute.
    stack.clock.advance(Duration::seconds(61));
    let group = stack.settings.schedule_group.clone();
    let fired =
        pim_local::firer::fire_due(&stack.clients.scheduler, &group, &stack.pim, stack.clock_now())
            .await
            .unwrap();
    assert!(fired.iter().any(|f| f.name == format!("pim-cleanup-{}", grant.id)), "{fired:?}");
    assert!(alice_policies(&stack).await.is_empty());

    // Nothing brings it back: another delivery, a sweep, the grant's end.
    stack.clock.set(grant.ends_at + Duration::seconds(1));
    pim_revocation::handle(&stack.pim, ExpiryEvent::for_grant(&id, &grant)).await.unwrap();
    pim_local::firer::fire_due(&stack.clients.scheduler, &group, &stack.pim, stack.clock_now())
        .await
        .unwrap();
    assert!(stack.pim.sweep().await.unwrap().orphans_removed.is_empty());
    assert!(alice_policies(&stack).await.is_empty());
    assert_eq!(shown(&stack, &id).await["state"], "expired");
}

#[tokio::test]
async fn overlapping_and_back_to_back_grants_do_not_end_each_other_early() {
    let stack = TestStack::start().await;
    let first = grant(&stack, "PT1H").await;
    stack.clock.advance(Duration::minutes(30));
    let overlapping = grant(&stack, "PT1H").await;
    stack.clock.set(first.ends_at);
    let back_to_back = grant(&stack, "PT1H").await;
    assert_eq!(back_to_back.ends_at - first.ends_at, Duration::hours(1));

    pim_revocation::handle(&stack.pim, first.event()).await.unwrap();
    let mut left = vec![overlapping.policy(), back_to_back.policy()];
    left.sort();
    assert_eq!(alice_policies(&stack).await, left);
    assert!(stack.pim.sweep().await.unwrap().changed_nothing());

    stack.clock.set(overlapping.ends_at);
    pim_revocation::handle(&stack.pim, overlapping.event()).await.unwrap();
    assert_eq!(alice_policies(&stack).await, [back_to_back.policy()]);
    assert_eq!(shown(&stack, &back_to_back.id).await["state"], "active");
}

#[tokio::test]
async fn one_sweep_repairs_or_reports_every_kind_of_drift_and_a_second_changes_nothing() {
    let stack = TestStack::start().await;
    let iam = &stack.clients.iam;
    let overdue = grant(&stack, "PT15M").await;
    let unscheduled = grant(&stack, "PT1H").await;
    let stripped = grant(&stack, "PT1H").await;

    // The overdue grant's schedule never fired; one schedule and one policy vanished.
    stack
        .clients
        .scheduler
        .delete_schedule()
        .group_name(&stack.settings.schedule_group)
        .name(unscheduled.schedule())
        .send()
        .await
        .unwrap();
    iam.delete_role_policy()
        .role_name("alice-workload")
        .policy_name(stripped.policy())
        .send()
        .await
        .unwrap();
    // A grant policy nobody accounts for, and standing access pim did not write: one
    // holding prod-admin's permissions for good, one sharing no action with the catalog.
    let allow = |action: &str| {
        json!({ "Version": "2012-10-17", "Statement": [{ "Effect": "Allow", "Action": action, "Resource": "*" }] }).to_string()
    };
    let document = allow("s3:*");
    for (role, name, document) in [
        ("bob-workload", "pim-grant-0000feed", document.clone()),
        ("carol-workload", "admin-forever", allow("ec2:TerminateInstances")),
        ("erin-workload", "read-reports", document.clone()),
    ] {
        iam.put_role_policy()
            .role_name(role)
            .policy_name(name)
            .policy_document(&document)
            .send()
            .await
            .unwrap();
    }
    let managed = iam
        .create_policy()
        .policy_name("ops-admin")
        .policy_document(&document)
        .send()
        .await
        .unwrap();
    let managed_arn = managed.policy().unwrap().arn().unwrap().to_string();
    iam.attach_role_policy()
        .role_name("dave-workload")
        .policy_arn(&managed_arn)
        .send()
        .await
        .unwrap();

    stack.clock.advance(Duration::minutes(20));
    let report = stack.pim.sweep().await.unwrap();
    assert_eq!(report.overdue_ended, vec![overdue.grant_id.clone()]);
    assert_eq!(report.orphans_removed, ["bob-workload/pim-grant-0000feed"]);
    assert_eq!(report.missing_policies, vec![stripped.grant_id.clone()]);
    assert_eq!(report.schedules_recreated, vec![unscheduled.grant_id.clone()]);
    let mut standing = report.standing_access.clone();
    standing.sort();
    assert_eq!(
        standing,
        [
            "carol-workload/admin-forever".to_string(),
            format!("dave-workload/{managed_arn}"),
            "erin-workload/read-reports".to_string(),
        ]
    );
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    // The findings say which catalog permissions are held for good, and only those are high.
    let findings: BTreeMap<String, Value> = stack
        .chain()
        .await
        .into_iter()
        .filter(|record| record["action"] == "sweep.standing_access_found")
        .map(|record| (record["details"]["policy"].as_str().unwrap().to_string(), record))
        .collect();
    assert_eq!(findings.len(), 3);
    assert_eq!(findings["admin-forever"]["details"]["catalog_roles"], json!(["prod-admin"]));
    assert_eq!(findings["admin-forever"]["details"]["severity"], "high");
    assert_eq!(findings["read-reports"]["details"]["catalog_roles"], json!([]));
    assert_eq!(findings["read-reports"]["details"].get("severity"), None);
    assert_eq!(findings[&managed_arn]["details"].get("catalog_roles"), None);

    // Repaired: the overdue grant is over, the orphan gone, the schedule back at the end.
    assert_eq!(shown(&stack, &overdue.id).await["state"], "expired");
    assert_eq!(alice_policies(&stack).await, [unscheduled.policy()]);
    assert!(stack.role_policies("bob-workload").await.is_empty());
    let payload = stack.schedule_payload(&unscheduled.schedule()).await;
    assert_eq!(payload, unscheduled.event());
    // Reported, never touched: the drift on the request, standing access where it was.
    let drifted = shown(&stack, &stripped.id).await;
    assert_eq!(drifted["state"], "active");
    assert_eq!(drifted["drift"], "the grant policy is missing from the role");
    assert_eq!(history_actions(&drifted).last().unwrap(), "sweep.drift_found");
    assert!(stack.role_policies("carol-workload").await.contains_key("admin-forever"));
    let attached =
        iam.list_attached_role_policies().role_name("dave-workload").send().await.unwrap();
    assert_eq!(attached.attached_policies().len(), 1);
    assert_eq!(stack.metrics.values(names::STANDING_ACCESS), [3.0]);

    let before = stack.snapshot().await;
    let again = stack.pim.sweep().await.unwrap();
    assert!(again.changed_nothing(), "{again:?}");
    assert_eq!(again.standing_access_seen, 3, "still reported in the metric");
    assert_eq!(stack.snapshot().await, before);
}

#[tokio::test]
async fn the_sweep_runs_as_the_revocation_functions_second_event() {
    let stack = TestStack::start().await;
    let granted = grant(&stack, "PT15M").await;
    stack.clock.set(granted.ends_at + Duration::minutes(1));
    let answer =
        pim_revocation::handle_event(&stack.pim, json!({ "kind": "sweep" })).await.unwrap();
    assert_eq!(answer["overdue_ended"], json!([granted.grant_id]));
    let rule_event = json!({ "version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {} });
    let answer = pim_revocation::handle_event(&stack.pim, rule_event).await.unwrap();
    assert_eq!(answer["overdue_ended"], json!([]));
    let unknown = pim_revocation::handle_event(&stack.pim, json!({ "kind": "party" })).await;
    assert_eq!(unknown.unwrap_err().code(), "unknown_event");
}

/// The calls of one phase, as `(service, operation, count)`.
type Calls = BTreeMap<(String, String), u64>;

fn calls(expected: &[(&str, &str, u64)]) -> Calls {
    expected
        .iter()
        .map(|(service, operation, n)| ((service.to_string(), operation.to_string()), *n))
        .collect()
}

/// Counts the AWS calls of one elevation (request, one approval, grant, expiry) at the
/// proxy, phase by phase, and prints them (`scripts/test -p pim-tests elevation_calls --
/// --nocapture`). Each function runs in a process of its own, as on Lambda, so no phase
/// finds the audit chain head another one wrote: a phase that reads the request reads the
/// head in the same call, and the approval's second record (the grant's activation after
/// the decision) is sealed on the head its first one wrote, without a read. The design budget is 12 for the whole elevation; this is over it (see the README's
/// limitations and bench/README.md for what each call is for).
#[tokio::test]
async fn elevation_calls_are_counted_and_expiry_costs_three() {
    let stack = TestStack::through_proxy(RetryConfig::disabled()).await;
    let proxy = stack.proxy();
    let approval = stack.serve(stack.another_process(RetryConfig::disabled()).await).await;
    let revocation = stack.another_process(RetryConfig::disabled()).await;

    let id = stack.alice_requests_readonly().await["id"].as_str().unwrap().to_string();
    let request = proxy.counts();
    let link = stack.link_for("bob@example.com", &id).await.replace(&stack.base_url, &approval);
    proxy.reset_counts();
    let (page, cookie) = stack.open(&link).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let opening = proxy.counts();
    let csrf = page.csrf().unwrap();
    proxy.reset_counts();
    let form = format!("csrf={csrf}&decision=approve");
    let approved = stack.post_form(&link, &cookie.unwrap(), &form).await;
    assert_eq!(approved.status, 200, "{}", approved.text);
    let approving = proxy.counts();

    // Reading the grant back is the test's own business, not the elevation's.
    let shown = shown(&stack, &id).await;
    let ends_at: DateTime<Utc> = shown["grant"]["ends_at"].as_str().unwrap().parse().unwrap();
    let event = ExpiryEvent {
        kind: "grant_expiry".into(),
        request_id: id.clone(),
        grant_id: shown["grant"]["id"].as_str().unwrap().into(),
    };
    proxy.reset_counts();
    stack.clock.set(ends_at);
    pim_revocation::handle(&revocation, event).await.unwrap();
    let expiry = proxy.counts();

    let phases = [
        ("request", &request),
        ("open approval page", &opening),
        ("approve and grant", &approving),
        ("expiry", &expiry),
    ];
    let mut total = 0;
    println!("AWS calls for one elevation (request, approval, grant, expiry):");
    for (phase, counts) in phases {
        for ((service, operation), count) in counts {
            println!("  {phase:<20} {service:<10} {operation:<20} {count:>3}");
            total += count;
        }
    }
    println!("  {:<52} {total:>3}", "total");

    // The chain head (cold process) and one transaction with the request and its record;
    // a link MAC and a mail per approver (two); the reminder timer.
    let expected = calls(&[
        ("dynamodb", "GetItem", 1),
        ("dynamodb", "TransactWriteItems", 1),
        ("kms", "GenerateMac", 2),
        ("scheduler", "CreateSchedule", 1),
        ("ses", "SendEmail", 2),
    ]);
    assert_eq!(request, expected, "request");
    // The request read (with the chain head), the link's MAC checked.
    let expected = calls(&[("dynamodb", "TransactGetItems", 1), ("kms", "VerifyMac", 1)]);
    assert_eq!(opening, expected, "page");
    // The request read with the chain head and the MAC again (a new invocation); the head
    // serves the decision's transaction, and the head that one wrote the activation's; the
    // policy, the expiry schedule and the holder's warning timer; the requester's mail.
    let expected = calls(&[
        ("dynamodb", "TransactGetItems", 1),
        ("dynamodb", "TransactWriteItems", 2),
        ("iam", "PutRolePolicy", 1),
        ("kms", "VerifyMac", 1),
        ("scheduler", "CreateSchedule", 2),
        ("ses", "SendEmail", 1),
    ]);
    assert_eq!(approving, expected, "approval");
    // The request and the audit chain head in one read, the delete, and one transaction
    // with the record.
    let expected = calls(&[
        ("dynamodb", "TransactGetItems", 1),
        ("dynamodb", "TransactWriteItems", 1),
        ("iam", "DeleteRolePolicy", 1),
    ]);
    assert_eq!(expiry, expected, "expiry without faults retries nothing");
    assert_eq!(total, 20);
}

/// Many eligible roles (more than one IAM page), many live grants (several scan pages), and
/// throttling on the sweep's reads and deletes: one pass still finds and repairs everything,
/// and a second changes nothing.
#[tokio::test]
async fn the_sweep_pages_through_many_roles_and_grants_and_rides_out_throttling() {
    use pim::adapters::DynamoRequestStore;
    use pim::model::{AccessRequest, Grant, RequestState};
    use std::sync::Arc;

    let stack = TestStack::through_proxy(retries_on()).await;
    let iam = &stack.clients.iam;
    let trust = json!({ "Version": "2012-10-17", "Statement": [{ "Effect": "Allow",
        "Principal": { "Service": "ec2.amazonaws.com" }, "Action": "sts:AssumeRole" }] })
    .to_string();
    for n in 0..110 {
        iam.create_role()
            .path("/pim/")
            .role_name(format!("extra-{n:03}"))
            .assume_role_policy_document(&trust)
            .send()
            .await
            .unwrap();
    }
    let orphan = json!({ "Version": "2012-10-17", "Statement": [{ "Effect": "Allow",
        "Action": "s3:GetObject", "Resource": "*" }] })
    .to_string();
    iam.put_role_policy()
        .role_name("extra-109")
        .policy_name("pim-grant-lost")
        .policy_document(&orphan)
        .send()
        .await
        .unwrap();

    // Thirty active grants whose policies never reached the role, seeded in the store.
    let now = stack.clock_now();
    let through_proxy =
        pim_tests::clients_via(&stack.account, stack.proxy().url(), retries_on()).await;
    let store =
        DynamoRequestStore::new(through_proxy.dynamodb, &stack.settings.table).with_scan_page(7);
    let seeded = stack.alice_requests_readonly().await;
    let template: AccessRequest = serde_json::from_value(seeded).unwrap();
    for n in 0..30 {
        let request = AccessRequest {
            id: format!("req-seeded-{n:02}"),
            state: RequestState::Active,
            grant: Some(Grant {
                id: format!("grant-seeded-{n:02}"),
                starts_at: now,
                ends_at: now + Duration::hours(1),
                inline_policy: true,
                attached_policies: vec![],
            }),
            ..template.clone()
        };
        let record = pim::audit::AuditRecord::new(
            pim::audit::AuditAction::GrantActivated,
            pim::audit::Outcome::Success,
            pim::audit::Actor::system("test"),
            pim::audit::Source::Api,
            now,
        )
        .about(&request);
        pim::ports::RequestStore::create_request(&store, &request, &record, u32::MAX)
            .await
            .unwrap();
    }
    let pim = pim::service::Pim { store: Arc::new(store), ..(*stack.pim).clone() };

    stack.proxy().reset_counts();
    stack.proxy().throttle("iam", "ListRolePolicies", 2);
    stack.proxy().throttle("iam", "DeleteRolePolicy", 1);
    stack.proxy().throttle("dynamodb", "Scan", 1);
    let report = pim.sweep().await.unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.orphans_removed, ["extra-109/pim-grant-lost"]);
    assert_eq!(report.missing_policies.len(), 30, "every scan page was read");
    assert!(stack.proxy().count("iam", "ListRoles") >= 2, "roles came in more than one page");
    let scans = stack.proxy().count("dynamodb", "Scan");
    assert!(
        scans >= 5,
        "grants came in several pages: {scans} scans, {:?}",
        stack.proxy().counts()
    );
    assert!(stack.role_policies("extra-109").await.is_empty());

    let before = stack.snapshot().await;
    let again = pim.sweep().await.unwrap();
    assert!(again.changed_nothing(), "{again:?}");
    assert_eq!(stack.snapshot().await, before);
}
