//! Reading the audit stream: records chosen by filters, and the receipt of one grant, the
//! whole story of a grant from request to removal, with the time of each step.
//!
//! Text shown to people passes through [`escape_text`], so control characters in anything
//! a user typed reach a terminal as visible escapes, never as terminal commands.

use super::AuditRecord;
use super::chain::CHECKPOINT_SCHEMA;
use chrono::{DateTime, Utc};
use serde_json::Value;

/// Which records to list; every filter given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// The person acting, or whose request it is (person id).
    pub person: Option<String>,
    /// The catalog role.
    pub role: Option<String>,
    /// The request id.
    pub request: Option<String>,
    /// The action, exactly (`grant.activated`) or by prefix ending in a dot (`request.`).
    pub action: Option<String>,
    /// Records at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Records before this time.
    pub until: Option<DateTime<Utc>>,
}

impl Filter {
    /// Whether `record` passes every filter given.
    pub fn matches(&self, record: &AuditRecord) -> bool {
        let person_matches = |person: &String| {
            record.actor.id.as_ref() == Some(person) || record.requester.as_ref() == Some(person)
        };
        let action = action_name(record);
        self.person.as_ref().is_none_or(person_matches)
            && self.role.as_ref().is_none_or(|role| record.role.as_ref() == Some(role))
            && self.request.as_ref().is_none_or(|id| record.request_id.as_ref() == Some(id))
            && self.action.as_ref().is_none_or(|wanted| {
                action == *wanted || (wanted.ends_with('.') && action.starts_with(wanted))
            })
            && self.since.is_none_or(|since| record.time >= since)
            && self.until.is_none_or(|until| record.time < until)
    }
}

/// The records among `lines` (a stream or an export), skipping checkpoints, repeats of a
/// sequence already read, and lines that are not records.
pub fn records_of(lines: &[String]) -> Vec<AuditRecord> {
    let mut seen = std::collections::HashSet::new();
    lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|value| value["schema"] != CHECKPOINT_SCHEMA)
        .filter_map(|value| serde_json::from_value::<AuditRecord>(value).ok())
        .filter(|record| seen.insert(record.sequence))
        .collect()
}

/// The action's dotted name, as in the records.
pub fn action_name(record: &AuditRecord) -> String {
    serde_json::to_value(record.action)
        .ok()
        .and_then(|value| value.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// `text` with control characters (and backslashes) escaped, for a terminal.
pub fn escape_text(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> =
                if c.is_control() || c == '\\' { c.escape_default().collect() } else { vec![c] };
            escaped
        })
        .collect()
}

/// The lines of a table of `records`: sequence, time, action, outcome, actor, role,
/// request, and code or reason; every cell escaped.
pub fn table(records: &[AuditRecord]) -> Vec<String> {
    let mut rows = vec![
        ["SEQ", "TIME", "ACTION", "OUTCOME", "ACTOR", "ROLE", "REQUEST", "CODE"]
            .map(str::to_string),
    ];
    for record in records {
        let actor = record.actor.id.clone().or(record.actor.principal.clone());
        rows.push([
            record.sequence.to_string(),
            record.time.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            action_name(record),
            serde_json::to_value(record.outcome)
                .ok()
                .and_then(|value| value.as_str().map(str::to_string))
                .unwrap_or_default(),
            actor.unwrap_or_else(|| record.actor.kind.clone()),
            record.role.clone().unwrap_or_default(),
            record.request_id.clone().unwrap_or_default(),
            record.code.clone().unwrap_or_default(),
        ]);
    }
    let rows: Vec<Vec<String>> =
        rows.into_iter().map(|row| row.iter().map(|cell| escape_text(cell)).collect()).collect();
    let widths: Vec<usize> = (0..8)
        .map(|column| rows.iter().map(|row| row[column].chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|row| {
            let cells: Vec<String> =
                row.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
            cells.join("  ").trim_end().to_string()
        })
        .collect()
}

/// One grant's story, or why there is none.
pub fn receipt(grant_id: &str, records: &[AuditRecord]) -> Option<Vec<String>> {
    let request_id = records
        .iter()
        .find(|record| record.grant_id.as_deref() == Some(grant_id))
        .and_then(|record| record.request_id.clone())?;
    let story: Vec<&AuditRecord> =
        records.iter().filter(|r| r.request_id.as_deref() == Some(&request_id)).collect();
    let mut lines = vec![format!("grant {}  (request {})", escape_text(grant_id), request_id)];
    for record in story {
        let time = record.time.format("%Y-%m-%dT%H:%M:%SZ");
        let who = record.actor.id.clone().unwrap_or_else(|| record.actor.kind.clone());
        let fact = |key: &str| {
            record.details.get(key).map(|value| match value {
                Value::String(text) => escape_text(text),
                other => escape_text(&other.to_string()),
            })
        };
        let what = match action_name(record).as_str() {
            "request.created" => format!(
                "requested {} for {} by {who}; justification: \"{}\"; approvers: {}",
                record.role.clone().unwrap_or_default(),
                fact("duration").unwrap_or_default(),
                fact("justification").unwrap_or_default(),
                fact("approvers").unwrap_or_default(),
            ),
            "request.approved" => format!("approved by {who}"),
            "request.denied" => format!("denied by {who}"),
            "request.cancelled" => format!("cancelled by {who}"),
            "grant.activated" => format!(
                "policy {} written on {}, valid {} to {}; expiry schedule {}",
                fact("policy_name").unwrap_or_default(),
                fact("role_arn").unwrap_or_default(),
                fact("starts_at").unwrap_or_default(),
                fact("ends_at").unwrap_or_default(),
                fact("schedule_name").unwrap_or_default(),
            ),
            "grant.expired" => format!(
                "expired; policy {} removed (present: {}), {}s after its end",
                fact("policy_name").unwrap_or_default(),
                fact("policy_was_present").unwrap_or_default(),
                fact("cleanup_lag_secs").unwrap_or_default(),
            ),
            "grant.failed" => {
                format!("failed: {}", escape_text(record.reason.as_deref().unwrap_or("")))
            }
            other => {
                format!("{other} by {who}: {}", escape_text(record.reason.as_deref().unwrap_or("")))
            }
        };
        lines.push(format!("{time}  #{:<6} {what}", record.sequence));
    }
    Some(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_as_escapes() {
        assert_eq!(escape_text("a\u{1b}[2Jb\nc\\d"), "a\\u{1b}[2Jb\\nc\\\\d");
    }
}
