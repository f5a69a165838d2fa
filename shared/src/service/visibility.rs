//! Who holds what now, and who may ask for what: the active-grants view and eligibility,
//! answered from the table and the deployed policy document.
//!
//! Visibility is conservative. Administrators named in the policy (`administrators`) see
//! every live grant and everyone's eligibility; anyone else in the policy sees only their
//! own grants and their own eligibility. A refused read is recorded (`view.refused`) and
//! changes nothing else.

use super::{Pim, RefusalSubject};
use crate::audit::{Actor, AuditAction, Source};
use crate::catalog::rules::{ApprovalRule, SubjectSet, TimeWindow};
use crate::catalog::{CatalogRole, Person};
use crate::duration::format_iso;
use crate::error::{PimError, Result};
use crate::identity::Principal;
use crate::model::{AccessRequest, RequestState, Verdict};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// One live grant as the active-grants view shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantView {
    /// The grant's id.
    pub grant_id: String,
    /// The request it came from.
    pub request_id: String,
    /// The person holding it.
    pub holder: String,
    /// The catalog role.
    pub role: String,
    /// `active`, or `approved` while its policy is being written.
    pub state: String,
    /// The approval rule that governed it (`break_glass` for a self-activation).
    pub approval_rule: String,
    /// The people who approved it, in decision order; empty when the policy approved it.
    pub approvers: Vec<String>,
    /// Whether it was a break-glass self-activation.
    pub break_glass: bool,
    /// The requester's reason.
    pub justification: String,
    /// The ticket, when one was given.
    pub ticket: Option<String>,
    /// First second of access.
    pub starts_at: DateTime<Utc>,
    /// End of access.
    pub ends_at: DateTime<Utc>,
    /// Seconds until `ends_at`, zero once past it.
    pub seconds_left: i64,
    /// The grant is past its end and still recorded as live: IAM no longer honours it, and
    /// its revocation has not been recorded yet.
    pub overdue: bool,
}

impl GrantView {
    fn of(request: &AccessRequest, now: DateTime<Utc>) -> Option<Self> {
        let grant = request.grant.as_ref()?;
        let approvers = request
            .decisions
            .iter()
            .filter(|decision| decision.verdict == Verdict::Approve)
            .map(|decision| decision.approver.clone())
            .collect();
        Some(Self {
            grant_id: grant.id.clone(),
            request_id: request.id.clone(),
            holder: request.requester.clone(),
            role: request.role.clone(),
            state: request.state.as_str().into(),
            approval_rule: request.approval_rule.clone(),
            approvers,
            break_glass: request.break_glass,
            justification: request.justification.clone(),
            ticket: request.ticket.clone(),
            starts_at: grant.starts_at,
            ends_at: grant.ends_at,
            seconds_left: (grant.ends_at - now).num_seconds().max(0),
            overdue: grant.ends_at <= now,
        })
    }
}

/// Whose grants a view covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantScope {
    /// The caller's own.
    Own,
    /// Everyone's: administrators only.
    All,
}

/// What the eligibility view is asked about; both filters are optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EligibilityQuery {
    /// Only this catalog role.
    pub role: Option<String>,
    /// Only this person; someone other than the caller needs an administrator.
    pub person: Option<String>,
}

/// That one person may request one role, and under which rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Eligibility {
    /// The person's id.
    pub person: String,
    /// The catalog role.
    pub role: String,
    /// What makes them eligible: `person` (named, or through a group), or the principal
    /// patterns of the role's requesters that match one of their principals.
    pub via: Vec<String>,
    /// Their principals that may make the request (the deny list removed).
    pub principals: Vec<String>,
    /// The role's request window, when it has one.
    pub request_window: Option<String>,
    /// The duration when the request names none (ISO 8601).
    pub default_duration: String,
    /// The longest duration that may be asked (ISO 8601).
    pub max_duration: String,
    /// Whether a ticket is required, and the pattern it must match.
    pub ticket_pattern: Option<String>,
    /// The shortest justification accepted.
    pub justification_min_length: usize,
    /// Whether the requester must give a one-time code.
    pub requester_mfa: bool,
    /// How many grants of the role the person may hold at once, when limited.
    pub max_active_grants: Option<u32>,
    /// The longest break-glass self-activation (ISO 8601), when the role allows one.
    pub break_glass_max_duration: Option<String>,
    /// The approval rules that can apply to the person's requests (those whose requester
    /// conditions admit them), in document order.
    pub rules: Vec<RuleView>,
}

/// An approval rule as the eligibility view shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleView {
    /// The rule's name.
    pub name: String,
    /// Whether it grants without approvers.
    pub auto_approve: bool,
    /// Who approves (the person themselves removed: nobody approves their own request).
    pub approvers: Vec<String>,
    /// Distinct approvals needed.
    pub quorum: u32,
    /// Whether each approval needs the approver's one-time code.
    pub approver_mfa: bool,
    /// The rule's conditions on the request itself: `max_duration`, `longer_than`,
    /// `window`, `outside_window`.
    pub when: std::collections::BTreeMap<String, String>,
}

impl Pim {
    /// The live grants (approved or active) of the caller, or of everyone for an
    /// administrator, soonest end first.
    pub async fn active_grants(
        &self,
        caller: &Principal,
        scope: GrantScope,
    ) -> Result<Vec<GrantView>> {
        let person = self.known_person(caller)?;
        let live = match scope {
            GrantScope::All => {
                self.require_administrator(caller, person, "every holder's grants").await?;
                self.store.live_grants().await?
            }
            GrantScope::Own => self.store.requests_of(&person.id).await?,
        };
        let now = self.clock.now();
        let mut views: Vec<GrantView> = live
            .iter()
            .filter(|request| {
                matches!(request.state, RequestState::Active | RequestState::Approved)
            })
            .filter_map(|request| GrantView::of(request, now))
            .collect();
        views.sort_by(|a, b| (a.ends_at, &a.grant_id).cmp(&(b.ends_at, &b.grant_id)));
        Ok(views)
    }

    /// Who may request what under the deployed policy: every person and role for an
    /// administrator, the caller's own roles for anyone else.
    pub async fn eligibility(
        &self,
        caller: &Principal,
        query: EligibilityQuery,
    ) -> Result<Vec<Eligibility>> {
        let person = self.known_person(caller)?;
        let administrator = self.catalog.is_administrator(&person.id);
        let person_filter = match query.person {
            Some(asked) if asked != person.id && !administrator => {
                self.require_administrator(caller, person, "someone else's eligibility").await?;
                Some(asked)
            }
            Some(asked) => Some(asked),
            None if administrator => None,
            None => Some(person.id.clone()),
        };
        if let Some(asked) = &person_filter
            && self.catalog.person(asked).is_none()
        {
            return Err(PimError::not_found(
                "unknown_person",
                format!("{} is not a person of the policy document", shown(asked)),
            ));
        }
        if let Some(role) = &query.role
            && self.catalog.role(role).is_none()
        {
            return Err(PimError::not_found(
                "unknown_role",
                format!("{} is not a role of the catalog", shown(role)),
            ));
        }

        let mut entries = Vec::new();
        for role in self.catalog.roles() {
            if query.role.as_ref().is_some_and(|asked| *asked != role.name) {
                continue;
            }
            for someone in self.catalog.people() {
                if person_filter.as_ref().is_some_and(|asked| *asked != someone.id) {
                    continue;
                }
                if let Some(entry) = eligibility_of(role, someone) {
                    entries.push(entry);
                }
            }
        }
        Ok(entries)
    }

    /// Passes administrators; refuses anyone else with a recorded `not_an_administrator`.
    pub(crate) async fn require_administrator(
        &self,
        caller: &Principal,
        person: &Person,
        what: &str,
    ) -> Result<()> {
        if self.catalog.is_administrator(&person.id) {
            return Ok(());
        }
        let refusal = PimError::refused(
            "not_an_administrator",
            format!("only administrators named in the policy may see {what}"),
        );
        Err(self
            .refuse(
                AuditAction::ViewRefused,
                Actor::person(&person.id, Some(caller.as_str())),
                Source::Api,
                RefusalSubject::default(),
                refusal,
            )
            .await)
    }
}

/// The person's eligibility for the role, or `None` when they may not request it.
pub fn eligibility_of(role: &CatalogRole, person: &Person) -> Option<Eligibility> {
    let principals: Vec<Principal> =
        person.principals.iter().filter_map(|p| Principal::from_policy(p).ok()).collect();
    let allowed: Vec<&Principal> = principals
        .iter()
        .filter(|p| !role.deny.contains(&person.id, p) && role.requesters.contains(&person.id, p))
        .collect();
    if allowed.is_empty() {
        return None;
    }
    let mut via = Vec::new();
    if role.requesters.people.contains(&person.id) {
        via.push("person".to_string());
    }
    for pattern in &role.requesters.patterns {
        if allowed.iter().any(|p| crate::catalog::glob_matches(pattern, p.as_str())) {
            via.push(pattern.clone());
        }
    }
    let rules = role
        .rules
        .iter()
        .filter(|rule| allowed.iter().any(|p| requester_conditions_admit(rule, &person.id, p)))
        .map(|rule| rule_view(rule, &person.id))
        .collect();
    Some(Eligibility {
        person: person.id.clone(),
        role: role.name.clone(),
        via,
        principals: allowed.iter().map(|p| p.to_string()).collect(),
        request_window: role.request_window.as_ref().map(describe_window),
        default_duration: format_iso(role.default_secs),
        max_duration: format_iso(role.max_secs),
        ticket_pattern: role.constraints.ticket_pattern.as_ref().map(|p| p.as_str().into()),
        justification_min_length: role.constraints.justification_min,
        requester_mfa: role.constraints.requester_mfa,
        max_active_grants: role.constraints.max_active_grants,
        break_glass_max_duration: role.break_glass.as_ref().map(|g| format_iso(g.max_secs)),
        rules,
    })
}

fn requester_conditions_admit(rule: &ApprovalRule, person: &str, principal: &Principal) -> bool {
    let within =
        |set: &Option<SubjectSet>| set.as_ref().is_none_or(|s| s.contains(person, principal));
    let outside =
        |set: &Option<SubjectSet>| set.as_ref().is_none_or(|s| !s.contains(person, principal));
    within(&rule.requester_in) && outside(&rule.requester_not_in)
}

fn rule_view(rule: &ApprovalRule, person: &str) -> RuleView {
    let mut when = std::collections::BTreeMap::new();
    if let Some(max) = rule.max_secs {
        when.insert("max_duration".into(), format_iso(max));
    }
    if let Some(min) = rule.longer_than_secs {
        when.insert("longer_than".into(), format_iso(min));
    }
    if let Some(window) = &rule.window {
        when.insert("window".into(), describe_window(window));
    }
    if let Some(window) = &rule.outside_window {
        when.insert("outside_window".into(), describe_window(window));
    }
    RuleView {
        name: rule.name.clone(),
        auto_approve: rule.auto_approve,
        approvers: rule.approvers.iter().filter(|a| *a != person).cloned().collect(),
        quorum: if rule.auto_approve { 0 } else { rule.quorum },
        approver_mfa: rule.approver_mfa,
        when,
    }
}

/// A window as people read it: `mon,tue 08:00-18:00 Europe/Berlin`.
pub fn describe_window(window: &TimeWindow) -> String {
    let days: Vec<String> =
        window.weekdays.iter().map(|d| d.to_string().to_ascii_lowercase()).collect();
    let days = if days.is_empty() { "every day".to_string() } else { days.join(",") };
    let hours = match window.hours {
        Some((start, end)) => {
            format!(" {:02}:{:02}-{:02}:{:02}", start / 60, start % 60, end / 60, end % 60)
        }
        None => String::new(),
    };
    format!("{days}{hours} {}", window.time_zone.name())
}

/// Text from a query, shortened and escaped for a message.
pub(crate) fn shown(text: &str) -> String {
    text.chars().take(64).flat_map(char::escape_default).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    const POLICY: &str = include_str!("../../../infra/policy.example.yaml");

    fn entry(catalog: &Catalog, role: &str, person: &str) -> Option<Eligibility> {
        eligibility_of(catalog.role(role).unwrap(), catalog.person(person).unwrap())
    }

    #[test]
    fn eligibility_follows_requesters_groups_patterns_and_the_deny_list() {
        let catalog = Catalog::from_yaml(POLICY).unwrap();
        let alice = entry(&catalog, "prod-admin", "alice").unwrap();
        assert_eq!(alice.via, ["person"]);
        assert_eq!(alice.max_duration, "PT2H");
        assert_eq!(alice.ticket_pattern.as_deref(), Some("^(INC|CHG)-[0-9]+$"));
        assert_eq!(alice.break_glass_max_duration.as_deref(), Some("PT30M"));
        let names: Vec<&str> = alice.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["on-call-short", "on-call-long", "on-call-after-hours"]);
        let short = &alice.rules[0];
        assert!(short.auto_approve);
        assert_eq!(short.when["max_duration"], "PT15M");
        assert_eq!(short.when["window"], "mon,tue,wed,thu,fri 08:00-18:00 Europe/Berlin");

        let bob = entry(&catalog, "prod-admin", "bob").unwrap();
        let names: Vec<&str> = bob.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["two-person"]);
        assert_eq!(bob.rules[0].approvers, ["carol", "erin"]);

        assert!(entry(&catalog, "prod-admin", "dave").is_none(), "denied");
        assert!(entry(&catalog, "prod-admin", "carol").is_none(), "not a requester");
        assert!(entry(&catalog, "prod-db-admin", "bob").is_none());

        // A principal pattern makes dave eligible once the deny list no longer names him.
        let source = POLICY
            .replace("assumed-role/contractor/dave", "assumed-role/sre-oncall/dave")
            .replace("deny: [dave]", "deny: []");
        let patterned = Catalog::from_yaml(&source).unwrap();
        let dave = entry(&patterned, "prod-admin", "dave").unwrap();
        assert_eq!(dave.via, ["arn:aws:sts::123456789012:assumed-role/sre-*/*"]);
        assert_eq!(dave.principals, ["arn:aws:sts::123456789012:assumed-role/sre-oncall/dave"]);
    }

    #[test]
    fn an_approver_never_approves_their_own_request_in_the_view() {
        let catalog = Catalog::from_yaml(POLICY).unwrap();
        let bob = entry(&catalog, "prod-readonly", "bob").unwrap();
        assert_eq!(bob.rules[0].approvers, ["carol"]);
        let alice = entry(&catalog, "prod-readonly", "alice").unwrap();
        assert_eq!(alice.rules[0].approvers, ["bob", "carol"]);
    }
}
