//! Why a principal may or may not request a role, which rules apply, who would approve, and
//! the IAM policy a grant would carry: the answer to "what would happen if…", computed with
//! the same functions the request path uses.

use super::{ApprovalPlan, Catalog};
use crate::duration::format_iso;
use crate::identity::Principal;
use crate::render::{GrantWindow, iam_time, render_grant_policy};
use chrono::{DateTime, Utc};
use std::fmt;

/// One rule of the role and whether it applies to the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleView {
    /// The rule's name.
    pub name: String,
    /// Whether its conditions hold for this request.
    pub applies: bool,
    /// Whether it grants without approvers.
    pub auto_approve: bool,
    /// Distinct approvals it needs.
    pub quorum: u32,
}

/// The explanation of one hypothetical request.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// The principal asked about.
    pub principal: String,
    /// The person it is, if any.
    pub person: Option<String>,
    /// The role asked about.
    pub role: String,
    /// The duration assumed, in seconds.
    pub duration_secs: u64,
    /// When the request is assumed to be made.
    pub at: DateTime<Utc>,
    /// Why the request would be refused, if it would.
    pub refusal: Option<String>,
    /// Every rule of the role.
    pub rules: Vec<RuleView>,
    /// The rule that would decide, and who would approve.
    pub plan: Option<ApprovalPlan>,
    /// The grant policy for a window starting at `at`.
    pub policy: Option<String>,
}

/// Explains a request by `principal` for `role_name` lasting `secs` (the role's default when
/// `None`) made at `at`.
pub fn explain(
    catalog: &Catalog,
    principal: &Principal,
    role_name: &str,
    secs: Option<u64>,
    at: DateTime<Utc>,
) -> Explanation {
    let person = catalog.person_for(principal);
    let role = catalog.role(role_name);
    let duration_secs = secs.or(role.map(|r| r.default_secs)).unwrap_or(0);
    let mut explanation = Explanation {
        principal: principal.to_string(),
        person: person.map(|p| p.id.clone()),
        role: role_name.to_string(),
        duration_secs,
        at,
        refusal: None,
        rules: vec![],
        plan: None,
        policy: None,
    };
    let (Some(person), Some(role)) = (person, role) else {
        explanation.refusal = Some(match person {
            None => "the principal is not a person of the policy document".into(),
            Some(_) => format!("'{role_name}' is not a role of the catalog"),
        });
        return explanation;
    };
    explanation.rules = role
        .rules
        .iter()
        .map(|rule| RuleView {
            name: rule.name.clone(),
            applies: rule.applies(&person.id, principal, duration_secs, at),
            auto_approve: rule.auto_approve,
            quorum: rule.quorum,
        })
        .collect();
    let window = GrantWindow {
        starts_at: at,
        ends_at: at + chrono::Duration::seconds(duration_secs as i64),
    };
    explanation.policy = render_grant_policy(role, window, &[]).ok().map(|json| {
        let value: serde_json::Value =
            serde_json::from_str(&json).expect("rendered policy is JSON");
        serde_json::to_string_pretty(&value).expect("JSON prints")
    });
    let outcome = role
        .eligibility(person, principal, at)
        .and_then(|()| {
            if duration_secs > role.max_secs {
                return Err(crate::PimError::invalid(
                    "duration_over_maximum",
                    format!("at most {} may be asked", format_iso(role.max_secs)),
                ));
            }
            Ok(())
        })
        .and_then(|()| role.approval_plan(person, principal, duration_secs, at));
    match outcome {
        Ok(plan) => explanation.plan = Some(plan),
        Err(refusal) => explanation.refusal = Some(format!("{} ({})", refusal, refusal.code())),
    }
    explanation
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = self.person.as_deref().unwrap_or("unknown");
        writeln!(f, "principal: {} (person: {who})", self.principal)?;
        writeln!(f, "role:      {}", self.role)?;
        writeln!(f, "request:   {} at {}", format_iso(self.duration_secs), iam_time(self.at))?;
        match (&self.refusal, &self.plan) {
            (Some(refusal), _) => writeln!(f, "outcome:   refused: {refusal}")?,
            (None, Some(plan)) if plan.auto_approve => {
                writeln!(f, "outcome:   granted without approval (rule {})", plan.rule)?
            }
            (None, Some(plan)) => writeln!(
                f,
                "outcome:   needs {} approval(s) from {} (rule {})",
                plan.quorum,
                plan.approvers.join(", "),
                plan.rule
            )?,
            (None, None) => {}
        }
        if !self.rules.is_empty() {
            writeln!(f, "rules:")?;
            for rule in &self.rules {
                let kind = if rule.auto_approve {
                    "auto-approve".to_string()
                } else {
                    format!("quorum {}", rule.quorum)
                };
                let applies = if rule.applies { "applies" } else { "does not apply" };
                writeln!(f, "  - {} ({kind}): {applies}", rule.name)?;
            }
        }
        if let Some(policy) = &self.policy {
            writeln!(f, "grant policy for a window starting at the request:")?;
            writeln!(f, "{policy}")?;
        }
        Ok(())
    }
}
