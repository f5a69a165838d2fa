//! The policy document: the people pim knows, the privileged roles they may request, and who
//! approves. It is YAML kept in version control and deployed with the stack; functions load
//! it once at cold start and refuse to start when it is invalid.
//!
//! This is the minimal catalog of the lifecycle: eligibility is a list of people per role and
//! approval is one approval from any listed approver. Unknown keys are errors, so a document
//! written for a richer engine is refused rather than half-understood.

use crate::duration::{format_iso, parse_duration};
use crate::error::{PimError, Result};
use crate::identity::Principal;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};

/// The policy document's schema version this build understands.
pub const DOCUMENT_VERSION: u32 = 1;

/// Actions no catalog entry may grant: IAM itself, role assumption and the organization.
/// A pattern is refused when it matches any of these, so `iam:*`, `i*:Put*` and `*` all fail.
const FORBIDDEN_ACTIONS: &[&str] = &[
    "iam:PutRolePolicy",
    "iam:AttachRolePolicy",
    "iam:CreateRole",
    "iam:PassRole",
    "iam:CreateAccessKey",
    "iam:DeleteRolePermissionsBoundary",
    "iam:UpdateAssumeRolePolicy",
    "sts:AssumeRole",
    "organizations:LeaveOrganization",
];

/// Who may be granted what, as written in the policy document.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    version: u32,
    #[serde(default)]
    settings: Settings,
    people: Vec<Person>,
    roles: Vec<RawRole>,
}

/// Document-wide settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// How long approvers have to decide, and so how long a link lives (default `PT24H`).
    #[serde(default = "default_pending_lifetime")]
    pub pending_lifetime: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self { pending_lifetime: default_pending_lifetime() }
    }
}

fn default_pending_lifetime() -> String {
    "PT24H".into()
}

/// A person pim knows: how they authenticate, where mail reaches them, and the IAM role that
/// receives their grants.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    name: String,
    description: String,
    statements: Vec<Statement>,
    default_duration: String,
    max_duration: String,
    requesters: Vec<String>,
    approvers: Vec<String>,
}

/// One Allow statement of a privileged role, before the grant window is added.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    /// IAM actions, patterns allowed (`s3:Get*`).
    pub actions: Vec<String>,
    /// Resource ARNs, patterns allowed.
    pub resources: Vec<String>,
}

/// A privileged role of the catalog, validated.
#[derive(Debug, Clone)]
pub struct CatalogRole {
    /// The catalog name people request (`prod-admin`).
    pub name: String,
    /// What the role is for, shown to approvers.
    pub description: String,
    /// The permissions a grant of this role carries.
    pub statements: Vec<Statement>,
    /// The duration when the request names none, in seconds.
    pub default_secs: u64,
    /// The longest duration a request may ask for, in seconds.
    pub max_secs: u64,
    /// Ids of the people who may request this role.
    pub requesters: Vec<String>,
    /// Ids of the people who may approve requests for this role.
    pub approvers: Vec<String>,
}

/// The validated policy document.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// How long a request may wait for approval, in seconds.
    pub pending_lifetime_secs: u64,
    people: Vec<Person>,
    roles: Vec<CatalogRole>,
    person_by_principal: HashMap<Principal, usize>,
}

impl Catalog {
    /// Parses and validates a policy document; every problem found is listed in the error.
    pub fn from_yaml(source: &str) -> Result<Self> {
        let document: Document = serde_yaml::from_str(source)
            .map_err(|err| PimError::Config(format!("policy document: {err}")))?;
        let mut problems = Vec::new();
        let catalog = build(document, &mut problems);
        if problems.is_empty() {
            Ok(catalog)
        } else {
            Err(PimError::Config(format!("policy document: {}", problems.join("; "))))
        }
    }

    /// Reads and validates the policy document at `path`.
    pub fn from_file(path: &str) -> Result<Self> {
        let source = std::fs::read_to_string(path)
            .map_err(|err| PimError::Config(format!("cannot read policy {path}: {err}")))?;
        Self::from_yaml(&source)
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
}

impl CatalogRole {
    /// Whether `person_id` may request this role.
    pub fn may_request(&self, person_id: &str) -> bool {
        self.requesters.iter().any(|id| id == person_id)
    }

    /// Whether `person_id` may approve requests for this role.
    pub fn may_approve(&self, person_id: &str) -> bool {
        self.approvers.iter().any(|id| id == person_id)
    }
}

/// The name of an IAM role from its ARN (the last path segment).
pub fn role_name_of(role_arn: &str) -> &str {
    role_arn.rsplit('/').next().unwrap_or(role_arn)
}

fn build(document: Document, problems: &mut Vec<String>) -> Catalog {
    if document.version != DOCUMENT_VERSION {
        problems.push(format!("version: expected {DOCUMENT_VERSION}, found {}", document.version));
    }
    let pending_lifetime_secs = match parse_duration(&document.settings.pending_lifetime) {
        Ok(secs) => secs,
        Err(err) => {
            problems.push(format!("settings.pending_lifetime: {err}"));
            0
        }
    };

    let person_by_principal = index_people(&document.people, problems);
    let known: HashSet<&str> = document.people.iter().map(|p| p.id.as_str()).collect();
    let mut names = HashSet::new();
    let roles = document
        .roles
        .iter()
        .filter_map(|raw| {
            if !names.insert(raw.name.as_str()) {
                problems.push(format!("roles.{}: the name is used twice", raw.name));
            }
            validate_role(raw, &known, problems)
        })
        .collect();

    Catalog { pending_lifetime_secs, people: document.people, roles, person_by_principal }
}

fn index_people(people: &[Person], problems: &mut Vec<String>) -> HashMap<Principal, usize> {
    let mut ids = HashSet::new();
    let mut index = HashMap::new();
    for (position, person) in people.iter().enumerate() {
        let at = format!("people.{}", person.id);
        if person.id.is_empty() || !ids.insert(person.id.as_str()) {
            problems.push(format!("{at}: the id is empty or used twice"));
        }
        if !person.email.contains('@') {
            problems.push(format!("{at}.email: '{}' is not an email address", person.email));
        }
        if !is_role_arn(&person.role_arn) {
            problems.push(format!("{at}.role_arn: '{}' is not an IAM role ARN", person.role_arn));
        }
        for text in &person.principals {
            match Principal::from_policy(text) {
                Ok(principal) => {
                    if index.insert(principal, position).is_some() {
                        problems.push(format!("{at}.principals: '{text}' belongs to two people"));
                    }
                }
                Err(_) => problems.push(format!("{at}.principals: '{text}' is not a principal")),
            }
        }
    }
    index
}

fn validate_role(
    raw: &RawRole,
    known: &HashSet<&str>,
    problems: &mut Vec<String>,
) -> Option<CatalogRole> {
    let at = format!("roles.{}", raw.name);
    let before = problems.len();
    let default_secs =
        duration_field(&raw.default_duration, &format!("{at}.default_duration"), problems);
    let max_secs = duration_field(&raw.max_duration, &format!("{at}.max_duration"), problems);
    if default_secs > max_secs {
        problems.push(format!(
            "{at}.default_duration: {} is longer than max_duration {}",
            format_iso(default_secs),
            format_iso(max_secs)
        ));
    }
    for (field, ids) in [("requesters", &raw.requesters), ("approvers", &raw.approvers)] {
        if ids.is_empty() {
            problems.push(format!("{at}.{field}: the list is empty"));
        }
        for id in ids.iter().filter(|id| !known.contains(id.as_str())) {
            problems.push(format!("{at}.{field}: '{id}' is not a person of this document"));
        }
    }
    if raw.approvers.iter().all(|id| raw.requesters.len() == 1 && raw.requesters[0] == *id) {
        problems.push(format!("{at}.approvers: only the requester could approve"));
    }
    validate_statements(&raw.statements, &at, problems);

    (problems.len() == before).then(|| CatalogRole {
        name: raw.name.clone(),
        description: raw.description.clone(),
        statements: raw.statements.clone(),
        default_secs,
        max_secs,
        requesters: raw.requesters.clone(),
        approvers: raw.approvers.clone(),
    })
}

fn validate_statements(statements: &[Statement], at: &str, problems: &mut Vec<String>) {
    if statements.is_empty() {
        problems.push(format!("{at}.statements: the list is empty"));
    }
    for (index, statement) in statements.iter().enumerate() {
        let here = format!("{at}.statements[{index}]");
        if statement.actions.is_empty() || statement.resources.is_empty() {
            problems.push(format!("{here}: actions and resources must both be listed"));
        }
        for action in &statement.actions {
            if let Some(hit) = FORBIDDEN_ACTIONS.iter().find(|f| glob_matches(action, f)) {
                problems.push(format!("{here}.actions: '{action}' would grant {hit}"));
            }
        }
    }
}

fn duration_field(text: &str, at: &str, problems: &mut Vec<String>) -> u64 {
    parse_duration(text).unwrap_or_else(|err| {
        problems.push(format!("{at}: {err}"));
        0
    })
}

fn is_role_arn(text: &str) -> bool {
    let parts: Vec<&str> = text.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[2] == "iam"
        && parts[4].len() == 12
        && parts[5].starts_with("role/")
        && !role_name_of(text).is_empty()
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

    const EXAMPLE: &str = include_str!("../../infra/policy.example.yaml");

    #[test]
    fn the_example_policy_is_valid() {
        let catalog = Catalog::from_yaml(EXAMPLE).unwrap();
        assert!(!catalog.roles().is_empty());
        let alice =
            Principal::from_iam_arn("arn:aws:sts::123456789012:assumed-role/engineer/alice")
                .unwrap();
        assert_eq!(catalog.person_for(&alice).unwrap().id, "alice");
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

    fn with_role(statement_actions: &str, extra: &str) -> String {
        format!(
            "version: 1
people:
  - {{id: a, email: a@x.io, principals: ['arn:aws:iam::123456789012:user/a'], role_arn: 'arn:aws:iam::123456789012:role/pim/a'}}
  - {{id: b, email: b@x.io, principals: ['arn:aws:iam::123456789012:user/b'], role_arn: 'arn:aws:iam::123456789012:role/pim/b'}}
roles:
  - name: r
    description: d
    statements: [{{actions: {statement_actions}, resources: ['*']}}]
    default_duration: PT1H
    max_duration: PT2H
    requesters: [a]
    approvers: [b]
{extra}"
        )
    }

    #[test]
    fn refuses_roles_that_grant_iam_or_assume_roles() {
        assert!(Catalog::from_yaml(&with_role("['s3:GetObject']", "")).is_ok());
        for actions in
            ["['*']", "['iam:*']", "['i*:Put*']", "['sts:AssumeRole']", "['organizations:*']"]
        {
            let err = Catalog::from_yaml(&with_role(actions, "")).unwrap_err().to_string();
            assert!(err.contains("would grant"), "{actions}: {err}");
        }
    }

    #[test]
    fn refuses_unknown_keys_and_bad_references() {
        let err = Catalog::from_yaml(&with_role("['s3:GetObject']", "surprise: 1")).unwrap_err();
        assert!(err.to_string().contains("unknown field `surprise`"), "{err}");

        let text = with_role("['s3:GetObject']", "").replace("approvers: [b]", "approvers: [zed]");
        let err = Catalog::from_yaml(&text).unwrap_err().to_string();
        assert!(err.contains("'zed' is not a person"), "{err}");

        let text = with_role("['s3:GetObject']", "").replace("approvers: [b]", "approvers: [a]");
        let err = Catalog::from_yaml(&text).unwrap_err().to_string();
        assert!(err.contains("only the requester could approve"), "{err}");

        let text = with_role("['s3:GetObject']", "").replace("PT2H", "PT30M");
        let err = Catalog::from_yaml(&text).unwrap_err().to_string();
        assert!(err.contains("longer than max_duration"), "{err}");
    }
}
