//! The policy document as written: the YAML schema, field by field. Unknown keys are
//! refused everywhere, so a misspelt rule is an error rather than a silently ignored line.
//! [`super::check`] turns this into a validated [`super::Catalog`].

use serde::Deserialize;
use std::collections::BTreeMap;

/// The whole document.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// Schema version; this build reads 1.
    pub version: u32,
    /// Document-wide settings.
    #[serde(default)]
    pub settings: Settings,
    /// The people pim knows.
    pub people: Vec<PersonDoc>,
    /// Named sets of people and principal patterns, referred to as `group:<name>`.
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
    /// The privileged roles.
    pub roles: Vec<RoleDoc>,
    /// Who may revoke anyone's grant, with a reason: person ids and `group:<name>`.
    #[serde(default)]
    pub administrators: Vec<String>,
    /// Thresholds of the alerts about how access is used.
    #[serde(default)]
    pub alerts: AlertsDoc,
}

/// The alerts' thresholds. Long periods take days: `P90D` or `90d`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsDoc {
    /// One person activating one role at least `count` times `within` a period.
    #[serde(default)]
    pub frequent_activations: FrequentActivationsDoc,
    /// An eligible person who has not been granted a role for this long (or ever).
    #[serde(default = "default_unused_after")]
    pub unused_after: String,
}

impl Default for AlertsDoc {
    fn default() -> Self {
        Self {
            frequent_activations: FrequentActivationsDoc::default(),
            unused_after: default_unused_after(),
        }
    }
}

fn default_unused_after() -> String {
    "P90D".into()
}

/// How often is unusually often.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrequentActivationsDoc {
    /// Activations of one role by one person.
    #[serde(default = "default_frequent_count")]
    pub count: u32,
    /// Within this period (`P7D`, `7d`).
    #[serde(default = "default_frequent_within")]
    pub within: String,
}

impl Default for FrequentActivationsDoc {
    fn default() -> Self {
        Self { count: default_frequent_count(), within: default_frequent_within() }
    }
}

fn default_frequent_count() -> u32 {
    10
}

fn default_frequent_within() -> String {
    "P7D".into()
}

/// Access reviews of a role: who confirms each eligible person, how often, how long they
/// have.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewDoc {
    /// Person ids and `group:<name>` (people only) who decide in the role's campaigns.
    pub reviewers: Vec<String>,
    /// A campaign starts this long after the previous one started (`P90D`); campaigns
    /// start on demand only when absent.
    #[serde(default)]
    pub every: Option<String>,
    /// How long reviewers have to decide (`P14D`).
    #[serde(default = "default_review_deadline")]
    pub deadline: String,
}

fn default_review_deadline() -> String {
    "P14D".into()
}

/// Document-wide settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// How long approvers have, unless a role says otherwise.
    #[serde(default = "default_pending_lifetime")]
    pub pending_lifetime: String,
    /// The time zone of time windows and of times in mail (IANA name).
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// Resource patterns of pim itself; no role may grant access to them.
    #[serde(default = "default_protected_resources")]
    pub protected_resources: Vec<String>,
    /// How many managed policies IAM lets one role have attached (IAM's default is 10; an
    /// account with a raised quota says so here). Checked before a grant is approved.
    #[serde(default = "default_managed_policy_quota")]
    pub managed_policy_quota: u32,
    /// How many requests (extension requests included) one person may make in a clock hour;
    /// more are refused with 429 and send no mail.
    #[serde(default = "default_requests_per_hour")]
    pub requests_per_hour: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            pending_lifetime: default_pending_lifetime(),
            time_zone: default_time_zone(),
            protected_resources: default_protected_resources(),
            managed_policy_quota: default_managed_policy_quota(),
            requests_per_hour: default_requests_per_hour(),
        }
    }
}

fn default_requests_per_hour() -> u32 {
    20
}

fn default_pending_lifetime() -> String {
    "PT24H".into()
}

fn default_managed_policy_quota() -> u32 {
    10
}

fn default_time_zone() -> String {
    "UTC".into()
}

/// pim's own resources by the names the template gives them.
pub fn default_protected_resources() -> Vec<String> {
    [
        "arn:aws:dynamodb:*:*:table/pim*",
        "arn:aws:lambda:*:*:function:pim*",
        "arn:aws:scheduler:*:*:schedule/pim*",
        "arn:aws:scheduler:*:*:schedule-group/pim*",
        "arn:aws:kms:*:*:alias/pim*",
        "arn:aws:logs:*:*:log-group:pim*",
        "arn:aws:iam::*:role/pim-system/*",
    ]
    .map(String::from)
    .to_vec()
}

/// A person.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonDoc {
    /// Stable short id.
    pub id: String,
    /// Where mail reaches them.
    pub email: String,
    /// Authenticated identities that are this person.
    pub principals: Vec<String>,
    /// Their own IAM role; grants land on it.
    pub role_arn: String,
}

/// A privileged role (catalog entry).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleDoc {
    /// The name people request.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Inline Allow statements granted.
    #[serde(default)]
    pub statements: Vec<StatementDoc>,
    /// Managed policy ARNs whose default version is read from IAM and rendered into the
    /// grant's inline policy, every Allow statement with the grant's time conditions.
    #[serde(default)]
    pub managed_policies: Vec<String>,
    /// Managed policy ARNs attached to the role as they are for the grant and detached at its
    /// end; such access cannot expire by itself in IAM.
    #[serde(default)]
    pub attached_policies: Vec<String>,
    /// Duration when a request names none.
    pub default_duration: String,
    /// Longest duration a request may ask for.
    pub max_duration: String,
    /// Free-form labels.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Who may request: person ids, `group:<name>`, or principal patterns (`arn:…*`).
    pub requesters: Vec<String>,
    /// Who may never request, whatever else matches; wins over `requesters`.
    #[serde(default)]
    pub deny: Vec<String>,
    /// When requests are accepted at all.
    #[serde(default)]
    pub request_window: Option<WindowDoc>,
    /// Rules on the request itself.
    #[serde(default)]
    pub constraints: ConstraintsDoc,
    /// Shorthand for one approval rule: any one of these approves.
    #[serde(default)]
    pub approvers: Vec<String>,
    /// Approval rules; the strictest matching rule applies.
    #[serde(default)]
    pub approval: Vec<ApprovalRuleDoc>,
    /// Emergency self-activation.
    #[serde(default)]
    pub break_glass: Option<BreakGlassDoc>,
    /// Access reviews of who is eligible.
    #[serde(default)]
    pub review: Option<ReviewDoc>,
}

/// One Allow statement.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StatementDoc {
    /// IAM actions (patterns allowed).
    pub actions: Vec<String>,
    /// Resource ARNs (patterns allowed).
    pub resources: Vec<String>,
}

/// A time window: weekdays and hours in a time zone.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowDoc {
    /// IANA time zone; the document's when absent.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// `mon` … `sun`; every day when absent.
    #[serde(default)]
    pub weekdays: Vec<String>,
    /// `HH:MM-HH:MM`, start inclusive, end exclusive; all day when absent.
    #[serde(default)]
    pub hours: Option<String>,
}

/// Constraints on a request.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConstraintsDoc {
    /// Shortest justification, in characters (at least the built-in 10).
    #[serde(default)]
    pub justification_min_length: Option<usize>,
    /// A regular expression the justification must match.
    #[serde(default)]
    pub justification_pattern: Option<String>,
    /// A regular expression the ticket must match; a ticket is then required.
    #[serde(default)]
    pub ticket_pattern: Option<String>,
    /// How many grants of this role one person may hold at once.
    #[serde(default)]
    pub max_active_grants: Option<u32>,
    /// How long approvers have for this role.
    #[serde(default)]
    pub pending_lifetime: Option<String>,
    /// The requester must prove a second factor: a one-time code from their enrolled app,
    /// or a fresh OIDC multi-factor sign-in.
    #[serde(default)]
    pub requester_mfa: bool,
}

/// One approval rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRuleDoc {
    /// The rule's name, recorded with each decision it governs.
    pub name: String,
    /// Grant without any approver when the rule applies.
    #[serde(default)]
    pub auto_approve: bool,
    /// Who may approve: person ids and `group:<name>`.
    #[serde(default)]
    pub approvers: Vec<String>,
    /// How many distinct approvers must approve (default 1).
    #[serde(default = "one")]
    pub quorum: u32,
    /// Each approval must carry a one-time code from the approver's enrolled app.
    #[serde(default)]
    pub approver_mfa: bool,
    /// When the rule applies; always when absent.
    #[serde(default)]
    pub when: Option<ConditionDoc>,
}

fn one() -> u32 {
    1
}

/// When an approval rule applies; every listed condition must hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionDoc {
    /// The request asks for at most this long.
    #[serde(default)]
    pub max_duration: Option<String>,
    /// The request asks for longer than this.
    #[serde(default)]
    pub longer_than: Option<String>,
    /// The requester is one of these (person ids, groups, patterns).
    #[serde(default)]
    pub requester_in: Vec<String>,
    /// The requester is none of these.
    #[serde(default)]
    pub requester_not_in: Vec<String>,
    /// The request is made inside this window.
    #[serde(default)]
    pub window: Option<WindowDoc>,
    /// The request is made outside this window.
    #[serde(default)]
    pub outside_window: Option<WindowDoc>,
}

/// Emergency self-activation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakGlassDoc {
    /// The longest break-glass grant; shorter than the role's maximum.
    pub max_duration: String,
    /// Shortest justification for break-glass, in characters (default 30).
    #[serde(default = "break_glass_min_justification")]
    pub justification_min_length: usize,
}

fn break_glass_min_justification() -> usize {
    30
}
