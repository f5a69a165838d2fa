//! Alerts about how access is used, raised by an hourly run of the revocation function
//! (`{"kind": "oversight"}`), each an `alert.raised` audit record that the shipper puts on
//! the bus as an `Access Alert` event:
//!
//! - `frequent_activation`: one person was granted one role at least
//!   `alerts.frequent_activations.count` times within `alerts.frequent_activations.within`;
//! - `unused_eligibility`: a person eligible for a role has not been granted it for
//!   `alerts.unused_after` (90 days by default), or ever: a candidate for removal.
//!
//! Two more kinds of alert come from records written elsewhere: a break-glass activation
//! (`Break-Glass Activated`) and privilege found outside the system by the sweep
//! (`sweep.standing_access_found`, an `Access Alert` with `alert` `standing_access`).
//!
//! Each alert is recorded once per situation: a frequent-activation alert once per grant
//! that reaches the threshold, an unused-eligibility alert once per person, role and last
//! grant (or `never`), so a run every hour repeats nothing. The table knows nothing of
//! when a person became eligible, so someone newly named in the policy is a candidate until
//! their first grant.

use super::Pim;
use super::visibility::eligibility_of;
use crate::audit::{Actor, AuditAction, AuditRecord, Outcome, Source};
use crate::duration::format_iso;
use crate::error::Result;
use crate::model::{AccessRequest, RequestState};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// What one run raised.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AlertsRaised {
    /// New frequent-activation alerts, as `person/role`.
    pub frequent_activation: Vec<String>,
    /// New unused-eligibility alerts, as `person/role`.
    pub unused_eligibility: Vec<String>,
}

/// A grant that put access in place, for counting: who, what, when.
struct Use<'a> {
    person: &'a str,
    role: &'a str,
    grant_id: &'a str,
    at: DateTime<Utc>,
}

fn uses(requests: &[AccessRequest]) -> Vec<Use<'_>> {
    let mut found: Vec<Use<'_>> = requests
        .iter()
        .filter(|r| !matches!(r.state, RequestState::Failed | RequestState::Approved))
        .filter_map(|r| {
            let grant = r.grant.as_ref()?;
            Some(Use {
                person: &r.requester,
                role: &r.role,
                grant_id: &grant.id,
                at: grant.starts_at,
            })
        })
        .collect();
    found.sort_by_key(|u| (u.at, u.grant_id.to_string()));
    found
}

impl Pim {
    /// Raises the usage alerts due now; each is recorded once.
    pub async fn raise_alerts(&self) -> Result<AlertsRaised> {
        let now = self.clock.now();
        let thresholds = self.catalog.alerts;
        let requests = self.store.all_requests().await?;
        let uses = uses(&requests);
        let mut raised = AlertsRaised::default();

        // Frequent activation: the grants of each person and role inside the window.
        let since = now - Duration::seconds(thresholds.frequent_within_secs as i64);
        let mut recent: BTreeMap<(&str, &str), Vec<&Use<'_>>> = BTreeMap::new();
        for used in uses.iter().filter(|u| u.at > since && u.at <= now) {
            recent.entry((used.person, used.role)).or_default().push(used);
        }
        for ((person, role), grants) in recent {
            if grants.len() < thresholds.frequent_count as usize {
                continue;
            }
            let newest = grants.last().expect("at least the threshold");
            let record = alert_record("frequent_activation", person, role, now)
                .with("severity", "medium")
                .with("count", grants.len())
                .with("within", format_iso(thresholds.frequent_within_secs))
                .with("grants", grants.iter().map(|g| g.grant_id.to_string()).collect::<Vec<_>>());
            let key = format!("alert#frequent#{person}#{role}#{}", newest.grant_id);
            if self.store.record_finding(&key, &record).await? {
                tracing::warn!(person, role, count = grants.len(), "frequent activation");
                raised.frequent_activation.push(format!("{person}/{role}"));
            }
        }

        // Unused eligibility: eligible people whose last grant of the role is too old.
        let stale_before = now - Duration::seconds(thresholds.unused_after_secs as i64);
        for role in self.catalog.roles() {
            for person in self.catalog.people() {
                if eligibility_of(role, person).is_none() {
                    continue;
                }
                let last = uses.iter().rev().find(|u| u.person == person.id && u.role == role.name);
                if last.is_some_and(|u| u.at > stale_before) {
                    continue;
                }
                let mut record = alert_record("unused_eligibility", &person.id, &role.name, now)
                    .with("severity", "low")
                    .with("unused_after", format_iso(thresholds.unused_after_secs));
                if let Some(last) = last {
                    record = record
                        .with("last_granted_at", crate::render::iam_time(last.at))
                        .with("last_grant_id", last.grant_id);
                }
                let since = last.map_or("never", |u| u.grant_id);
                let key = format!("alert#unused#{}#{}#{since}", person.id, role.name);
                if self.store.record_finding(&key, &record).await? {
                    raised.unused_eligibility.push(format!("{}/{}", person.id, role.name));
                }
            }
        }
        Ok(raised)
    }
}

fn alert_record(kind: &str, person: &str, role: &str, now: DateTime<Utc>) -> AuditRecord {
    let mut record = AuditRecord::new(
        AuditAction::AlertRaised,
        Outcome::Success,
        Actor::system("alerts"),
        Source::Schedule,
        now,
    )
    .with("alert", kind)
    .with("person", person);
    record.requester = Some(person.into());
    record.role = Some(role.into());
    record
}
