//! The policy document: the people pim knows, the privileged roles they may request, under
//! which conditions, and who must approve. It is YAML kept in version control, deployed with
//! the functions, loaded once at cold start; an invalid document stops the function.
//!
//! - [`document`]: the YAML schema as written.
//! - [`check`]: validation into a [`Catalog`], with every problem located by line and column.
//! - [`rules`]: subjects, time windows, constraints, approval rules and the strictest merge.
//! - [`locate`]: positions of fields in the document.
//! - [`diff`]: the change to the document an access review proposes, as a unified diff.
//!
//! Every function evaluates the same [`Catalog`] the same way: eligibility
//! ([`CatalogRole::eligibility`]) at request and again at approval, the approval plan
//! ([`CatalogRole::approval_plan`]) at request.

pub mod check;
pub mod diff;
pub mod document;
pub mod explain;
pub mod locate;
pub mod overlap;
pub mod rules;

use crate::error::{PimError, Result};
use crate::identity::Principal;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rules::{
    AlertThresholds, ApprovalRule, BreakGlass, Constraints, ReviewPolicy, SubjectSet, TimeWindow,
    strictest,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub use check::{Problem, Report, Severity, check_document};
pub use document::StatementDoc as Statement;
pub use explain::{Explanation, explain};

/// The schema version this build understands.
pub const DOCUMENT_VERSION: u32 = 1;

/// A person pim knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// A short stable id used across the document, records and the API.
    pub id: String,
    /// Where approval requests and outcomes are sent.
    pub email: String,
    /// The authenticated identities that are this person (IAM ARNs, `oidc:<subject>`).
    pub principals: Vec<String>,
    /// The person's own IAM role; grants are written onto it.
    pub role_arn: String,
}

impl Person {
    /// The IAM role name from [`Person::role_arn`].
    pub fn role_name(&self) -> &str {
        role_name_of(&self.role_arn)
    }
}

/// A privileged role of the catalog, validated.
#[derive(Debug, Clone)]
pub struct CatalogRole {
    /// The catalog name people request (`prod-admin`).
    pub name: String,
    /// What the role is for, shown to approvers.
    pub description: String,
    /// The inline statements a grant of this role carries.
    pub statements: Vec<Statement>,
    /// Managed policies rendered into the grant's inline policy, time-bounded.
    pub managed_policies: Vec<String>,
    /// Managed policies attached to the role as they are while a grant lasts.
    pub attached_policies: Vec<String>,
    /// The duration when the request names none, in seconds.
    pub default_secs: u64,
    /// The longest duration a request may ask for, in seconds.
    pub max_secs: u64,
    /// Free-form labels.
    pub tags: BTreeMap<String, String>,
    /// Who may request.
    pub requesters: SubjectSet,
    /// Who may never request; wins over `requesters`.
    pub deny: SubjectSet,
    /// When requests are accepted.
    pub request_window: Option<TimeWindow>,
    /// What a request must carry.
    pub constraints: Constraints,
    /// Approval rules in document order.
    pub rules: Vec<ApprovalRule>,
    /// Emergency self-activation, when allowed.
    pub break_glass: Option<BreakGlass>,
    /// Access reviews of who is eligible, when the role has reviewers.
    pub review: Option<ReviewPolicy>,
}

/// Who must approve a request, and by which rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalPlan {
    /// The rule that decided.
    pub rule: String,
    /// Granted without approvers.
    pub auto_approve: bool,
    /// Person ids asked to approve (never the requester).
    pub approvers: Vec<String>,
    /// Distinct approvals needed.
    pub quorum: u32,
    /// Each approval needs the approver's one-time code.
    pub approver_mfa: bool,
}

impl CatalogRole {
    /// Whether a grant of this role writes an inline policy (it has statements of its own or
    /// managed policies to render); a role that only attaches managed policies writes none.
    pub fn renders_inline(&self) -> bool {
        !self.statements.is_empty() || !self.managed_policies.is_empty()
    }

    /// Whether `person` (authenticated as `principal`) may request this role at `at`, or the
    /// refusal that says why. The deny list always wins.
    pub fn eligibility(
        &self,
        person: &Person,
        principal: &Principal,
        at: DateTime<Utc>,
    ) -> Result<()> {
        if self.deny.contains(&person.id, principal) {
            return Err(PimError::refused(
                "not_eligible",
                format!("{} is denied {}", person.id, self.name),
            ));
        }
        if !self.requesters.contains(&person.id, principal) {
            return Err(PimError::refused(
                "not_eligible",
                format!("{} may not request {}", person.id, self.name),
            ));
        }
        if self.request_window.as_ref().is_some_and(|window| !window.contains(at)) {
            return Err(PimError::refused(
                "outside_request_window",
                format!("{} can only be requested inside its time window", self.name),
            ));
        }
        Ok(())
    }

    /// The strictest applicable approval rule for this request, resolved to people.
    pub fn approval_plan(
        &self,
        person: &Person,
        principal: &Principal,
        secs: u64,
        at: DateTime<Utc>,
    ) -> Result<ApprovalPlan> {
        let applicable =
            self.rules.iter().filter(|rule| rule.applies(&person.id, principal, secs, at));
        let rule = strictest(applicable).ok_or_else(|| {
            PimError::refused(
                "no_approval_rule",
                format!("no approval rule of {} applies to this request", self.name),
            )
        })?;
        let approvers: Vec<String> =
            rule.approvers.iter().filter(|id| **id != person.id).cloned().collect();
        if !rule.auto_approve && approvers.len() < rule.quorum as usize {
            return Err(PimError::refused(
                "no_available_approvers",
                format!(
                    "rule {} needs {} approvers other than the requester",
                    rule.name, rule.quorum
                ),
            ));
        }
        Ok(ApprovalPlan {
            rule: rule.name.clone(),
            auto_approve: rule.auto_approve,
            approvers,
            quorum: rule.quorum,
            approver_mfa: rule.approver_mfa,
        })
    }

    /// Whether `person_id` is an approver under the rule named `rule`.
    pub fn may_approve(&self, rule: &str, person_id: &str) -> bool {
        self.rules.iter().any(|r| r.name == rule && r.approvers.contains(person_id))
    }

    /// Everyone who approves under any rule, for notifications such as break-glass alerts.
    pub fn all_approvers(&self) -> Vec<String> {
        let mut all: Vec<String> =
            self.rules.iter().flat_map(|r| r.approvers.iter().cloned()).collect();
        all.sort();
        all.dedup();
        all
    }
}

/// The validated policy document.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// How long approvers have unless a role says otherwise, in seconds.
    pub pending_lifetime_secs: u64,
    /// The zone of time windows and of local times in mail.
    pub time_zone: Tz,
    /// Resource patterns of pim itself, which no grant may reach.
    pub protected_resources: Vec<String>,
    /// How many managed policies one role may have attached.
    pub managed_policy_quota: u32,
    /// How many requests one person may make in a clock hour.
    pub requests_per_hour: u32,
    people: Vec<Person>,
    roles: Vec<CatalogRole>,
    person_by_principal: HashMap<Principal, usize>,
    administrators: BTreeSet<String>,
    /// The thresholds of the usage alerts.
    pub alerts: AlertThresholds,
    /// The document's text as loaded, from which access reviews propose their changes.
    pub source: String,
}

impl Catalog {
    /// Parses and validates a policy document. Any error refuses the whole document, and
    /// the message lists every error with its line and column.
    pub fn from_yaml(source: &str) -> Result<Self> {
        let report = check_document(source);
        match report.catalog {
            Some(mut catalog) if !report.has_errors() => {
                catalog.source = source.to_string();
                Ok(catalog)
            }
            _ => {
                let errors: Vec<String> = report
                    .problems
                    .iter()
                    .filter(|p| p.severity == Severity::Error)
                    .map(Problem::to_string)
                    .collect();
                Err(PimError::Config(format!("policy document: {}", errors.join("; "))))
            }
        }
    }

    /// Reads and validates the policy document at `path`.
    pub fn from_file(path: &str) -> Result<Self> {
        let source = std::fs::read_to_string(path)
            .map_err(|err| PimError::Config(format!("cannot read policy {path}: {err}")))?;
        Self::from_yaml(&source).map_err(|err| PimError::Config(format!("{path}: {err}")))
    }

    /// The person an authenticated principal is, if the document knows them.
    pub fn person_for(&self, principal: &Principal) -> Option<&Person> {
        self.person_by_principal.get(principal).map(|&index| &self.people[index])
    }

    /// The person with this id.
    pub fn person(&self, id: &str) -> Option<&Person> {
        self.people.iter().find(|person| person.id == id)
    }

    /// The catalog role with this name.
    pub fn role(&self, name: &str) -> Option<&CatalogRole> {
        self.roles.iter().find(|role| role.name == name)
    }

    /// Every person, in document order.
    pub fn people(&self) -> &[Person] {
        &self.people
    }

    /// Every catalog role, in document order.
    pub fn roles(&self) -> &[CatalogRole] {
        &self.roles
    }

    /// Whether the person may revoke anyone's grant (the document's `administrators`).
    pub fn is_administrator(&self, person_id: &str) -> bool {
        self.administrators.contains(person_id)
    }
}

/// The name of an IAM role from its ARN (the last path segment).
pub fn role_name_of(role_arn: &str) -> &str {
    role_arn.rsplit('/').next().unwrap_or(role_arn)
}

/// IAM-style wildcard match (`*` any run, `?` one character), ignoring ASCII case.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let text: Vec<char> = text.to_ascii_lowercase().chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            backtrack = Some((p, t));
            p += 1;
        } else if let Some((star, matched)) = backtrack {
            p = star + 1;
            t = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../infra/policy.example.yaml");

    fn principal(name: &str) -> Principal {
        let arn = match name {
            "alice" | "bob" => format!("arn:aws:sts::123456789012:assumed-role/engineer/{name}"),
            "carol" | "erin" => format!("arn:aws:sts::123456789012:assumed-role/security/{name}"),
            "dave" => "arn:aws:sts::123456789012:assumed-role/contractor/dave".into(),
            "mallory" => "arn:aws:sts::123456789012:assumed-role/engineer/mallory".into(),
            other => other.to_string(),
        };
        Principal::from_iam_arn(&arn).unwrap()
    }

    /// What a request would come to: a refusal code, or `rule:quorum:approvers`.
    fn outcome(catalog: &Catalog, who: &str, role: &str, minutes: u64, at: &str) -> String {
        let caller = principal(who);
        let at: DateTime<Utc> = at.parse().unwrap();
        let Some(person) = catalog.person_for(&caller) else { return "unknown_requester".into() };
        let role = catalog.role(role).unwrap();
        let plan = role
            .eligibility(person, &caller, at)
            .and_then(|()| role.approval_plan(person, &caller, minutes * 60, at));
        match plan {
            Ok(plan) if plan.auto_approve => format!("{}:auto", plan.rule),
            Ok(plan) => format!("{}:{}:{}", plan.rule, plan.quorum, plan.approvers.join(",")),
            Err(err) => err.code().to_string(),
        }
    }

    #[test]
    fn eligibility_and_the_strictest_rule_for_each_case() {
        let catalog = Catalog::from_yaml(EXAMPLE).unwrap();
        // 2026-12-03 is a Thursday; 10:00 UTC is 11:00 in Berlin, inside office hours.
        let thursday = "2026-12-03T10:00:00Z";
        let evening = "2026-12-03T19:00:00Z";
        let saturday = "2026-12-05T10:00:00Z";
        let cases = [
            ("alice", "prod-readonly", 60, thursday, "approvers:1:bob,carol"),
            ("bob", "prod-readonly", 60, thursday, "approvers:1:carol"),
            ("carol", "prod-readonly", 60, thursday, "not_eligible"),
            ("dave", "prod-admin", 10, thursday, "not_eligible"),
            ("bob", "prod-db-admin", 10, thursday, "not_eligible"),
            ("mallory", "prod-admin", 10, thursday, "unknown_requester"),
            // alice is on call: short in office hours is automatic, anything else needs one.
            ("alice", "prod-admin", 15, thursday, "on-call-short:auto"),
            ("alice", "prod-admin", 16, thursday, "on-call-long:1:carol,erin"),
            ("alice", "prod-admin", 10, evening, "on-call-after-hours:1:carol,erin"),
            ("alice", "prod-admin", 10, saturday, "on-call-after-hours:1:carol,erin"),
            ("alice", "prod-admin", 60, saturday, "on-call-long:1:carol,erin"),
            // bob is not on call: two people from security, whatever the duration.
            ("bob", "prod-admin", 10, thursday, "two-person:2:carol,erin"),
            ("bob", "prod-admin", 120, saturday, "two-person:2:carol,erin"),
        ];
        for (who, role, minutes, at, expected) in cases {
            assert_eq!(
                outcome(&catalog, who, role, minutes, at),
                expected,
                "{who} {role} {minutes}m {at}"
            );
        }
    }

    #[test]
    fn an_invalid_document_stops_the_load_naming_file_line_and_problem() {
        let path = std::env::temp_dir().join(format!("pim-policy-{}.yaml", std::process::id()));
        std::fs::write(&path, EXAMPLE.replace("quorum: 2", "quorum: 5")).unwrap();
        let err = Catalog::from_file(path.to_str().unwrap()).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        let message = err.to_string();
        assert!(message.starts_with("configuration: "), "{message}");
        assert!(message.contains(path.to_str().unwrap()), "{message}");
        assert!(message.contains("a quorum of 5 cannot be met by 2 approvers"), "{message}");
        assert!(message.contains("approval[1].quorum"), "{message}");
        let missing = Catalog::from_file("/nonexistent/policy.yaml").unwrap_err();
        assert!(missing.to_string().contains("cannot read policy /nonexistent/policy.yaml"));
    }

    #[test]
    fn principal_patterns_make_people_eligible_and_the_deny_list_wins() {
        let source = EXAMPLE
            .replace("assumed-role/contractor/dave", "assumed-role/sre-oncall/dave")
            .replace("deny: [dave]", "deny: []");
        let catalog = Catalog::from_yaml(&source).unwrap();
        let dave =
            Principal::from_iam_arn("arn:aws:sts::123456789012:assumed-role/sre-oncall/dave")
                .unwrap();
        let person = catalog.person_for(&dave).unwrap();
        let role = catalog.role("prod-admin").unwrap();
        let at = "2026-12-03T10:00:00Z".parse().unwrap();
        assert!(role.eligibility(person, &dave, at).is_ok(), "the sre-* pattern matches");

        let denied = Catalog::from_yaml(
            &EXAMPLE.replace("assumed-role/contractor/dave", "assumed-role/sre-oncall/dave"),
        )
        .unwrap();
        let role = denied.role("prod-admin").unwrap();
        let err = role.eligibility(denied.person_for(&dave).unwrap(), &dave, at).unwrap_err();
        assert_eq!(err.code(), "not_eligible");
        assert!(err.to_string().contains("denied"));
    }

    #[test]
    fn globs_match_like_iam() {
        assert!(glob_matches("iam:*", "iam:PassRole"));
        assert!(glob_matches("*", "sts:AssumeRole"));
        assert!(glob_matches("I?M:put*", "iam:PutRolePolicy"));
        assert!(glob_matches("s3:Get*", "s3:GetObject"));
        assert!(!glob_matches("s3:Get*", "s3:PutObject"));
        assert!(!glob_matches("iam:Get*", "iam:PutRolePolicy"));
    }
}
