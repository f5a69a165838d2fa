//! Lifecycle events: what integrations (chat, ticketing, a SIEM) receive on the stack's
//! EventBridge bus, derived from the audit chain.
//!
//! Events are not written by the functions that make the changes: the audit shipper derives
//! them from committed audit records, in chain order, and puts them on the bus after it has
//! shipped the records to the audit log group. So there is no event without its committed
//! record, and no committed record of a transition without its event (at least once: a
//! consumer deduplicates on `record_id`). The cost is latency, up to about a minute, the
//! shipper's schedule.
//!
//! Which records are events: every transition of a request (a record that moves the
//! request's version), and alerts (`alert.raised`, and standing access the sweep found,
//! both `Access Alert`). Refusals change nothing and the sweep's other findings about no
//! request (an orphan policy removed, an attachment detached) are not events; both are in
//! the audit log group, with their metric filters and alarms. [`detail_type_of`] matches every
//! [`AuditAction`] by name, so a new action cannot be added without deciding.
//!
//! The schema is versioned ([`EVENT_SCHEMA`]) and documented in `docs/events.md`. The
//! detail is built from an allow-list of the record's fields: a field added to audit
//! records later reaches the bus only when it is added here on purpose. Records never hold
//! a link token, MAC tag or MFA code, and the link id and schedule name they do hold are
//! left out.

use crate::audit::{AuditAction, AuditRecord};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// The `source` of every pim event.
pub const EVENT_SOURCE: &str = "pim";

/// The schema identifier in every event's detail.
pub const EVENT_SCHEMA: &str = "pim.event/1";

/// The detail-types pim emits, for rules to match on.
pub mod detail_types {
    /// A request passed policy and was stored; approvers were asked.
    pub const REQUEST_CREATED: &str = "Request Created";
    /// An approver approved; the quorum is not reached yet.
    pub const APPROVAL_RECORDED: &str = "Approval Recorded";
    /// The request is approved, by the approver completing the quorum or by the policy.
    pub const REQUEST_APPROVED: &str = "Request Approved";
    /// A break-glass request activated itself without approval.
    pub const BREAK_GLASS_ACTIVATED: &str = "Break-Glass Activated";
    /// An approver denied the request.
    pub const REQUEST_DENIED: &str = "Request Denied";
    /// The requester withdrew a pending request.
    pub const REQUEST_CANCELLED: &str = "Request Cancelled";
    /// The grant's schedule and policy are in place: access starts.
    pub const GRANT_ACTIVATED: &str = "Grant Activated";
    /// Access could not be put in place.
    pub const GRANT_FAILED: &str = "Grant Failed";
    /// The grant ended and its policy was removed.
    pub const GRANT_EXPIRED: &str = "Grant Expired";
    /// Removing the grant's policy failed past the retry budget; it is being retried.
    pub const GRANT_REVOCATION_FAILED: &str = "Grant Revocation Failed";
    /// The sweep found an active grant whose policy is missing from the role.
    pub const GRANT_DRIFT_FOUND: &str = "Grant Drift Found";
    /// The sweep created again the missing expiry schedule of an active grant.
    pub const GRANT_SCHEDULE_RECREATED: &str = "Grant Schedule Recreated";
    /// An approver of the role closed a break-glass activation with a finding.
    pub const BREAK_GLASS_REVIEWED: &str = "Break-Glass Reviewed";

    /// Approvers who had not decided were reminded.
    pub const APPROVERS_REMINDED: &str = "Approvers Reminded";
    /// A pending request was not decided in time.
    pub const REQUEST_EXPIRED: &str = "Request Expired";
    /// An active grant was given more time.
    pub const GRANT_EXTENDED: &str = "Grant Extended";
    /// A grant was ended early by its holder or an administrator.
    pub const GRANT_REVOKED: &str = "Grant Revoked";
    /// Something about access deserves a look: a role activated unusually often, an
    /// eligibility unused for long, or privilege found outside the system (`alert` says
    /// which).
    pub const ACCESS_ALERT: &str = "Access Alert";
    /// An access review finished; its proposed change to the policy is in the audit record.
    pub const ACCESS_REVIEW_COMPLETED: &str = "Access Review Completed";
    /// An access review passed its deadline with people undecided.
    pub const ACCESS_REVIEW_OVERDUE: &str = "Access Review Overdue";

    /// Every detail-type, in lifecycle order.
    pub const ALL: &[&str] = &[
        REQUEST_CREATED,
        APPROVAL_RECORDED,
        REQUEST_APPROVED,
        BREAK_GLASS_ACTIVATED,
        REQUEST_DENIED,
        REQUEST_CANCELLED,
        APPROVERS_REMINDED,
        REQUEST_EXPIRED,
        GRANT_ACTIVATED,
        GRANT_EXTENDED,
        GRANT_REVOKED,
        GRANT_FAILED,
        GRANT_EXPIRED,
        GRANT_REVOCATION_FAILED,
        GRANT_DRIFT_FOUND,
        GRANT_SCHEDULE_RECREATED,
        BREAK_GLASS_REVIEWED,
        ACCESS_ALERT,
        ACCESS_REVIEW_COMPLETED,
        ACCESS_REVIEW_OVERDUE,
    ];
}

/// The facts of a record's `details` an event carries, by their audit names. Everything
/// else in `details` (the link id, the schedule name, cleanup figures) stays in the audit
/// trail.
const DETAIL_FIELDS: &[&str] = &[
    "duration",
    "justification",
    "ticket",
    "approvers",
    "approval_rule",
    "approvals",
    "quorum",
    "break_glass",
    "severity",
    "review_required",
    "target_role_arn",
    "role_arn",
    "starts_at",
    "ends_at",
    "policy_name",
    "finding",
    "comment",
    "previous_ends_at",
    "extends",
    "extend_to",
    "extension_request",
    "approved_by",
    "revoked_by",
    "access_ended",
    "alert",
    "person",
    "count",
    "within",
    "grants",
    "unused_after",
    "last_granted_at",
    "last_grant_id",
    "policy_kind",
    "policy",
    "catalog_roles",
    "campaign_id",
    "kept",
    "removed",
    "undecided",
    "deadline",
];

/// One event for the bus.
#[derive(Debug, Clone, PartialEq)]
pub struct LifecycleEvent {
    /// The EventBridge `detail-type`, one of [`detail_types::ALL`].
    pub detail_type: &'static str,
    /// When the change happened (the record's time).
    pub time: DateTime<Utc>,
    /// The record this event was derived from; consumers deduplicate on it.
    pub record_id: String,
    /// The versioned detail object.
    pub detail: Value,
}

/// The detail-type of a record, or `None` when the record is not an event.
pub fn detail_type_of(record: &AuditRecord) -> Option<&'static str> {
    use detail_types as t;
    let break_glass = record.details.get("break_glass") == Some(&Value::Bool(true));
    match record.action {
        AuditAction::RequestCreated => Some(t::REQUEST_CREATED),
        AuditAction::ApprovalRecorded => Some(t::APPROVAL_RECORDED),
        AuditAction::RequestApproved if break_glass => Some(t::BREAK_GLASS_ACTIVATED),
        AuditAction::RequestApproved => Some(t::REQUEST_APPROVED),
        AuditAction::RequestDenied => Some(t::REQUEST_DENIED),
        AuditAction::RequestCancelled => Some(t::REQUEST_CANCELLED),
        AuditAction::GrantActivated => Some(t::GRANT_ACTIVATED),
        AuditAction::GrantFailed => Some(t::GRANT_FAILED),
        AuditAction::GrantExpired => Some(t::GRANT_EXPIRED),
        AuditAction::GrantRevocationFailed => Some(t::GRANT_REVOCATION_FAILED),
        AuditAction::SweepDriftFound => Some(t::GRANT_DRIFT_FOUND),
        AuditAction::SweepScheduleRecreated => Some(t::GRANT_SCHEDULE_RECREATED),
        AuditAction::BreakGlassReviewed => Some(t::BREAK_GLASS_REVIEWED),
        AuditAction::RequestReminded => Some(t::APPROVERS_REMINDED),
        AuditAction::RequestExpired => Some(t::REQUEST_EXPIRED),
        AuditAction::GrantExtended => Some(t::GRANT_EXTENDED),
        AuditAction::GrantRevoked => Some(t::GRANT_REVOKED),
        AuditAction::AlertRaised | AuditAction::SweepStandingAccessFound => Some(t::ACCESS_ALERT),
        AuditAction::ReviewCompleted => Some(t::ACCESS_REVIEW_COMPLETED),
        AuditAction::ReviewOverdue => Some(t::ACCESS_REVIEW_OVERDUE),
        AuditAction::RequestRefused
        | AuditAction::DecisionRefused
        | AuditAction::BreakGlassReviewRefused
        | AuditAction::GrantChangeRefused
        | AuditAction::SweepOrphanRemoved
        | AuditAction::SweepAttachmentDetached
        // A person's own enrolment is not a request's lifecycle.
        | AuditAction::MfaEnrollmentStarted
        | AuditAction::MfaEnrolled
        | AuditAction::MfaRefused
        | AuditAction::ViewRefused
        // Starting a review and each decision stay in the audit trail; the outcome is the event.
        | AuditAction::ReviewStarted
        | AuditAction::ReviewDecided
        | AuditAction::ReviewDecisionRefused => None,
    }
}

/// The request's state right after the record, where its action (and, for an approval,
/// whether it applied an extension) decides it.
fn state_after(record: &AuditRecord) -> Option<&'static str> {
    match record.action {
        AuditAction::RequestApproved if record.details.contains_key("extends") => Some("applied"),
        AuditAction::RequestCreated
        | AuditAction::ApprovalRecorded
        | AuditAction::RequestReminded => Some("pending"),
        AuditAction::RequestApproved => Some("approved"),
        AuditAction::RequestDenied => Some("denied"),
        AuditAction::RequestCancelled => Some("cancelled"),
        AuditAction::GrantActivated => Some("active"),
        AuditAction::GrantFailed => Some("failed"),
        AuditAction::GrantExpired | AuditAction::RequestExpired => Some("expired"),
        AuditAction::GrantRevoked => Some("revoked"),
        AuditAction::GrantExtended => Some("active"),
        // The state is unchanged, and the record does not say which it was.
        _ => None,
    }
}

/// The event of a record, or `None` when the record is not an event.
pub fn event_of(record: &AuditRecord) -> Option<LifecycleEvent> {
    let detail_type = detail_type_of(record)?;
    let mut detail = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            detail.insert(key.to_string(), value);
        }
    };
    put("schema", Some(EVENT_SCHEMA.into()));
    put("record_id", Some(record.id.clone().into()));
    put("sequence", Some(record.sequence.into()));
    put("action", serde_json::to_value(record.action).ok());
    put("time", serde_json::to_value(record.time).ok());
    put("request_id", record.request_id.clone().map(Value::from));
    put("request_version", record.request_version.map(Value::from));
    put("grant_id", record.grant_id.clone().map(Value::from));
    put("requester", record.requester.clone().map(Value::from));
    put("role", record.role.clone().map(Value::from));
    put("state", state_after(record).map(Value::from));
    put("actor", serde_json::to_value(&record.actor).ok());
    put("source", serde_json::to_value(record.source).ok());
    put("code", record.code.clone().map(Value::from));
    put("reason", record.reason.clone().map(Value::from));
    for field in DETAIL_FIELDS {
        put(field, record.details.get(*field).cloned());
    }
    if record.action == AuditAction::SweepStandingAccessFound {
        put("alert", Some("standing_access".into()));
    }
    Some(LifecycleEvent {
        detail_type,
        time: record.time,
        record_id: record.id.clone(),
        detail: Value::Object(detail),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Actor, Outcome, Source};
    use serde_json::json;

    fn record(action: AuditAction) -> AuditRecord {
        let time = "2026-12-03T19:04:48Z".parse().unwrap();
        let mut record =
            AuditRecord::new(action, Outcome::Success, Actor::system("grant"), Source::Link, time);
        record.sequence = 42;
        record.request_id = Some("req-1".into());
        record.request_version = Some(3);
        record.requester = Some("alice".into());
        record.role = Some("prod-readonly".into());
        record
    }

    /// Every audit action. The exhaustive match in `detail_type_of` makes a new action a
    /// compile error until it is decided; add it here with its decision too.
    const ACTIONS: &[AuditAction] = &[
        AuditAction::RequestCreated,
        AuditAction::RequestRefused,
        AuditAction::RequestCancelled,
        AuditAction::ApprovalRecorded,
        AuditAction::RequestApproved,
        AuditAction::RequestDenied,
        AuditAction::DecisionRefused,
        AuditAction::GrantActivated,
        AuditAction::GrantFailed,
        AuditAction::GrantExpired,
        AuditAction::GrantRevocationFailed,
        AuditAction::SweepOrphanRemoved,
        AuditAction::SweepAttachmentDetached,
        AuditAction::SweepDriftFound,
        AuditAction::SweepScheduleRecreated,
        AuditAction::SweepStandingAccessFound,
        AuditAction::BreakGlassReviewed,
        AuditAction::BreakGlassReviewRefused,
        AuditAction::MfaEnrollmentStarted,
        AuditAction::MfaEnrolled,
        AuditAction::MfaRefused,
        AuditAction::RequestExpired,
        AuditAction::RequestReminded,
        AuditAction::GrantRevoked,
        AuditAction::GrantExtended,
        AuditAction::GrantChangeRefused,
        AuditAction::ViewRefused,
        AuditAction::AlertRaised,
        AuditAction::ReviewStarted,
        AuditAction::ReviewDecided,
        AuditAction::ReviewDecisionRefused,
        AuditAction::ReviewCompleted,
        AuditAction::ReviewOverdue,
    ];

    #[test]
    fn each_transition_has_its_detail_type_and_refusals_and_findings_have_none() {
        let mapped: Vec<(String, Option<&str>)> = ACTIONS
            .iter()
            .map(|action| {
                let name = serde_json::to_value(action).unwrap().as_str().unwrap().to_string();
                (name, detail_type_of(&record(*action)))
            })
            .collect();
        let expected = [
            ("request.created", Some("Request Created")),
            ("request.refused", None),
            ("request.cancelled", Some("Request Cancelled")),
            ("request.approval_recorded", Some("Approval Recorded")),
            ("request.approved", Some("Request Approved")),
            ("request.denied", Some("Request Denied")),
            ("decision.refused", None),
            ("grant.activated", Some("Grant Activated")),
            ("grant.failed", Some("Grant Failed")),
            ("grant.expired", Some("Grant Expired")),
            ("grant.revocation_failed", Some("Grant Revocation Failed")),
            ("sweep.orphan_removed", None),
            ("sweep.attachment_detached", None),
            ("sweep.drift_found", Some("Grant Drift Found")),
            ("sweep.schedule_recreated", Some("Grant Schedule Recreated")),
            ("sweep.standing_access_found", Some("Access Alert")),
            ("break_glass.reviewed", Some("Break-Glass Reviewed")),
            ("break_glass.review_refused", None),
            ("mfa.enrollment_started", None),
            ("mfa.enrolled", None),
            ("mfa.refused", None),
            ("request.expired", Some("Request Expired")),
            ("request.reminded", Some("Approvers Reminded")),
            ("grant.revoked", Some("Grant Revoked")),
            ("grant.extended", Some("Grant Extended")),
            ("grant.change_refused", None),
            ("view.refused", None),
            ("alert.raised", Some("Access Alert")),
            ("review.started", None),
            ("review.decided", None),
            ("review.decision_refused", None),
            ("review.completed", Some("Access Review Completed")),
            ("review.overdue", Some("Access Review Overdue")),
        ];
        let expected: Vec<(String, Option<&str>)> =
            expected.iter().map(|(name, kind)| (name.to_string(), *kind)).collect();
        assert_eq!(mapped, expected);
    }

    #[test]
    fn every_detail_type_is_emitted_by_some_record() {
        let mut emitted: Vec<&str> =
            ACTIONS.iter().filter_map(|action| detail_type_of(&record(*action))).collect();
        emitted.push(
            detail_type_of(&record(AuditAction::RequestApproved).with("break_glass", true))
                .unwrap(),
        );
        for kind in detail_types::ALL {
            assert!(emitted.contains(kind), "{kind} is never emitted");
        }
        // Alerts of two origins share one detail-type.
        emitted.sort_unstable();
        emitted.dedup();
        assert_eq!(emitted.len(), detail_types::ALL.len(), "{emitted:?}");
    }

    #[test]
    fn a_break_glass_approval_is_its_own_detail_type() {
        let approved = record(AuditAction::RequestApproved)
            .with("break_glass", true)
            .with("severity", "high")
            .with("review_required", true);
        let event = event_of(&approved).unwrap();
        assert_eq!(event.detail_type, "Break-Glass Activated");
        assert_eq!(event.detail["break_glass"], true);
        assert_eq!(event.detail["severity"], "high");
        assert_eq!(event.detail["review_required"], true);
        assert_eq!(event.detail["state"], "approved");
        let flag_off = record(AuditAction::RequestApproved).with("break_glass", false);
        assert_eq!(detail_type_of(&flag_off), Some("Request Approved"));
    }

    #[test]
    fn the_approval_that_applies_an_extension_says_applied_and_names_the_grant() {
        let applied = record(AuditAction::RequestApproved).with("extends", "grant-7");
        let event = event_of(&applied).unwrap();
        assert_eq!(event.detail_type, "Request Approved");
        assert_eq!(
            (&event.detail["state"], &event.detail["extends"]),
            (&json!("applied"), &json!("grant-7"))
        );
        let extended = record(AuditAction::GrantExtended)
            .with("extension_request", "req-8")
            .with("approved_by", vec!["carol".to_string()]);
        let event = event_of(&extended).unwrap();
        assert_eq!(event.detail["state"], "active");
        assert_eq!(event.detail["extension_request"], "req-8");
        assert_eq!(event.detail["approved_by"], json!(["carol"]));
    }

    #[test]
    fn the_detail_carries_the_record_s_facts_under_the_schema() {
        let mut activated = record(AuditAction::GrantActivated)
            .with("policy_name", "pim-grant-1")
            .with("role_arn", "arn:aws:iam::123456789012:role/pim/alice-workload")
            .with("starts_at", "2026-12-03T19:04:48Z")
            .with("ends_at", "2026-12-03T20:04:48Z")
            .with("schedule_name", "pim-expire-grant-1");
        activated.grant_id = Some("grant-1".into());
        let event = event_of(&activated).unwrap();
        assert_eq!(event.record_id, activated.id);
        assert_eq!(event.time, activated.time);
        assert_eq!(
            event.detail,
            json!({
                "schema": "pim.event/1", "record_id": activated.id, "sequence": 42,
                "action": "grant.activated", "time": "2026-12-03T19:04:48Z",
                "request_id": "req-1", "request_version": 3, "grant_id": "grant-1",
                "requester": "alice", "role": "prod-readonly", "state": "active",
                "actor": {"kind": "system", "id": "grant"}, "source": "link",
                "policy_name": "pim-grant-1",
                "role_arn": "arn:aws:iam::123456789012:role/pim/alice-workload",
                "starts_at": "2026-12-03T19:04:48Z", "ends_at": "2026-12-03T20:04:48Z",
            })
        );
    }

    #[test]
    fn only_allow_listed_details_reach_the_event() {
        let created = record(AuditAction::RequestCreated)
            .with("justification", "incident INC-1234: reading logs")
            .with("link_id", "lid-should-stay-in-the-audit-trail")
            .with("token", "a-token-that-must-never-travel")
            .with("mfa_code", "123456");
        let detail = event_of(&created).unwrap().detail;
        assert_eq!(detail["justification"], "incident INC-1234: reading logs");
        let text = detail.to_string();
        for kept_back in ["link_id", "lid-should", "token", "a-token", "mfa_code", "123456"] {
            assert!(!text.contains(kept_back), "{kept_back} in {text}");
        }
    }

    #[test]
    fn failures_carry_their_code_and_reason_and_unchanged_states_are_not_guessed() {
        let failed = record(AuditAction::GrantFailed)
            .because("grant_failed", "the expiry schedule could not be created");
        let detail = event_of(&failed).unwrap().detail;
        assert_eq!(
            (&detail["code"], &detail["reason"], &detail["state"]),
            (
                &json!("grant_failed"),
                &json!("the expiry schedule could not be created"),
                &json!("failed")
            )
        );
        let not_removed = record(AuditAction::GrantRevocationFailed).because("throttled", "x");
        let detail = event_of(&not_removed).unwrap().detail;
        assert!(detail.get("state").is_none(), "{detail}");
    }
}
