//! What is visible, against the emulator: the live grants (the caller's own, or everyone's
//! for an administrator) with their holders, approvers and time left; eligibility from the
//! deployed policy; and the auditors' report of a seeded history, compared with figures the
//! test computes from its own clock and the API's answers.

use chrono::{DateTime, Duration, Utc};
use pim_tests::{Answer, TestStack, people};
use serde_json::{Value, json};

/// The example policy's administrator.
const ERIN: &str = "arn:aws:sts::123456789012:assumed-role/security/erin";

async fn get(stack: &TestStack, caller: &str, path: &str) -> Answer {
    stack.call(reqwest::Method::GET, path, Some(caller), None, vec![]).await
}

fn time(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap_or_else(|| panic!("a time: {value}")).parse().unwrap()
}

/// Asks for `role` as `caller`, approves it through `approver`'s mailed link, and returns
/// the request as shown afterwards.
async fn granted(stack: &TestStack, caller: &str, body: Value, approver: &str) -> Value {
    let created = stack.create(caller, body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json()["id"].as_str().unwrap().to_string();
    let link = stack.link_for(approver, &id).await;
    let approved = stack.press(&link, "approve").await;
    assert_eq!(approved.status, 200, "{}", approved.text);
    stack.show(caller, &id).await.json()
}

fn readonly(minutes: u32, why: &str) -> Value {
    json!({ "role": "prod-readonly", "duration": format!("{minutes}m"), "justification": why })
}

/// Delivers a grant's expiry the way its schedule would, with the schedule's own payload.
async fn expire(stack: &TestStack, grant_id: &str) {
    let payload = stack.schedule_payload(&format!("pim-expire-{grant_id}")).await;
    pim_revocation::handle(&stack.pim, payload).await.unwrap();
}

#[tokio::test]
async fn administrators_see_every_live_grant_and_others_only_their_own() {
    let stack = TestStack::start().await;
    let alice =
        granted(&stack, people::ALICE, readonly(60, "incident INC-1: logs"), "bob@example.com")
            .await;
    stack.clock.advance(Duration::minutes(5));
    let bob =
        granted(&stack, people::BOB, readonly(30, "incident INC-2: metrics"), "carol@example.com")
            .await;
    // A request still pending holds no grant and is not listed.
    stack
        .create(
            people::ALICE,
            json!({ "role": "prod-db-admin", "justification": "fix the orders table" }),
        )
        .await;
    stack.clock.advance(Duration::minutes(7));
    let now = stack.clock_now();

    let all = get(&stack, ERIN, "/grants?active&all").await;
    assert_eq!(all.status, 200, "{}", all.text);
    let listed = all.json()["grants"].as_array().unwrap().clone();
    // Soonest end first: bob's 30 minutes end before alice's hour.
    let expected = [(&bob, "bob", "carol"), (&alice, "alice", "bob")];
    assert_eq!(listed.len(), expected.len(), "{listed:#?}");
    for (view, (request, holder, approver)) in listed.iter().zip(expected) {
        let ends_at = time(&request["grant"]["ends_at"]);
        assert_eq!(view["grant_id"], request["grant"]["id"]);
        assert_eq!(view["request_id"], request["id"]);
        assert_eq!(view["holder"], holder);
        assert_eq!(view["role"], "prod-readonly");
        assert_eq!(view["state"], "active");
        assert_eq!(view["approvers"], json!([approver]));
        assert_eq!(view["approval_rule"], "approvers");
        assert_eq!(time(&view["starts_at"]), time(&request["grant"]["starts_at"]));
        assert_eq!(time(&view["ends_at"]), ends_at);
        assert_eq!(view["seconds_left"], (ends_at - now).num_seconds());
        assert_eq!(view["overdue"], false);
    }
    assert_eq!(listed[0]["seconds_left"], 30 * 60 - 7 * 60);
    assert_eq!(listed[1]["seconds_left"], 60 * 60 - 12 * 60);

    // Without `all`, everyone (the administrator included) sees their own.
    let own = get(&stack, people::ALICE, "/grants?active").await.json();
    assert_eq!(own["grants"].as_array().unwrap().len(), 1);
    assert_eq!(own["grants"][0]["grant_id"], alice["grant"]["id"]);
    assert_eq!(get(&stack, ERIN, "/grants").await.json(), json!({ "grants": [] }));

    // Someone who is not an administrator asking for everyone's: refused and recorded, and
    // nothing else is written.
    let before = stack.snapshot().await;
    let refused = get(&stack, people::ALICE, "/grants?active&all").await;
    assert_eq!((refused.status, refused.code().as_str()), (403, "not_an_administrator"));
    assert_eq!(refused.header("content-type").as_deref(), Some("application/problem+json"));
    assert_eq!(stack.snapshot().await.without_refusals(), before.without_refusals());
    let record = stack.refusals().await.pop().unwrap();
    assert_eq!(
        (record["action"].as_str(), record["actor"]["id"].as_str()),
        (Some("view.refused"), Some("alice"))
    );
    assert_eq!(record["code"], "not_an_administrator");

    // Bad input writes nothing at all.
    let before = stack.snapshot().await;
    for path in
        ["/grants?all=yes", "/grants?active&active", "/grants?holder=bob", "/grants?active=%FF"]
    {
        let bad = get(&stack, ERIN, path).await;
        assert_eq!((bad.status, bad.code().as_str()), (400, "invalid_query"), "{path}");
    }
    let unknown = get(&stack, people::MALLORY, "/grants?active").await;
    assert_eq!((unknown.status, unknown.code().as_str()), (403, "unknown_requester"));
    let post = stack.call(reqwest::Method::POST, "/grants", Some(ERIN), None, vec![]).await;
    assert_eq!((post.status, post.code().as_str()), (400, "method_not_allowed"));
    assert_eq!(stack.snapshot().await, before);

    // Past its end and not yet expired, a grant is overdue with no time left; once its
    // schedule delivers, it is gone from the view.
    stack.clock.set(time(&bob["grant"]["ends_at"]) + Duration::seconds(30));
    let listed = get(&stack, ERIN, "/grants?active&all").await.json()["grants"].clone();
    assert_eq!(
        (listed[0]["overdue"].clone(), listed[0]["seconds_left"].clone()),
        (json!(true), json!(0))
    );
    expire(&stack, bob["grant"]["id"].as_str().unwrap()).await;
    let listed = get(&stack, ERIN, "/grants?active&all").await.json()["grants"].clone();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["holder"], "alice");
}

/// `person/role` pairs of an eligibility answer.
fn pairs(answer: &Answer) -> Vec<String> {
    assert_eq!(answer.status, 200, "{}", answer.text);
    let entries = answer.json()["eligibility"].as_array().unwrap().clone();
    entries
        .iter()
        .map(|e| format!("{}/{}", e["person"].as_str().unwrap(), e["role"].as_str().unwrap()))
        .collect()
}

#[tokio::test]
async fn eligibility_answers_from_the_deployed_policy_and_only_administrators_ask_about_others() {
    let stack = TestStack::start().await;

    // Who can: an administrator asks about a role. dave is denied; carol and erin approve
    // but may not request.
    let who_can = get(&stack, ERIN, "/eligibility?role=prod-admin").await;
    assert_eq!(pairs(&who_can), ["alice/prod-admin", "bob/prod-admin"]);
    let entries = who_can.json()["eligibility"].clone();
    let rules = |entry: &Value| -> Vec<String> {
        entry["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(rules(&entries[0]), ["on-call-short", "on-call-long", "on-call-after-hours"]);
    assert_eq!(rules(&entries[1]), ["two-person"]);
    assert_eq!(entries[1]["rules"][0]["quorum"], 2);
    assert_eq!(entries[1]["rules"][0]["approvers"], json!(["carol", "erin"]));
    assert_eq!(entries[0]["rules"][0]["auto_approve"], true);
    assert_eq!(entries[0]["rules"][0]["when"]["max_duration"], "PT15M");
    assert_eq!(entries[0]["ticket_pattern"], "^(INC|CHG)-[0-9]+$");
    assert_eq!(entries[0]["justification_min_length"], 20);
    assert_eq!(entries[0]["max_active_grants"], 1);
    assert_eq!(entries[0]["break_glass_max_duration"], "PT30M");
    assert_eq!(
        (entries[0]["default_duration"].as_str(), entries[0]["max_duration"].as_str()),
        (Some("PT30M"), Some("PT2H"))
    );

    // What can: an administrator asks about a person; everything, without filters.
    let what_can = get(&stack, ERIN, "/eligibility?person=alice").await;
    assert_eq!(
        pairs(&what_can),
        ["alice/prod-readonly", "alice/prod-db-admin", "alice/prod-admin", "alice/security-audit"]
    );
    let everything = pairs(&get(&stack, ERIN, "/eligibility").await);
    assert_eq!(
        everything.len(),
        4 + 3,
        "alice four roles; bob prod-readonly, prod-admin, security-audit"
    );
    let one = get(&stack, ERIN, "/eligibility?person=alice&role=prod-db-admin").await;
    assert_eq!(one.json()["eligibility"][0]["rules"][0]["approvers"], json!(["carol"]));
    assert!(pairs(&get(&stack, ERIN, "/eligibility?person=dave").await).is_empty());

    // Anyone else sees their own, and only their own.
    assert_eq!(
        pairs(&get(&stack, people::BOB, "/eligibility").await),
        ["bob/prod-readonly", "bob/prod-admin", "bob/security-audit"]
    );
    assert_eq!(
        pairs(&get(&stack, people::BOB, "/eligibility?person=bob&role=prod-readonly").await),
        ["bob/prod-readonly"]
    );
    let readonly_as_bob = get(&stack, people::BOB, "/eligibility?role=prod-readonly").await;
    assert_eq!(
        readonly_as_bob.json()["eligibility"][0]["rules"][0]["approvers"],
        json!(["carol"]),
        "never himself"
    );
    assert!(pairs(&get(&stack, people::CAROL, "/eligibility").await).is_empty());
    let before = stack.snapshot().await;
    let others = get(&stack, people::BOB, "/eligibility?person=alice").await;
    assert_eq!((others.status, others.code().as_str()), (403, "not_an_administrator"));
    assert_eq!(stack.snapshot().await.without_refusals(), before.without_refusals());
    assert_eq!(stack.refusals().await.last().unwrap()["action"], "view.refused");

    // Unknown names and bad queries: a problem document, nothing written.
    let before = stack.snapshot().await;
    let cases = [
        ("/eligibility?role=root", 404, "unknown_role"),
        ("/eligibility?person=zed", 404, "unknown_person"),
        ("/eligibility?role=a&role=b", 400, "invalid_query"),
        ("/eligibility?group=security", 400, "invalid_query"),
    ];
    for (path, status, code) in cases {
        let answer = get(&stack, ERIN, path).await;
        assert_eq!((answer.status, answer.code().as_str()), (status, code), "{path}");
    }
    assert_eq!(stack.snapshot().await, before);
}

#[tokio::test]
async fn the_report_lists_each_grant_with_its_times_and_sums_them_up() {
    let stack = TestStack::start().await;
    let from = stack.clock_now();

    // 1. alice, an hour of prod-readonly approved by bob, expired by its schedule on time.
    let first =
        granted(&stack, people::ALICE, readonly(60, "incident INC-11: logs"), "bob@example.com")
            .await;
    let first_attached = stack.clock_now();
    stack.clock.advance(Duration::minutes(3));

    // 2. bob, 30 minutes approved by carol, relinquished after 10 minutes.
    let second =
        granted(&stack, people::BOB, readonly(30, "incident INC-12: metrics"), "carol@example.com")
            .await;
    let second_attached = stack.clock_now();
    stack.clock.advance(Duration::minutes(10));
    let relinquished = stack
        .call(
            reqwest::Method::POST,
            &format!("/grants/{}/revoke", second["grant"]["id"].as_str().unwrap()),
            Some(people::BOB),
            Some("application/json"),
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(relinquished.status, 200, "{}", relinquished.text);
    let second_detached = stack.clock_now();

    // 3. bob breaks the glass on prod-admin for 20 minutes; its expiry arrives 10 minutes
    // late.
    let glass = stack
        .create(
            people::BOB,
            json!({ "role": "prod-admin", "duration": "20m", "ticket": "INC-13", "break_glass": true,
                "justification": "the fleet is down and nobody answers the phone" }),
        )
        .await;
    assert_eq!(glass.status, 201, "{}", glass.text);
    let glass = glass.json();
    let glass_attached = stack.clock_now();

    // Refusals in the range: dave is not eligible, mallory unknown.
    let refused = stack.create(people::DAVE, readonly(10, "just looking around")).await;
    assert_eq!(refused.code(), "not_eligible");
    let refused = stack.create(people::MALLORY, readonly(10, "just looking around")).await;
    assert_eq!(refused.code(), "unknown_requester");

    let glass_late = time(&glass["grant"]["ends_at"]) + Duration::minutes(10);
    let first_detached = time(&first["grant"]["ends_at"]);
    assert!(glass_late < first_detached, "the glass expires before the first grant ends");
    stack.clock.set(glass_late);
    expire(&stack, glass["grant"]["id"].as_str().unwrap()).await;
    stack.clock.set(first_detached);
    expire(&stack, first["grant"]["id"].as_str().unwrap()).await;
    stack.clock.set(first_detached + Duration::minutes(1));
    let to = stack.clock_now();

    // 4. A grant after the range is not in the report.
    granted(&stack, people::ALICE, readonly(15, "incident INC-14: later"), "carol@example.com")
        .await;
    stack.clock.advance(Duration::minutes(1));

    let query = format!("/reports?from={}&to={}", iso(from), iso(to));
    let report = get(&stack, ERIN, &query).await;
    assert_eq!(report.status, 200, "{}", report.text);
    let report = report.json();
    let rows = report["grants"].as_array().unwrap().clone();
    let ids: Vec<&Value> = rows.iter().map(|r| &r["request_id"]).collect();
    assert_eq!(ids, [&first["id"], &second["id"], &glass["id"]], "by start, in the range only");

    // Each row against what the test saw happen.
    let expected = [
        (&first, "alice", json!(["bob"]), first_attached, first_detached, "expired", true, 3600),
        (&second, "bob", json!(["carol"]), second_attached, second_detached, "revoked", true, 600),
        (&glass, "bob", json!([]), glass_attached, glass_late, "expired", false, 1200),
    ];
    for (row, (request, holder, approvers, attached, detached, state, on_time, held)) in
        rows.iter().zip(expected)
    {
        assert_eq!(row["grant_id"], request["grant"]["id"]);
        assert_eq!(row["holder"], holder);
        assert_eq!(row["approvers"], approvers);
        assert_eq!(row["justification"], request["justification"]);
        assert_eq!(row["ticket"], request["ticket"]);
        assert_eq!(time(&row["requested_at"]), time(&request["created_at"]));
        assert_eq!(time(&row["attached_at"]), attached, "{row}");
        assert_eq!(time(&row["detached_at"]), detached, "{row}");
        assert_eq!(row["end_state"], state);
        assert_eq!(row["ended_on_time"], on_time, "{row}");
        assert_eq!(row["held_secs"], held, "{row}");
    }
    assert_eq!(rows[2]["break_glass"], true);
    assert_eq!(rows[2]["approval_rule"], "break_glass");
    assert_eq!(rows[2]["revocation_lag_secs"], 600);
    assert_eq!(rows[0]["revocation_lag_secs"], Value::Null);

    // The summary, computed here from the same facts.
    let summary = &report["summary"];
    let mut held = [3600, 600, 1200];
    held.sort();
    assert_eq!(summary["grants"], 3);
    assert_eq!(summary["per_role"], json!({ "prod-readonly": 2, "prod-admin": 1 }));
    assert_eq!(summary["per_person"], json!({ "alice": 1, "bob": 2 }));
    assert_eq!(summary["median_held_secs"], held[1]);
    assert_eq!(summary["longest_held_secs"], held[2]);
    assert_eq!(summary["longest_grant_id"], first["grant"]["id"]);
    assert_eq!(summary["break_glass_uses"], 1);
    assert_eq!(summary["refusals"], 2);
    assert_eq!(summary["refusals_by_code"], json!({ "not_eligible": 1, "unknown_requester": 1 }));
    assert_eq!(summary["late_revocations"], 1);
    assert_eq!(
        summary["alerts"],
        json!({ "frequent_activation": 0, "unused_eligibility": 0, "standing_access": 0, "break_glass": 1 })
    );

    // The CSV carries the same rows.
    let csv = get(&stack, ERIN, &format!("{query}&format=csv")).await;
    assert_eq!(csv.status, 200, "{}", csv.text);
    assert_eq!(csv.header("content-type").as_deref(), Some("text/csv; charset=utf-8"));
    let lines: Vec<&str> = csv.text.trim_end().split("\r\n").collect();
    assert_eq!(lines.len(), 4, "{}", csv.text);
    let header: Vec<&str> = lines[0].split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    for (line, row) in lines[1..].iter().zip(&rows) {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells.len(), header.len(), "{line}");
        assert_eq!(cells[column("grant_id")], row["grant_id"].as_str().unwrap());
        assert_eq!(cells[column("ended_on_time")], row["ended_on_time"].to_string());
        assert_eq!(cells[column("held_secs")], row["held_secs"].to_string());
        assert_eq!(cells[column("detached_at")], iso(time(&row["detached_at"])));
    }

    // Administrators only; bad ranges and queries are refused before anything is read.
    let before = stack.snapshot().await;
    let refused = get(&stack, people::ALICE, &query).await;
    assert_eq!((refused.status, refused.code().as_str()), (403, "not_an_administrator"));
    assert_eq!(stack.snapshot().await.without_refusals(), before.without_refusals());
    let before = stack.snapshot().await;
    let bad = [
        format!("/reports?from={}&to={}", iso(to), iso(from)),
        format!("/reports?from={}", iso(from)),
        format!("/reports?from=yesterday&to={}", iso(to)),
        format!("/reports?from={}&to={}", iso(from - Duration::days(401)), iso(from)),
        format!("{query}&format=xml"),
    ];
    for path in bad {
        let answer = get(&stack, ERIN, &path).await;
        assert_eq!(answer.status, 400, "{path}: {}", answer.text);
        assert!(matches!(answer.code().as_str(), "invalid_query" | "invalid_range"), "{path}");
    }
    assert_eq!(stack.snapshot().await, before);
}

fn iso(at: DateTime<Utc>) -> String {
    pim::render::iam_time(at)
}
