//! The auditors' report: every grant that started in a time range, with its request,
//! approvals and the times access was actually put in place and taken away, and a summary.
//! Administrators only; produced whole on the server as JSON or CSV, so a client only
//! fetches it.
//!
//! Where the times come from: a grant's attach time is the time of its `grant.activated`
//! record (the policy and schedule were in place when it committed); its detach time is the
//! time of its `grant.expired` record (written once the policy was gone) or of its
//! `grant.revoked` record (the policy is deleted right after that commits, before the call
//! answers). A grant *ended on time* when its detach time is at most [`ON_TIME_GRACE_SECS`]
//! after its end: the scheduler's one-minute precision plus the revocation's retries. A
//! grant still recorded as live that far past its end did not end on time either.

use super::Pim;
use crate::audit::{AuditAction, AuditRecord};
use crate::error::{PimError, Result};
use crate::identity::Principal;
use crate::model::{AccessRequest, RequestState, Verdict};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// How long after its end a grant's policy may still be removed and count as on time.
pub const ON_TIME_GRACE_SECS: i64 = 120;

/// The longest range one report covers: the table keeps closed requests 400 days.
pub const MAX_REPORT_DAYS: i64 = 400;

/// One grant of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportRow {
    /// The request's id.
    pub request_id: String,
    /// The grant's id.
    pub grant_id: String,
    /// Who held it.
    pub holder: String,
    /// The catalog role.
    pub role: String,
    /// When it was requested.
    pub requested_at: DateTime<Utc>,
    /// The requester's reason.
    pub justification: String,
    /// The ticket, when given.
    pub ticket: Option<String>,
    /// A break-glass self-activation.
    pub break_glass: bool,
    /// The approval rule that governed it.
    pub approval_rule: String,
    /// Who approved, in decision order (empty when the policy approved).
    pub approvers: Vec<String>,
    /// When the approval completed (the grant's window starts then).
    pub approved_at: DateTime<Utc>,
    /// The grant's end, after any extension.
    pub ends_at: DateTime<Utc>,
    /// When access was put in place, if it was.
    pub attached_at: Option<DateTime<Utc>>,
    /// When access was taken away, if it was.
    pub detached_at: Option<DateTime<Utc>>,
    /// The request's state now: `active`, `expired`, `revoked`, `failed`, `approved`.
    pub end_state: String,
    /// Whether it ended on time; `None` while it may still end on time, or when access was
    /// never put in place.
    pub ended_on_time: Option<bool>,
    /// Seconds from the end to the detach time, when detached after the end.
    pub revocation_lag_secs: Option<i64>,
    /// Seconds of access: from the grant's start to its detach time (or now), never past its
    /// end, where IAM itself stops honouring it; zero for a grant never put in place.
    pub held_secs: i64,
}

/// The figures of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportSummary {
    /// Grants in the range.
    pub grants: usize,
    /// Grants per catalog role.
    pub per_role: BTreeMap<String, usize>,
    /// Grants per holder.
    pub per_person: BTreeMap<String, usize>,
    /// The median of `held_secs` over grants put in place (the mean of the two middle
    /// values, rounded down, for an even count); `None` without any.
    pub median_held_secs: Option<i64>,
    /// The longest `held_secs`, with its grant.
    pub longest_held_secs: Option<i64>,
    /// The grant held longest.
    pub longest_grant_id: Option<String>,
    /// Break-glass self-activations.
    pub break_glass_uses: usize,
    /// Refused requests and decisions in the range (`request.refused`, `decision.refused`
    /// records).
    pub refusals: usize,
    /// Refusals by their code.
    pub refusals_by_code: BTreeMap<String, usize>,
    /// Grants that did not end on time.
    pub late_revocations: usize,
    /// Alerts in the range by kind: `frequent_activation` and `unused_eligibility`
    /// (`alert.raised` records), `standing_access` (the sweep's findings), and
    /// `break_glass` (the break-glass grants of the report).
    pub alerts: BTreeMap<String, usize>,
}

/// A report for `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Start of the range (grants that started at or after it).
    pub from: DateTime<Utc>,
    /// End of the range (grants that started before it).
    pub to: DateTime<Utc>,
    /// When the report was made.
    pub generated_at: DateTime<Utc>,
    /// The grants, by start.
    pub grants: Vec<ReportRow>,
    /// The figures.
    pub summary: ReportSummary,
}

impl Pim {
    /// The report of grants that started in `[from, to)`; administrators only.
    pub async fn report(
        &self,
        caller: &Principal,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Report> {
        let person = self.known_person(caller)?;
        self.require_administrator(caller, person, "the report").await?;
        check_range(from, to)?;

        let now = self.clock.now();
        let mut requests: Vec<AccessRequest> = self
            .store
            .all_requests()
            .await?
            .into_iter()
            .filter(|r| r.grant.as_ref().is_some_and(|g| from <= g.starts_at && g.starts_at < to))
            .collect();
        requests.sort_by_key(|r| (r.grant.as_ref().map(|g| g.starts_at), r.id.clone()));
        let mut grants = Vec::with_capacity(requests.len());
        for request in &requests {
            let history = self.store.history(&request.id).await?;
            grants.push(row_of(request, &history, now));
        }
        let records = self.store.records_between(from, to).await?;
        let summary = summarise(&grants, &records);
        Ok(Report { from, to, generated_at: now, grants, summary })
    }
}

fn check_range(from: DateTime<Utc>, to: DateTime<Utc>) -> Result<()> {
    if from >= to {
        return Err(PimError::invalid("invalid_range", "the range's from must be before its to"));
    }
    if to - from > Duration::days(MAX_REPORT_DAYS) {
        return Err(PimError::invalid(
            "invalid_range",
            format!("a report covers at most {MAX_REPORT_DAYS} days"),
        ));
    }
    Ok(())
}

/// One grant's row, from the request and its history.
pub fn row_of(request: &AccessRequest, history: &[AuditRecord], now: DateTime<Utc>) -> ReportRow {
    let grant = request.grant.as_ref().expect("report rows are of granted requests");
    let time_of = |actions: &[AuditAction]| {
        history.iter().find(|r| actions.contains(&r.action)).map(|r| r.time)
    };
    let attached_at = time_of(&[AuditAction::GrantActivated]);
    let detached_at =
        attached_at.and_then(|_| time_of(&[AuditAction::GrantExpired, AuditAction::GrantRevoked]));
    let live = matches!(request.state, RequestState::Active | RequestState::Approved);
    let ended_on_time = match (attached_at, detached_at) {
        (None, _) => None,
        (Some(_), Some(detached)) => {
            Some(detached <= grant.ends_at + Duration::seconds(ON_TIME_GRACE_SECS))
        }
        (Some(_), None) if live && now > grant.ends_at + Duration::seconds(ON_TIME_GRACE_SECS) => {
            Some(false)
        }
        (Some(_), None) => None,
    };
    let held_secs = match attached_at {
        None => 0,
        Some(_) => {
            let end = detached_at.unwrap_or(now).min(grant.ends_at);
            (end - grant.starts_at).num_seconds().max(0)
        }
    };
    ReportRow {
        request_id: request.id.clone(),
        grant_id: grant.id.clone(),
        holder: request.requester.clone(),
        role: request.role.clone(),
        requested_at: request.created_at,
        justification: request.justification.clone(),
        ticket: request.ticket.clone(),
        break_glass: request.break_glass,
        approval_rule: request.approval_rule.clone(),
        approvers: request
            .decisions
            .iter()
            .filter(|d| d.verdict == Verdict::Approve)
            .map(|d| d.approver.clone())
            .collect(),
        approved_at: grant.starts_at,
        ends_at: grant.ends_at,
        attached_at,
        detached_at,
        end_state: request.state.as_str().into(),
        ended_on_time,
        revocation_lag_secs: detached_at
            .map(|d| (d - grant.ends_at).num_seconds())
            .filter(|lag| *lag > 0),
        held_secs,
    }
}

/// The figures of `rows` and of the audit records of the range (refusals and alerts).
pub fn summarise(rows: &[ReportRow], records: &[AuditRecord]) -> ReportSummary {
    let refusals: Vec<&AuditRecord> = records
        .iter()
        .filter(|r| matches!(r.action, AuditAction::RequestRefused | AuditAction::DecisionRefused))
        .collect();
    let break_glass_uses = rows.iter().filter(|r| r.break_glass).count();
    let mut alerts = BTreeMap::from([
        ("frequent_activation".to_string(), 0),
        ("unused_eligibility".to_string(), 0),
        ("standing_access".to_string(), 0),
        ("break_glass".to_string(), break_glass_uses),
    ]);
    for record in records {
        let kind = match record.action {
            AuditAction::AlertRaised => record.details.get("alert").and_then(|v| v.as_str()),
            AuditAction::SweepStandingAccessFound => Some("standing_access"),
            _ => None,
        };
        if let Some(count) = kind.and_then(|kind| alerts.get_mut(kind)) {
            *count += 1;
        }
    }
    let mut per_role = BTreeMap::new();
    let mut per_person = BTreeMap::new();
    for row in rows {
        *per_role.entry(row.role.clone()).or_insert(0) += 1;
        *per_person.entry(row.holder.clone()).or_insert(0) += 1;
    }
    let mut held: Vec<&ReportRow> = rows.iter().filter(|r| r.attached_at.is_some()).collect();
    held.sort_by_key(|r| r.held_secs);
    let median_held_secs = match held.len() {
        0 => None,
        n if n % 2 == 1 => Some(held[n / 2].held_secs),
        n => Some((held[n / 2 - 1].held_secs + held[n / 2].held_secs) / 2),
    };
    // The longest: the first of the longest in report order, so ties are stable.
    let longest = rows.iter().filter(|r| r.attached_at.is_some()).fold(
        None,
        |best: Option<&ReportRow>, row| match best {
            Some(best) if best.held_secs >= row.held_secs => Some(best),
            _ => Some(row),
        },
    );
    let mut refusals_by_code = BTreeMap::new();
    for record in &refusals {
        let code = record.code.clone().unwrap_or_else(|| "unknown".into());
        *refusals_by_code.entry(code).or_insert(0) += 1;
    }
    ReportSummary {
        grants: rows.len(),
        per_role,
        per_person,
        median_held_secs,
        longest_held_secs: longest.map(|r| r.held_secs),
        longest_grant_id: longest.map(|r| r.grant_id.clone()),
        break_glass_uses,
        refusals: refusals.len(),
        refusals_by_code,
        late_revocations: rows.iter().filter(|r| r.ended_on_time == Some(false)).count(),
        alerts,
    }
}

/// The columns of the CSV report, in order.
pub const CSV_COLUMNS: &[&str] = &[
    "request_id",
    "grant_id",
    "holder",
    "role",
    "requested_at",
    "justification",
    "ticket",
    "break_glass",
    "approval_rule",
    "approvers",
    "approved_at",
    "ends_at",
    "attached_at",
    "detached_at",
    "end_state",
    "ended_on_time",
    "revocation_lag_secs",
    "held_secs",
];

/// The rows as CSV (RFC 4180: comma-separated, CRLF line ends, a header line). Approvers
/// are joined with `;`; absent values are empty. A cell a spreadsheet would read as a
/// formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage return) is prefixed with
/// `'`, so user text such as a justification cannot run in an auditor's spreadsheet.
pub fn to_csv(rows: &[ReportRow]) -> String {
    let mut out = String::new();
    out.push_str(&CSV_COLUMNS.join(","));
    out.push_str("\r\n");
    let time = |t: &DateTime<Utc>| crate::render::iam_time(*t);
    for row in rows {
        let cells: Vec<String> = vec![
            row.request_id.clone(),
            row.grant_id.clone(),
            row.holder.clone(),
            row.role.clone(),
            time(&row.requested_at),
            row.justification.clone(),
            row.ticket.clone().unwrap_or_default(),
            row.break_glass.to_string(),
            row.approval_rule.clone(),
            row.approvers.join(";"),
            time(&row.approved_at),
            time(&row.ends_at),
            row.attached_at.as_ref().map(time).unwrap_or_default(),
            row.detached_at.as_ref().map(time).unwrap_or_default(),
            row.end_state.clone(),
            row.ended_on_time.map(|b| b.to_string()).unwrap_or_default(),
            row.revocation_lag_secs.map(|s| s.to_string()).unwrap_or_default(),
            row.held_secs.to_string(),
        ];
        let cells: Vec<String> = cells.iter().map(|cell| csv_cell(cell)).collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

fn csv_cell(text: &str) -> String {
    let guarded = match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_string(),
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, held: i64, attached: bool, on_time: Option<bool>) -> ReportRow {
        let at: DateTime<Utc> = "2026-12-03T10:00:00Z".parse().unwrap();
        ReportRow {
            request_id: format!("req-{id}"),
            grant_id: format!("grant-{id}"),
            holder: "alice".into(),
            role: "prod-readonly".into(),
            requested_at: at,
            justification: "incident".into(),
            ticket: None,
            break_glass: false,
            approval_rule: "approvers".into(),
            approvers: vec!["bob".into()],
            approved_at: at,
            ends_at: at,
            attached_at: attached.then_some(at),
            detached_at: None,
            end_state: "expired".into(),
            ended_on_time: on_time,
            revocation_lag_secs: None,
            held_secs: held,
        }
    }

    #[test]
    fn the_median_and_longest_count_only_grants_put_in_place() {
        let rows = [
            row("a", 600, true, Some(true)),
            row("b", 3600, true, Some(false)),
            row("c", 0, false, None),
            row("d", 1200, true, Some(true)),
            row("e", 3600, true, None),
        ];
        let summary = summarise(&rows, &[]);
        assert_eq!(summary.grants, 5);
        assert_eq!(summary.median_held_secs, Some((1200 + 3600) / 2));
        assert_eq!(summary.longest_held_secs, Some(3600));
        assert_eq!(summary.longest_grant_id.as_deref(), Some("grant-b"), "the first of a tie");
        assert_eq!(summary.late_revocations, 1);
        assert_eq!(summarise(&rows[..1], &[]).median_held_secs, Some(600));
        assert_eq!(summarise(&[], &[]).median_held_secs, None);
    }

    #[test]
    fn csv_quotes_separators_and_defuses_formulas() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("-1"), "'-1");
        let mut with_text = row("a", 600, true, Some(true));
        with_text.justification = "line one\nline two, with comma".into();
        with_text.approvers = vec!["bob".into(), "carol".into()];
        let csv = to_csv(&[with_text]);
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines[0], CSV_COLUMNS.join(","));
        assert!(lines[1].contains(",\"line one\nline two, with comma\","), "{csv}");
        assert!(lines[1].contains(",bob;carol,"), "{csv}");
        assert_eq!(lines.len(), 3, "header, one row, and the final line end");
    }
}
