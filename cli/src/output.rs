//! How `pim` shows things to people: tables, times in the local zone beside UTC with the
//! time remaining, and colour only where it helps (a terminal, and `NO_COLOR` unset).
//!
//! Everything here takes the present and the zone from a [`Clock`], so the same request
//! always renders the same way for the same clock: the snapshot tests rely on it.

use chrono::{DateTime, FixedOffset, Local, Utc};
use serde_json::Value;
use std::io::IsTerminal;

/// The present and the zone times are shown in.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Now.
    pub now: DateTime<Utc>,
    /// The zone of local times; `None` is the system's zone (`TZ`).
    pub zone: Option<FixedOffset>,
}

impl Clock {
    /// The system clock in the system's zone.
    pub fn system() -> Self {
        Self { now: Utc::now(), zone: None }
    }

    /// `2026-12-04 11:15 +01:00 (10:15 UTC)`, or `2026-12-04 10:15 UTC` where local time is
    /// UTC.
    pub fn when(&self, at: DateTime<Utc>) -> String {
        let local = match self.zone {
            Some(zone) => at.with_timezone(&zone),
            None => at.with_timezone(&Local).fixed_offset(),
        };
        if local.offset().local_minus_utc() == 0 {
            return at.format("%Y-%m-%d %H:%M UTC").to_string();
        }
        let utc_day = if at.date_naive() == local.date_naive() { "" } else { "%Y-%m-%d " };
        format!(
            "{} ({} UTC)",
            local.format("%Y-%m-%d %H:%M %:z"),
            at.format(&format!("{utc_day}%H:%M"))
        )
    }

    /// `1h5m left`, or `ended 3m ago`: whole minutes, seconds only in the last minute.
    pub fn remaining(&self, end: DateTime<Utc>) -> String {
        let secs = (end - self.now).num_seconds();
        let minutes = |secs: u64| if secs >= 60 { secs / 60 * 60 } else { secs };
        if secs > 0 {
            format!("{} left", span(minutes(secs as u64)))
        } else {
            format!("ended {} ago", span(minutes(secs.unsigned_abs())))
        }
    }
}

/// A duration as people say it: `1h30m`, `45m`, `2h`, `30s`, `1d2h`.
pub fn span(secs: u64) -> String {
    let (days, hours, minutes, seconds) =
        (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::new();
    for (value, unit) in [(days, "d"), (hours, "h"), (minutes, "m")] {
        if value > 0 {
            out.push_str(&format!("{value}{unit}"));
        }
    }
    if seconds > 0 && days == 0 && hours == 0 || out.is_empty() {
        out.push_str(&format!("{seconds}s"));
    }
    out
}

/// Whether to colour text: only on a terminal, and never with `NO_COLOR` set (to anything
/// but the empty string).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// Emit ANSI colours.
    pub color: bool,
}

impl Style {
    /// The style for standard output.
    pub fn stdout() -> Self {
        Self { color: std::io::stdout().is_terminal() && !no_color() }
    }

    /// The style for standard error.
    pub fn stderr() -> Self {
        Self { color: std::io::stderr().is_terminal() && !no_color() }
    }

    /// Plain text, for the snapshots.
    #[cfg(test)]
    pub fn plain() -> Self {
        Self { color: false }
    }

    /// A request state, coloured by what it means for the holder.
    pub fn state(&self, state: &str) -> String {
        let code = match state {
            "active" => "32",
            "pending" | "approved" => "33",
            "denied" | "failed" | "revoked" => "31",
            _ => "2",
        };
        self.paint(code, state)
    }

    /// Bold text.
    pub fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }

    /// Red text, for errors.
    pub fn error(&self, text: &str) -> String {
        self.paint("31", text)
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }
}

fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty())
}

/// Lays out rows under a header, columns two spaces apart. Cells may carry colour: widths
/// count only the visible characters.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| visible_len(h)).collect();
    for row in rows {
        for (at, cell) in row.iter().enumerate() {
            widths[at] = widths[at].max(visible_len(cell));
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len() - 1;
        let mut out = String::new();
        for (at, cell) in cells.into_iter().enumerate() {
            out.push_str(&cell);
            if at < last {
                out.push_str(&" ".repeat(widths[at] - visible_len(&cell) + 2));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

fn visible_len(text: &str) -> usize {
    let mut len = 0;
    let mut in_escape = false;
    for ch in text.chars() {
        match (in_escape, ch) {
            (false, '\x1b') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, _) => len += 1,
        }
    }
    len
}

/// Text from a JSON field, escaped so nothing a requester typed can drive the terminal.
pub fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s
            .chars()
            .map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() })
            .collect(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// A time from a JSON field.
pub fn time(value: &Value) -> Option<DateTime<Utc>> {
    value.as_str()?.parse().ok()
}

/// The roles the caller may request, as a table.
pub fn roles_table(roles: &[Value], style: Style) -> String {
    if roles.is_empty() {
        return "you may request no role; ask whoever keeps the policy document\n".into();
    }
    let rows: Vec<Vec<String>> = roles
        .iter()
        .map(|role| {
            vec![
                style.bold(&text(&role["role"])),
                span(role["max_duration_secs"].as_u64().unwrap_or(0)),
                span(role["default_duration_secs"].as_u64().unwrap_or(0)),
                approval_text(role),
                needs_text(role),
            ]
        })
        .collect();
    let mut out = table(&["ROLE", "MAX", "DEFAULT", "APPROVAL", "A REQUEST NEEDS"], &rows);
    out.push('\n');
    for role in roles {
        out.push_str(&format!("{}: {}\n", text(&role["role"]), text(&role["description"])));
    }
    out
}

fn approval_text(role: &Value) -> String {
    let approval = &role["approval"];
    if approval.is_null() {
        return format!("none applies: {}", text(&role["approval_problem"]));
    }
    if approval["auto_approve"] == true {
        return "none (granted at once)".into();
    }
    let approvers: Vec<String> =
        approval["approvers"].as_array().into_iter().flatten().map(text).collect();
    let mfa = if approval["approver_mfa"] == true { ", with MFA" } else { "" };
    format!("{} of {}{mfa}", approval["approvals"], approvers.join(", "))
}

fn needs_text(role: &Value) -> String {
    let mut needs = vec![format!("reason of {}+ chars", role["justification_min"])];
    if let Some(pattern) = role["ticket_pattern"].as_str() {
        needs.push(format!("ticket {}", text(&Value::from(pattern))));
    }
    if role["requester_mfa"] == true {
        needs.push("MFA code".into());
    }
    if let Some(limit) = role["max_active_grants"].as_u64() {
        needs.push(format!("at most {limit} active"));
    }
    if role["available_now"] == false {
        needs.push("not now (outside its request window)".into());
    }
    if let Some(max) = role["break_glass"]["max_duration_secs"].as_u64() {
        needs.push(format!("break-glass up to {}", span(max)));
    }
    needs.join("; ")
}

/// A list of requests, newest first, as a table.
pub fn requests_table(requests: &[Value], clock: &Clock, style: Style) -> String {
    if requests.is_empty() {
        return "no requests\n".into();
    }
    let rows: Vec<Vec<String>> = requests
        .iter()
        .map(|request| {
            let grant = &request["grant"];
            let ends = match (time(&grant["ends_at"]), request["state"].as_str()) {
                (Some(end), Some("active" | "approved")) => {
                    format!("{}, {}", clock.when(end), clock.remaining(end))
                }
                (Some(end), _) => clock.when(end),
                (None, Some("pending")) => match time(&request["pending_until"]) {
                    Some(until) => format!("decision by {}", clock.when(until)),
                    None => "-".into(),
                },
                _ => "-".into(),
            };
            vec![
                text(&request["id"]),
                text(&request["role"]),
                style.state(request["state"].as_str().unwrap_or("?")),
                span(request["duration_secs"].as_u64().unwrap_or(0)),
                time(&request["created_at"]).map(|t| clock.when(t)).unwrap_or_default(),
                ends,
            ]
        })
        .collect();
    table(&["REQUEST", "ROLE", "STATE", "FOR", "CREATED", "ENDS"], &rows)
}

/// One request in full: what was asked, where it stands, who decided, the grant.
pub fn request_detail(request: &Value, clock: &Clock, style: Style) -> String {
    let mut lines: Vec<(&str, String)> = vec![
        ("request", text(&request["id"])),
        ("role", style.bold(&text(&request["role"]))),
        ("state", style.state(request["state"].as_str().unwrap_or("?"))),
        ("requester", text(&request["requester"])),
        ("duration", span(request["duration_secs"].as_u64().unwrap_or(0))),
        ("reason", text(&request["justification"])),
    ];
    if !request["ticket"].is_null() {
        lines.push(("ticket", text(&request["ticket"])));
    }
    if request["break_glass"] == true {
        lines.push(("break-glass", "yes (reviewed after the fact)".into()));
    }
    if let Some(created) = time(&request["created_at"]) {
        lines.push(("created", clock.when(created)));
    }
    lines.push(("approval", approval_status(request)));
    if request["state"] == "pending"
        && let Some(until) = time(&request["pending_until"])
    {
        lines.push(("decide by", format!("{}, {}", clock.when(until), clock.remaining(until))));
    }
    let grant = &request["grant"];
    if !grant.is_null() {
        lines.push(("grant", text(&grant["id"])));
        lines.push(("on role", text(&request["target_role_arn"])));
        if let Some(start) = time(&grant["starts_at"]) {
            lines.push(("from", clock.when(start)));
        }
        if let Some(end) = time(&grant["ends_at"]) {
            let live = matches!(request["state"].as_str(), Some("active" | "approved"));
            let until = if live {
                format!("{}, {}", clock.when(end), clock.remaining(end))
            } else {
                clock.when(end)
            };
            lines.push(("until", until));
        }
        for policy in grant["attached_policies"].as_array().into_iter().flatten() {
            lines.push(("attached", text(policy)));
        }
    }
    if !request["reason"].is_null() {
        lines.push(("outcome", text(&request["reason"])));
    }
    let width = lines.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    lines.iter().map(|(name, value)| format!("{name:<width$}  {value}\n")).collect()
}

/// `1 of 1 (bob approved)`, `waiting for 1 of bob, carol`, `granted by policy (rule)`.
pub fn approval_status(request: &Value) -> String {
    let decisions: Vec<String> = request["decisions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            format!(
                "{} {}",
                text(&d["approver"]),
                text(&d["verdict"]).replace("approve", "approved").replace("deny", "denied")
            )
        })
        .collect();
    let quorum = request["quorum"].as_u64().unwrap_or(1);
    let approvers: Vec<String> =
        request["approvers"].as_array().into_iter().flatten().map(text).collect();
    if approvers.is_empty() && decisions.is_empty() {
        return format!("by policy (rule {})", text(&request["approval_rule"]));
    }
    let said =
        if decisions.is_empty() { String::new() } else { format!("; {}", decisions.join(", ")) };
    format!("{quorum} of {}{said}", approvers.join(", "))
}

/// Live grants (`GET /grants`), soonest end first, as a table.
pub fn grants_table(grants: &[Value], clock: &Clock, style: Style) -> String {
    if grants.is_empty() {
        return "no live grants\n".into();
    }
    let rows: Vec<Vec<String>> = grants
        .iter()
        .map(|grant| {
            let ends = match time(&grant["ends_at"]) {
                Some(end) if grant["overdue"] == true => {
                    format!("{} ({}, not yet removed)", clock.when(end), clock.remaining(end))
                }
                Some(end) => format!("{}, {}", clock.when(end), clock.remaining(end)),
                None => "-".into(),
            };
            vec![
                text(&grant["grant_id"]),
                text(&grant["holder"]),
                style.bold(&text(&grant["role"])),
                style.state(grant["state"].as_str().unwrap_or("?")),
                approved_by(grant),
                time(&grant["starts_at"]).map(|t| clock.when(t)).unwrap_or_default(),
                ends,
            ]
        })
        .collect();
    table(&["GRANT", "HOLDER", "ROLE", "STATE", "APPROVED BY", "FROM", "ENDS"], &rows)
}

/// Who let a grant (of `GET /grants` or the report) happen: its approvers, the policy's
/// rule that granted it by itself, or break-glass.
fn approved_by(grant: &Value) -> String {
    let approvers: Vec<String> =
        grant["approvers"].as_array().into_iter().flatten().map(text).collect();
    match (approvers.is_empty(), grant["break_glass"] == true) {
        (_, true) => "break-glass".into(),
        (true, false) => format!("policy ({})", text(&grant["approval_rule"])),
        (false, false) => approvers.join(", "),
    }
}

/// Who may request what (`GET /eligibility`): led by the role for one person's roles, by
/// the person for one role's people.
pub fn eligibility_table(entries: &[Value], by_role: bool, style: Style) -> String {
    if entries.is_empty() {
        return "nobody may request it, or nothing may be requested\n".into();
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|entry| {
            let via: Vec<String> =
                entry["via"].as_array().into_iter().flatten().map(text).collect();
            let (first, second) = match by_role {
                true => (style.bold(&text(&entry["role"])), text(&entry["person"])),
                false => (style.bold(&text(&entry["person"])), text(&entry["role"])),
            };
            vec![
                first,
                second,
                via.join(", "),
                iso_span(&entry["max_duration"]),
                entry["rules"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(rule_text)
                    .collect::<Vec<_>>()
                    .join("; "),
            ]
        })
        .collect();
    let header = match by_role {
        true => ["ROLE", "PERSON", "VIA", "MAX", "APPROVAL RULES"],
        false => ["PERSON", "ROLE", "VIA", "MAX", "APPROVAL RULES"],
    };
    table(&header, &rows)
}

/// An ISO 8601 duration from the API as people say it, or the text as sent.
fn iso_span(value: &Value) -> String {
    match value.as_str().map(pim::duration::parse_duration) {
        Some(Ok(secs)) => span(secs),
        _ => text(value),
    }
}

/// `on-call-short: at once (up to 15m, mon,tue 08:00-18:00 Europe/Berlin)`, or
/// `two-person: 2 of carol, erin with MFA`.
fn rule_text(rule: &Value) -> String {
    let approvers: Vec<String> =
        rule["approvers"].as_array().into_iter().flatten().map(text).collect();
    let how = if rule["auto_approve"] == true {
        "at once".to_string()
    } else {
        let mfa = if rule["approver_mfa"] == true { " with MFA" } else { "" };
        format!("{} of {}{mfa}", rule["quorum"], approvers.join(", "))
    };
    let when = &rule["when"];
    let mut conditions = Vec::new();
    if !when["max_duration"].is_null() {
        conditions.push(format!("up to {}", iso_span(&when["max_duration"])));
    }
    if !when["longer_than"].is_null() {
        conditions.push(format!("longer than {}", iso_span(&when["longer_than"])));
    }
    if !when["window"].is_null() {
        conditions.push(format!("within {}", text(&when["window"])));
    }
    if !when["outside_window"].is_null() {
        conditions.push(format!("outside {}", text(&when["outside_window"])));
    }
    match conditions.is_empty() {
        true => format!("{}: {how}", text(&rule["name"])),
        false => format!("{}: {how} ({})", text(&rule["name"]), conditions.join(", ")),
    }
}

/// The auditors' report (`GET /reports`): its grants and its summary.
pub fn report_text(report: &Value, clock: &Clock, style: Style) -> String {
    let range = |field: &str| time(&report[field]).map(|t| clock.when(t)).unwrap_or_default();
    let grants = report["grants"].as_array().cloned().unwrap_or_default();
    let mut out = format!("grants started from {} until {}\n\n", range("from"), range("to"));
    if grants.is_empty() {
        out.push_str("no grants\n");
    } else {
        let rows: Vec<Vec<String>> = grants
            .iter()
            .map(|grant| {
                let ended = match (grant["end_state"].as_str(), &grant["ended_on_time"]) {
                    (None, _) => "-".to_string(),
                    (Some(state), Value::Bool(false)) => {
                        let lag = grant["revocation_lag_secs"].as_u64().map(span);
                        format!("{}, late {}", style.state(state), lag.unwrap_or_default())
                    }
                    (Some(state), _) => style.state(state),
                };
                vec![
                    text(&grant["grant_id"]),
                    text(&grant["holder"]),
                    text(&grant["role"]),
                    time(&grant["attached_at"]).map(|t| clock.when(t)).unwrap_or("-".into()),
                    span(grant["held_secs"].as_u64().unwrap_or(0)),
                    approved_by(grant),
                    text(&grant["ticket"]),
                    ended,
                ]
            })
            .collect();
        out.push_str(&table(
            &["GRANT", "HOLDER", "ROLE", "ATTACHED", "HELD", "APPROVED BY", "TICKET", "ENDED"],
            &rows,
        ));
    }
    let summary = &report["summary"];
    let counts = |field: &str| {
        let pairs: Vec<String> = summary[field]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, count)| format!("{} {count}", text(&Value::from(name.as_str()))))
            .collect();
        if pairs.is_empty() { "-".to_string() } else { pairs.join(", ") }
    };
    let held = |field: &str| summary[field].as_u64().map(span).unwrap_or("-".into());
    let lines = [
        ("grants", summary["grants"].to_string()),
        ("per role", counts("per_role")),
        ("per person", counts("per_person")),
        ("median held", held("median_held_secs")),
        (
            "longest held",
            match summary["longest_grant_id"].as_str() {
                Some(grant) => {
                    format!("{} ({})", held("longest_held_secs"), text(&Value::from(grant)))
                }
                None => "-".into(),
            },
        ),
        ("break-glass uses", summary["break_glass_uses"].to_string()),
        ("refusals", format!("{} ({})", summary["refusals"], counts("refusals_by_code"))),
        ("late revocations", summary["late_revocations"].to_string()),
        ("alerts", counts("alerts")),
    ];
    out.push_str("\nsummary\n");
    for (name, value) in lines {
        out.push_str(&format!("  {name:<16}  {value}\n"));
    }
    out
}

/// An access review campaign as `POST /reviews` answers it.
pub fn campaign_text(campaign: &Value, clock: &Clock) -> String {
    let reviewers: Vec<String> =
        campaign["reviewers"].as_array().into_iter().flatten().map(text).collect();
    let people: Vec<String> = campaign["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| text(&item["person"]))
        .collect();
    let mut out = format!(
        "access review {} of {} is {}\n",
        text(&campaign["id"]),
        text(&campaign["role"]),
        text(&campaign["state"])
    );
    out.push_str(&format!(
        "  people to keep or remove: {}\n",
        if people.is_empty() { "none".to_string() } else { people.join(", ") }
    ));
    out.push_str(&format!("  reviewers, mailed a link per person: {}\n", reviewers.join(", ")));
    if let Some(deadline) = time(&campaign["deadline"]) {
        out.push_str(&format!(
            "  decide by {}, {}\n",
            clock.when(deadline),
            clock.remaining(deadline)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_like_people_write_them() {
        assert_eq!(span(5400), "1h30m");
        assert_eq!(span(3600), "1h");
        assert_eq!(span(45), "45s");
        assert_eq!(span(0), "0s");
        assert_eq!(span(90_000), "1d1h");
        assert_eq!(span(3601), "1h");
    }

    #[test]
    fn times_show_the_local_zone_beside_utc_and_what_is_left() {
        let now: DateTime<Utc> = "2026-12-04T10:00:00Z".parse().unwrap();
        let berlin = Clock { now, zone: Some(FixedOffset::east_opt(3600).unwrap()) };
        let end: DateTime<Utc> = "2026-12-04T11:05:00Z".parse().unwrap();
        assert_eq!(berlin.when(end), "2026-12-04 12:05 +01:00 (11:05 UTC)");
        assert_eq!(berlin.remaining(end), "1h5m left");
        assert_eq!(berlin.remaining(end - chrono::Duration::seconds(1)), "1h4m left");
        assert_eq!(berlin.remaining(now + chrono::Duration::seconds(42)), "42s left");
        let late: DateTime<Utc> = "2026-12-04T23:30:00Z".parse().unwrap();
        assert_eq!(berlin.when(late), "2026-12-05 00:30 +01:00 (2026-12-04 23:30 UTC)");
        let utc = Clock { now, zone: Some(FixedOffset::east_opt(0).unwrap()) };
        assert_eq!(utc.when(end), "2026-12-04 11:05 UTC");
        assert_eq!(utc.remaining("2026-12-04T09:57:00Z".parse().unwrap()), "ended 3m ago");
    }

    #[test]
    fn colour_codes_do_not_count_towards_column_widths() {
        let coloured = Style { color: true };
        let rows =
            vec![vec![coloured.state("active"), "x".into()], vec!["pending".into(), "y".into()]];
        let out = table(&["STATE", "V"], &rows);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "STATE    V");
        assert_eq!(lines[1], "\x1b[32mactive\x1b[0m   x");
        assert_eq!(lines[2], "pending  y");
        assert_eq!(Style::plain().state("active"), "active");
    }

    #[test]
    fn text_a_requester_typed_cannot_move_the_cursor() {
        let shown = text(&Value::from("fix \u{1b}[2J now\nplease"));
        assert!(!shown.contains('\u{1b}') && !shown.contains('\n'), "{shown}");
    }
}

/// Snapshot tests of the tables: fixed answers of the API and a fixed clock, compared with
/// the files in `tests/tables/`. `PIM_BLESS=1` rewrites them after a deliberate change.
#[cfg(test)]
pub mod snapshots {
    use super::*;
    use serde_json::json;

    /// Compares `actual` with the snapshot `name`.
    pub fn assert_snapshot(name: &str, actual: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tables").join(name);
        if std::env::var_os("PIM_BLESS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, actual).unwrap();
            return;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(actual, expected, "{name} differs from its snapshot:\n{actual}");
    }

    /// 2026-12-04 10:30 UTC, shown in UTC+1.
    pub fn clock() -> Clock {
        Clock {
            now: "2026-12-04T10:30:00Z".parse().unwrap(),
            zone: Some(FixedOffset::east_opt(3600).unwrap()),
        }
    }

    /// An active request as `GET /requests/{id}` answers it.
    pub fn active_request() -> Value {
        json!({
            "id": "req-4f2a", "requester": "alice",
            "requester_principal": "arn:aws:sts::123456789012:assumed-role/engineer/alice",
            "role": "prod-readonly",
            "target_role_arn": "arn:aws:iam::123456789012:role/pim/alice-workload",
            "duration_secs": 3600, "justification": "incident INC-1234: reading logs",
            "created_at": "2026-12-04T10:00:00Z", "pending_until": "2026-12-05T10:00:00Z",
            "approvers": ["bob", "carol"], "approval_rule": "default", "quorum": 1,
            "approver_mfa": false, "ticket": null, "break_glass": false, "state": "active",
            "version": 4, "updated_at": "2026-12-04T10:05:00Z",
            "decisions": [{ "approver": "bob", "verdict": "approve", "at": "2026-12-04T10:05:00Z" }],
            "grant": { "id": "grant-4f2a", "starts_at": "2026-12-04T10:05:00Z",
                       "ends_at": "2026-12-04T11:05:00Z", "inline_policy": true },
            "reason": null
        })
    }

    fn pending_request() -> Value {
        let mut request = active_request();
        request["id"] = json!("req-77b0");
        request["role"] = json!("prod-db-admin");
        request["state"] = json!("pending");
        request["approvers"] = json!(["carol"]);
        request["decisions"] = json!([]);
        request["grant"] = Value::Null;
        request["duration_secs"] = json!(1800);
        request["created_at"] = json!("2026-12-04T10:20:00Z");
        request["pending_until"] = json!("2026-12-05T10:20:00Z");
        request["ticket"] = json!("INC-1234");
        request
    }

    fn expired_request() -> Value {
        let mut request = active_request();
        request["id"] = json!("req-0c19");
        request["state"] = json!("expired");
        request["created_at"] = json!("2026-12-03T22:00:00Z");
        request["grant"]["starts_at"] = json!("2026-12-03T22:10:00Z");
        request["grant"]["ends_at"] = json!("2026-12-03T23:10:00Z");
        request["reason"] = json!("the grant's time ran out");
        request
    }

    #[test]
    fn the_list_of_requests() {
        let requests = [pending_request(), active_request(), expired_request()];
        assert_snapshot("list.txt", &requests_table(&requests, &clock(), Style::plain()));
        assert_snapshot("list-empty.txt", &requests_table(&[], &clock(), Style::plain()));
    }

    #[test]
    fn one_request_in_full() {
        let style = Style::plain();
        assert_snapshot("status-active.txt", &request_detail(&active_request(), &clock(), style));
        assert_snapshot("status-pending.txt", &request_detail(&pending_request(), &clock(), style));
    }

    #[test]
    fn the_roles_a_person_may_request() {
        let roles = json!([
            { "role": "prod-readonly", "description": "Read production logs and metrics during an incident.",
              "max_duration": "PT4H", "max_duration_secs": 14400, "default_duration": "PT1H",
              "default_duration_secs": 3600, "available_now": true,
              "approval": { "rule": "default", "auto_approve": false, "approvals": 1,
                            "approvers": ["bob", "carol"], "approver_mfa": false },
              "ticket_pattern": null, "requester_mfa": false, "justification_min": 10,
              "max_active_grants": null, "break_glass": null },
            { "role": "prod-admin", "description": "Full control of production compute, for incidents and changes.",
              "max_duration": "PT2H", "max_duration_secs": 7200, "default_duration": "PT30M",
              "default_duration_secs": 1800, "available_now": true,
              "approval": { "rule": "on-call-long", "auto_approve": false, "approvals": 1,
                            "approvers": ["carol", "erin"], "approver_mfa": true },
              "ticket_pattern": "^(INC|CHG)-[0-9]+$", "requester_mfa": true, "justification_min": 20,
              "max_active_grants": 1, "break_glass": { "max_duration": "PT30M", "max_duration_secs": 1800 } },
            { "role": "sandbox", "description": "List the sandbox bucket.",
              "max_duration": "PT2H", "max_duration_secs": 7200, "default_duration": "PT30M",
              "default_duration_secs": 1800, "available_now": false,
              "approval": { "rule": "self-service", "auto_approve": true, "approvals": 0,
                            "approvers": [], "approver_mfa": false },
              "ticket_pattern": null, "requester_mfa": false, "justification_min": 10,
              "max_active_grants": null, "break_glass": null }
        ]);
        let roles = roles.as_array().unwrap();
        assert_snapshot("roles.txt", &roles_table(roles, Style::plain()));
        assert_snapshot("roles-none.txt", &roles_table(&[], Style::plain()));
    }

    #[test]
    fn live_grants_eligibility_report_and_review() {
        let style = Style::plain();
        let grants = json!([
            { "grant_id": "grant-4f2a", "request_id": "req-4f2a", "holder": "alice",
              "role": "prod-readonly", "state": "active", "approval_rule": "default",
              "approvers": ["bob"], "break_glass": false, "justification": "incident INC-1234",
              "ticket": null, "starts_at": "2026-12-04T10:05:00Z", "ends_at": "2026-12-04T11:05:00Z",
              "seconds_left": 2100, "overdue": false },
            { "grant_id": "grant-9c1e", "request_id": "req-9c1e", "holder": "bob",
              "role": "sandbox", "state": "active", "approval_rule": "self-service",
              "approvers": [], "break_glass": false, "justification": "trying it",
              "ticket": null, "starts_at": "2026-12-04T09:00:00Z", "ends_at": "2026-12-04T10:29:00Z",
              "seconds_left": 0, "overdue": true },
            { "grant_id": "grant-b7d0", "request_id": "req-b7d0", "holder": "carol",
              "role": "prod-admin", "state": "approved", "approval_rule": "break_glass",
              "approvers": [], "break_glass": true, "justification": "outage",
              "ticket": "INC-9", "starts_at": "2026-12-04T10:29:00Z", "ends_at": "2026-12-04T10:59:00Z",
              "seconds_left": 1740, "overdue": false }
        ]);
        assert_snapshot("grants.txt", &grants_table(grants.as_array().unwrap(), &clock(), style));
        assert_snapshot("grants-none.txt", &grants_table(&[], &clock(), style));

        let eligibility = json!([
            { "person": "alice", "role": "prod-admin", "via": ["person"],
              "principals": ["arn:aws:sts::123456789012:assumed-role/engineer/alice"],
              "request_window": null, "default_duration": "PT30M", "max_duration": "PT2H",
              "ticket_pattern": "^(INC|CHG)-[0-9]+$", "justification_min_length": 20,
              "requester_mfa": false, "max_active_grants": 1, "break_glass_max_duration": null,
              "rules": [
                { "name": "on-call-short", "auto_approve": true, "approvers": [], "quorum": 0,
                  "approver_mfa": false, "when": { "max_duration": "PT15M",
                  "window": "mon,tue,wed,thu,fri 08:00-18:00 Europe/Berlin" } },
                { "name": "on-call-long", "auto_approve": false, "approvers": ["carol", "erin"],
                  "quorum": 1, "approver_mfa": true, "when": { "longer_than": "PT15M" } }
              ] },
            { "person": "bob", "role": "prod-admin", "via": ["person", "principal"],
              "principals": ["arn:aws:sts::123456789012:assumed-role/engineer/bob"],
              "request_window": null, "default_duration": "PT30M", "max_duration": "PT2H",
              "ticket_pattern": null, "justification_min_length": 20, "requester_mfa": false,
              "max_active_grants": 1, "break_glass_max_duration": null,
              "rules": [{ "name": "two-person", "auto_approve": false,
                          "approvers": ["carol", "erin"], "quorum": 2, "approver_mfa": false,
                          "when": {} }] }
        ]);
        let entries = eligibility.as_array().unwrap();
        assert_snapshot("who-can.txt", &eligibility_table(entries, false, style));
        assert_snapshot("what-can.txt", &eligibility_table(&entries[..1], true, style));

        let report = json!({
            "from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z",
            "generated_at": "2026-12-04T10:30:00Z",
            "grants": [
              { "request_id": "req-1", "grant_id": "grant-1", "holder": "alice",
                "role": "prod-readonly", "requested_at": "2026-11-02T09:00:00Z",
                "justification": "INC-1", "ticket": "INC-1", "break_glass": false,
                "approval_rule": "default", "approvers": ["bob"],
                "approved_at": "2026-11-02T09:05:00Z", "ends_at": "2026-11-02T10:05:00Z",
                "attached_at": "2026-11-02T09:05:01Z", "detached_at": "2026-11-02T10:05:30Z",
                "end_state": "expired", "ended_on_time": true, "revocation_lag_secs": 30,
                "held_secs": 3600 },
              { "request_id": "req-2", "grant_id": "grant-2", "holder": "carol",
                "role": "prod-admin", "requested_at": "2026-11-20T22:00:00Z",
                "justification": "outage", "ticket": null, "break_glass": true,
                "approval_rule": "break_glass", "approvers": [],
                "approved_at": "2026-11-20T22:00:00Z", "ends_at": "2026-11-20T22:30:00Z",
                "attached_at": "2026-11-20T22:00:01Z", "detached_at": "2026-11-20T22:40:00Z",
                "end_state": "expired", "ended_on_time": false, "revocation_lag_secs": 600,
                "held_secs": 1799 }
            ],
            "summary": { "grants": 2, "per_role": { "prod-admin": 1, "prod-readonly": 1 },
              "per_person": { "alice": 1, "carol": 1 }, "median_held_secs": 2699,
              "longest_held_secs": 3600, "longest_grant_id": "grant-1", "break_glass_uses": 1,
              "refusals": 3, "refusals_by_code": { "not_eligible": 2, "unknown_requester": 1 },
              "late_revocations": 1,
              "alerts": { "break_glass": 1, "frequent_activation": 0, "standing_access": 0,
                          "unused_eligibility": 2 } }
        });
        assert_snapshot("report.txt", &report_text(&report, &clock(), style));

        let campaign = json!({
            "id": "rev-5c01", "role": "prod-admin", "state": "open",
            "started_at": "2026-12-04T10:30:00Z", "deadline": "2026-12-18T10:30:00Z",
            "started_by": "erin", "reviewers": ["carol", "erin"],
            "items": [{ "person": "alice", "decision": null }, { "person": "bob", "decision": null }],
            "completed_at": null, "policy_diff": null, "overdue_at": null, "version": 1
        });
        assert_snapshot("review-started.txt", &campaign_text(&campaign, &clock()));
    }
}
