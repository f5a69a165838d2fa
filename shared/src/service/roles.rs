//! What the caller may request (`GET /roles`): each catalog role they are eligible for, with
//! its durations, what a request must carry, and who would have to approve.

use super::Pim;
use crate::catalog::{CatalogRole, Person};
use crate::duration::format_iso;
use crate::error::Result;
use crate::identity::Principal;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// One role the caller may request, as `GET /roles` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleOffer {
    /// The catalog name to request.
    pub role: String,
    /// What the role is for.
    pub description: String,
    /// The longest duration a request may ask for (ISO 8601).
    pub max_duration: String,
    /// The same, in seconds.
    pub max_duration_secs: u64,
    /// The duration of a request that names none (ISO 8601).
    pub default_duration: String,
    /// The same, in seconds.
    pub default_duration_secs: u64,
    /// Whether a request is accepted now (the role may have a request window).
    pub available_now: bool,
    /// Who would approve a request of the default duration made now; `None` when no rule
    /// would accept one (see `approval_problem`).
    pub approval: Option<ApprovalNeeded>,
    /// Why no approval rule would accept a request of the default duration now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_problem: Option<String>,
    /// A request must name a ticket matching this pattern.
    pub ticket_pattern: Option<String>,
    /// A request must carry a one-time code from the requester's enrolled app.
    pub requester_mfa: bool,
    /// The shortest justification accepted, in characters.
    pub justification_min: usize,
    /// Grants of the role one person may hold at once, when limited.
    pub max_active_grants: Option<u32>,
    /// Emergency self-activation, when the role allows it.
    pub break_glass: Option<BreakGlassOffer>,
}

/// The approval a request would need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalNeeded {
    /// The policy rule that decides.
    pub rule: String,
    /// Granted at once, without approvers.
    pub auto_approve: bool,
    /// Distinct approvals needed (0 when granted at once).
    pub approvals: u32,
    /// Person ids who may approve (never the requester).
    pub approvers: Vec<String>,
    /// Each approval needs the approver's one-time code.
    pub approver_mfa: bool,
}

/// Break-glass terms of a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreakGlassOffer {
    /// The longest break-glass grant (ISO 8601).
    pub max_duration: String,
    /// The same, in seconds.
    pub max_duration_secs: u64,
}

impl Pim {
    /// The catalog roles the caller is eligible for, in document order. A role whose request
    /// window is closed is listed with `available_now: false`; roles the caller may not
    /// request at all are left out. Reads nothing but the policy document.
    pub fn requestable_roles(&self, caller: &Principal) -> Result<Vec<RoleOffer>> {
        let person = self.known_person(caller)?;
        let now = self.clock.now();
        Ok(self
            .catalog
            .roles()
            .iter()
            .filter_map(|role| offer(role, person, caller, now))
            .collect())
    }
}

fn offer(
    role: &CatalogRole,
    person: &Person,
    caller: &Principal,
    now: DateTime<Utc>,
) -> Option<RoleOffer> {
    let available_now = match role.eligibility(person, caller, now) {
        Ok(()) => true,
        Err(refusal) if refusal.code() == "outside_request_window" => false,
        Err(_) => return None,
    };
    let secs = role.default_secs.min(role.max_secs);
    let (approval, approval_problem) = match role.approval_plan(person, caller, secs, now) {
        Ok(plan) => (
            Some(ApprovalNeeded {
                rule: plan.rule,
                auto_approve: plan.auto_approve,
                approvals: if plan.auto_approve { 0 } else { plan.quorum },
                approvers: if plan.auto_approve { vec![] } else { plan.approvers },
                approver_mfa: plan.approver_mfa,
            }),
            None,
        ),
        Err(refusal) => (None, Some(refusal.to_string())),
    };
    Some(RoleOffer {
        role: role.name.clone(),
        description: role.description.clone(),
        max_duration: format_iso(role.max_secs),
        max_duration_secs: role.max_secs,
        default_duration: format_iso(secs),
        default_duration_secs: secs,
        available_now,
        approval,
        approval_problem,
        ticket_pattern: role.constraints.ticket_pattern.as_ref().map(|p| p.as_str().to_string()),
        requester_mfa: role.constraints.requester_mfa,
        justification_min: role.constraints.justification_min,
        max_active_grants: role.constraints.max_active_grants,
        break_glass: role.break_glass.as_ref().map(|glass| BreakGlassOffer {
            max_duration: format_iso(glass.max_secs),
            max_duration_secs: glass.max_secs,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    const POLICY: &str = include_str!("../../../infra/policy.example.yaml");

    fn offers(principal: &str, at: &str) -> Vec<RoleOffer> {
        let catalog = Catalog::from_yaml(POLICY).unwrap();
        let caller = Principal::from_iam_arn(principal).unwrap();
        let person = catalog.person_for(&caller).unwrap();
        let at = at.parse().unwrap();
        catalog.roles().iter().filter_map(|role| offer(role, person, &caller, at)).collect()
    }

    #[test]
    fn each_person_sees_the_roles_they_may_request_with_their_terms() {
        // A Thursday afternoon: alice is on call, so a short prod-admin needs nobody, but
        // its default (30 minutes) is longer than the on-call rule's 15.
        let alice =
            offers("arn:aws:sts::123456789012:assumed-role/engineer/alice", "2026-12-03T13:00:00Z");
        let names: Vec<&str> = alice.iter().map(|o| o.role.as_str()).collect();
        assert_eq!(names, ["prod-readonly", "prod-db-admin", "prod-admin", "security-audit"]);
        let admin = &alice[2];
        assert_eq!(admin.max_duration, "PT2H");
        assert_eq!(admin.default_duration_secs, 1800);
        assert_eq!(admin.ticket_pattern.as_deref(), Some("^(INC|CHG)-[0-9]+$"));
        assert_eq!(admin.justification_min, 20);
        assert_eq!(admin.break_glass.as_ref().unwrap().max_duration, "PT30M");
        let approval = admin.approval.as_ref().unwrap();
        assert_eq!((approval.rule.as_str(), approval.approvals), ("on-call-long", 1));
        assert_eq!(approval.approvers, ["carol", "erin"]);

        // bob approves prod-readonly but never his own request.
        let bob =
            offers("arn:aws:sts::123456789012:assumed-role/engineer/bob", "2026-12-03T13:00:00Z");
        let names: Vec<&str> = bob.iter().map(|o| o.role.as_str()).collect();
        assert_eq!(names, ["prod-readonly", "prod-admin", "security-audit"]);
        assert_eq!(bob[0].approval.as_ref().unwrap().approvers, ["carol"]);
        assert_eq!(bob[1].approval.as_ref().unwrap().approvals, 2);
    }

    #[test]
    fn someone_eligible_for_nothing_sees_no_role() {
        let dave = offers(
            "arn:aws:sts::123456789012:assumed-role/contractor/dave",
            "2026-12-03T13:00:00Z",
        );
        assert!(dave.is_empty());
    }
}
