//! Audit records: one per transition and per refusal, written in the same DynamoDB
//! transaction as the state change it describes, so there is never a change without its
//! record.
//!
//! The schema is versioned (`schema` field, currently [`AUDIT_SCHEMA`]) and documented in
//! `docs/audit-records.md`. Records never carry a link token, a MAC tag or an MFA code. User
//! text (the justification) is stored as typed; JSON escaping keeps control characters
//! inert, and the API refuses them in the first place.
//!
//! - [`chain`]: the hash rule, the chain head and the signed checkpoints.
//! - [`verify`]: the verifier of a shipped stream or an export.
//! - [`query`]: filters for listing records, and the receipt of one grant.

pub mod chain;
pub mod query;
pub mod verify;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The schema identifier every record carries.
pub const AUDIT_SCHEMA: &str = "pim.audit/2";

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuditAction {
    /// A request was stored and approvers were asked.
    #[serde(rename = "request.created")]
    RequestCreated,
    /// A request was refused by policy before anything was stored.
    #[serde(rename = "request.refused")]
    RequestRefused,
    /// The requester cancelled a pending request.
    #[serde(rename = "request.cancelled")]
    RequestCancelled,
    /// An approver approved, and the quorum is not reached yet.
    #[serde(rename = "request.approval_recorded")]
    ApprovalRecorded,
    /// The request is approved: by the approver who completed the quorum, or by the policy.
    #[serde(rename = "request.approved")]
    RequestApproved,
    /// An approver denied.
    #[serde(rename = "request.denied")]
    RequestDenied,
    /// A decision through a link was refused (bad or expired link, self-approval, CSRF).
    #[serde(rename = "decision.refused")]
    DecisionRefused,
    /// The grant's policy and schedule are in place.
    #[serde(rename = "grant.activated")]
    GrantActivated,
    /// Access could not be put in place and was rolled back.
    #[serde(rename = "grant.failed")]
    GrantFailed,
    /// The grant ended and its policy was removed.
    #[serde(rename = "grant.expired")]
    GrantExpired,
    /// Removing the grant's policy failed past the retry budget; the platform retries the
    /// delivery and the sweep removes the policy later.
    #[serde(rename = "grant.revocation_failed")]
    GrantRevocationFailed,
    /// The sweep removed a grant policy that no live grant accounts for.
    #[serde(rename = "sweep.orphan_removed")]
    SweepOrphanRemoved,
    /// The sweep detached a managed policy pim attached that no live grant holds.
    #[serde(rename = "sweep.attachment_detached")]
    SweepAttachmentDetached,
    /// The sweep found an active grant whose policy is missing from the role.
    #[serde(rename = "sweep.drift_found")]
    SweepDriftFound,
    /// The sweep created again the missing expiry schedule of an active grant.
    #[serde(rename = "sweep.schedule_recreated")]
    SweepScheduleRecreated,
    /// The sweep found a policy on an eligible role that pim did not write.
    #[serde(rename = "sweep.standing_access_found")]
    SweepStandingAccessFound,
    /// A reviewer closed a break-glass activation with their finding.
    #[serde(rename = "break_glass.reviewed")]
    BreakGlassReviewed,
    /// A review was refused: not a reviewer of the role, the requester, already reviewed.
    #[serde(rename = "break_glass.review_refused")]
    BreakGlassReviewRefused,
    /// A pending request was not decided in time and expired.
    #[serde(rename = "request.expired")]
    RequestExpired,
    /// Approvers who had not decided were reminded, halfway through their time.
    #[serde(rename = "request.reminded")]
    RequestReminded,
    /// A grant was ended before its time: relinquished by its holder, or revoked by an
    /// administrator with a reason.
    #[serde(rename = "grant.revoked")]
    GrantRevoked,
    /// An active grant was given more time; its policy and schedule moved together.
    #[serde(rename = "grant.extended")]
    GrantExtended,
    /// A revocation or extension was refused (not the holder or an administrator, over the
    /// maximum, needs approval, not active).
    #[serde(rename = "grant.change_refused")]
    GrantChangeRefused,
    /// A person was issued a new one-time code secret, pending their first code.
    #[serde(rename = "mfa.enrollment_started")]
    MfaEnrollmentStarted,
    /// A person's first code confirmed their enrolment; their codes now count.
    #[serde(rename = "mfa.enrolled")]
    MfaEnrolled,
    /// An enrolment or its confirmation was refused (already enrolled, wrong code).
    #[serde(rename = "mfa.refused")]
    MfaRefused,
    /// A read was refused: the grants of others, the report, or someone else's eligibility
    /// asked for by someone who is not an administrator, or a malformed query.
    #[serde(rename = "view.refused")]
    ViewRefused,
    /// A usage alert: a role activated unusually often by one person, or an eligibility
    /// unused for long (see `service::alerts`).
    #[serde(rename = "alert.raised")]
    AlertRaised,
    /// An access-review campaign started, on demand or on its role's schedule.
    #[serde(rename = "review.started")]
    ReviewStarted,
    /// A reviewer decided to keep or remove one person's eligibility.
    #[serde(rename = "review.decided")]
    ReviewDecided,
    /// A review decision through a link was refused.
    #[serde(rename = "review.decision_refused")]
    ReviewDecisionRefused,
    /// Every person of a campaign was decided; the change to the policy is proposed.
    #[serde(rename = "review.completed")]
    ReviewCompleted,
    /// A campaign passed its deadline with people undecided.
    #[serde(rename = "review.overdue")]
    ReviewOverdue,
}

/// Whether the action took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The action took effect.
    Success,
    /// The action was refused; nothing changed.
    Refused,
    /// The action was attempted and failed.
    Failure,
}

/// Where the action came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The requester API.
    Api,
    /// An approval link.
    Link,
    /// A scheduled expiry.
    Schedule,
    /// The periodic reconciliation sweep.
    Sweep,
}

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// `person` or `system`.
    pub kind: String,
    /// The person id, when the actor is a known person.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The authenticated principal, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
}

impl Actor {
    /// A person known to the policy document.
    pub fn person(id: &str, principal: Option<&str>) -> Self {
        Self { kind: "person".into(), id: Some(id.into()), principal: principal.map(Into::into) }
    }

    /// An authenticated principal the document does not know.
    pub fn principal(principal: &str) -> Self {
        Self { kind: "principal".into(), id: None, principal: Some(principal.into()) }
    }

    /// pim itself (schedules, rollbacks).
    pub fn system(id: &str) -> Self {
        Self { kind: "system".into(), id: Some(id.into()), principal: None }
    }

    /// Someone holding a link whose token could not be verified.
    pub fn anonymous() -> Self {
        Self { kind: "anonymous".into(), id: None, principal: None }
    }
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Always [`AUDIT_SCHEMA`] for records written by this build.
    pub schema: String,
    /// A random id of the record.
    pub id: String,
    /// The record's place in the one chain of all records, from 1; no gaps, no repeats.
    /// Zero until the store seals the record into the chain.
    #[serde(default)]
    pub sequence: u64,
    /// The `hash` of the record before this one (64 zeros for the first record).
    #[serde(default)]
    pub prev_hash: String,
    /// SHA-256 of this record's canonical JSON without the `hash` field (see [`chain`]).
    #[serde(default)]
    pub hash: String,
    /// When it happened, UTC.
    pub time: DateTime<Utc>,
    /// What happened.
    pub action: AuditAction,
    /// Whether it took effect.
    pub outcome: Outcome,
    /// Who acted.
    pub actor: Actor,
    /// Where it came from.
    pub source: Source,
    /// The request concerned, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The request's version after the transition; orders one request's records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_version: Option<u64>,
    /// The grant concerned, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<String>,
    /// The person whose request it is (who would hold, holds or held the role).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
    /// The catalog role concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The stable code of a refusal or failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// A sentence: why it was refused or failed, or what was asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Facts of the action (duration, window, justification), by action.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl AuditRecord {
    /// A new record of `action` by `actor`, with the other fields empty.
    pub fn new(
        action: AuditAction,
        outcome: Outcome,
        actor: Actor,
        source: Source,
        time: DateTime<Utc>,
    ) -> Self {
        Self {
            schema: AUDIT_SCHEMA.into(),
            id: uuid::Uuid::new_v4().to_string(),
            sequence: 0,
            prev_hash: String::new(),
            hash: String::new(),
            time,
            action,
            outcome,
            actor,
            source,
            request_id: None,
            request_version: None,
            grant_id: None,
            requester: None,
            role: None,
            code: None,
            reason: None,
            details: serde_json::Map::new(),
        }
    }

    /// Fills request, version, grant and role from `request`.
    pub fn about(mut self, request: &crate::model::AccessRequest) -> Self {
        self.request_id = Some(request.id.clone());
        self.request_version = Some(request.version);
        self.grant_id = request.grant.as_ref().map(|grant| grant.id.clone());
        self.requester = Some(request.requester.clone());
        self.role = Some(request.role.clone());
        self
    }

    /// Sets the refusal or failure code and its sentence.
    pub fn because(mut self, code: &str, reason: &str) -> Self {
        self.code = Some(code.into());
        self.reason = Some(reason.into());
        self
    }

    /// Adds one fact to `details`.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.details.insert(key.into(), value.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_serialize_with_dotted_actions_and_escaped_text() {
        let time = "2026-12-03T10:00:00Z".parse().unwrap();
        let record = AuditRecord::new(
            AuditAction::RequestRefused,
            Outcome::Refused,
            Actor::principal("arn:aws:iam::123456789012:user/x"),
            Source::Api,
            time,
        )
        .because("not_eligible", "x may not request r")
        .with("justification", "line\u{1b}[31m");
        let json = serde_json::to_string(&record).unwrap();
        assert!(json.contains(r#""action":"request.refused""#), "{json}");
        assert!(json.contains(r#""time":"2026-12-03T10:00:00Z""#), "{json}");
        assert!(json.contains(r"line\u001b[31m"), "{json}");
        assert!(!json.contains('\u{1b}'));
        let back: AuditRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, record);
    }
}
