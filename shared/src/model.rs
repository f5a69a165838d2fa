//! Requests and grants, and the state machine that moves them.
//!
//! ```text
//!            approve             activate             expire
//! pending ───────────▶ approved ──────────▶ active ──────────▶ expired
//!    │ deny / cancel        │ fail (rolled back)  │  ▲ extend (active → active, later end)
//!    │ time out             ▼                     │  │ expire also ends an approved grant
//!    ▼                    failed                  │  │ whose policy is still being written
//! denied, cancelled,                              ▼
//! expired (not decided in time)                revoked (relinquished, or by an administrator)
//! ```
//!
//! An extension that needs approvers is a request of its own that names the grant it
//! extends: it is pending and decided like any other, but the approval that completes its
//! quorum moves it to `applied` (its time added to that grant, in the same transaction)
//! instead of opening a grant of its own.
//!
//! Every transition is a pure function from one request to the next with its version
//! incremented; the store writes it only if the stored version is still the one it was read
//! at, so two racing decisions can never both win.

use crate::error::{PimError, Result};
use crate::render::GrantWindow;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    /// Waiting for an approver.
    Pending,
    /// Approved; the grant's policy and schedule are being put in place.
    Approved,
    /// The grant's policy is on the role and its expiry is scheduled.
    Active,
    /// An approver refused it.
    Denied,
    /// The requester withdrew it before a decision.
    Cancelled,
    /// The grant ended and its policy was removed.
    Expired,
    /// Access could not be put in place; anything written was rolled back.
    Failed,
    /// The grant was ended before its time, by its holder or an administrator.
    Revoked,
    /// An extension request whose approved time was added to the grant it extends.
    Applied,
}

impl RequestState {
    /// The state's name as the API and audit records show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Active => "active",
            Self::Denied => "denied",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
            Self::Failed => "failed",
            Self::Revoked => "revoked",
            Self::Applied => "applied",
        }
    }
}

/// An approver's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Grant the access.
    Approve,
    /// Refuse it; a single deny ends the request.
    Deny,
}

/// One approver's recorded decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The approver's person id.
    pub approver: String,
    /// What they decided.
    pub verdict: Verdict,
    /// When the decision was committed.
    pub at: DateTime<Utc>,
}

/// What a reviewer found, after the fact, about a break-glass activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finding {
    /// The emergency was real and the access fitted it.
    Justified,
    /// It was not; access still in place is ended at once.
    Unjustified,
}

impl Finding {
    /// The finding's name as the API and audit records show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Justified => "justified",
            Self::Unjustified => "unjustified",
        }
    }
}

/// The after-the-fact review that closes a break-glass activation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    /// The reviewer's person id: an approver of the role, never the requester.
    pub reviewer: String,
    /// What they found.
    pub finding: Finding,
    /// Why, in their words.
    pub comment: String,
    /// When the review was committed.
    pub at: DateTime<Utc>,
}

/// The access an approved request puts in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The grant's id; it names the policy and the schedule.
    pub id: String,
    /// First second of access.
    pub starts_at: DateTime<Utc>,
    /// End of access: the policy's `DateLessThan` and the schedule's time.
    pub ends_at: DateTime<Utc>,
    /// Whether the grant has an inline policy (false when its role only attaches managed
    /// policies); set at activation.
    #[serde(default = "has_inline_policy")]
    pub inline_policy: bool,
    /// The managed policies the grant holds attached to the role; set at activation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attached_policies: Vec<String>,
}

fn has_inline_policy() -> bool {
    true
}

impl Grant {
    /// The inline policy's name on the requester's role.
    pub fn policy_name(&self) -> String {
        format!("pim-{}", self.id)
    }

    /// The one-time schedule's name.
    pub fn schedule_name(&self) -> String {
        format!("pim-expire-{}", self.id)
    }

    /// The grant's window.
    pub fn window(&self) -> GrantWindow {
        GrantWindow { starts_at: self.starts_at, ends_at: self.ends_at }
    }
}

/// A request for privileged access, and its grant once approved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequest {
    /// `req-` and a random id.
    pub id: String,
    /// The requester's person id.
    pub requester: String,
    /// The principal that made the request, as authenticated.
    pub requester_principal: String,
    /// The catalog role asked for.
    pub role: String,
    /// The IAM role the grant lands on: the requester's own, from the policy document.
    pub target_role_arn: String,
    /// How long access lasts once granted, in seconds.
    pub duration_secs: u64,
    /// Why the requester needs it, as typed.
    pub justification: String,
    /// When the request was made.
    pub created_at: DateTime<Utc>,
    /// Approvers must decide before this time; links expire with it.
    pub pending_until: DateTime<Utc>,
    /// The person ids asked to approve.
    pub approvers: Vec<String>,
    /// The approval rule that governs the request.
    #[serde(default)]
    pub approval_rule: String,
    /// Distinct approvals needed.
    #[serde(default = "one")]
    pub quorum: u32,
    /// Each approval needs the approver's one-time code.
    #[serde(default)]
    pub approver_mfa: bool,
    /// The ticket the requester gave, when the role asks for one.
    #[serde(default)]
    pub ticket: Option<String>,
    /// Emergency self-activation: granted without approval, reviewed afterwards.
    #[serde(default)]
    pub break_glass: bool,
    /// Where the request stands.
    pub state: RequestState,
    /// Incremented by every transition; the store's write condition.
    pub version: u64,
    /// When the last transition happened.
    pub updated_at: DateTime<Utc>,
    /// Decisions recorded so far.
    #[serde(default)]
    pub decisions: Vec<Decision>,
    /// The grant, once approved.
    #[serde(default)]
    pub grant: Option<Grant>,
    /// Why the request ended the way it did, for failures and cancellations.
    #[serde(default)]
    pub reason: Option<String>,
    /// What the sweep found wrong with an active grant (its policy missing from the role),
    /// so a human looks and the sweep reports it once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<String>,
    /// The review of a break-glass activation, once done; until then it is outstanding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<Review>,
    /// When approvers who had not decided were reminded; they are reminded once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminded_at: Option<DateTime<Utc>>,
    /// For an extension request: the grant it extends and the end it asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extends: Option<ExtensionOf>,
}

/// What an extension request asks for: a later end of one active grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtensionOf {
    /// The grant to extend.
    pub grant_id: String,
    /// The request that holds that grant.
    pub request_id: String,
    /// The grant's end when the extension was asked for.
    pub ends_at: DateTime<Utc>,
    /// The end asked for: the approvers approve exactly this time.
    pub extend_to: DateTime<Utc>,
}

/// What the scheduler delivers to the revocation function at a grant's end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpiryEvent {
    /// Always `grant_expiry`; kept so other kinds of timed work can share the function.
    pub kind: String,
    /// The request the grant belongs to.
    pub request_id: String,
    /// The grant to end.
    pub grant_id: String,
}

impl ExpiryEvent {
    /// The event that ends `grant` of `request_id`.
    pub fn for_grant(request_id: &str, grant: &Grant) -> Self {
        Self {
            kind: "grant_expiry".into(),
            request_id: request_id.into(),
            grant_id: grant.id.clone(),
        }
    }
}

/// Time-driven work on a pending request, delivered by its own one-time schedule to the
/// revocation function: the reminder halfway through the approvers' time, and the end of
/// that time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RequestTimer {
    /// Remind approvers who have not decided, then wait for the deadline.
    ApprovalReminder {
        /// The pending request.
        request_id: String,
    },
    /// The approvers' time is up: a request still pending expires.
    RequestExpiry {
        /// The pending request.
        request_id: String,
    },
    /// The holder's grant ends soon: they are warned by mail.
    GrantEndingSoon {
        /// The request whose grant ends.
        request_id: String,
    },
}

impl RequestTimer {
    /// The request the timer is about.
    pub fn request_id(&self) -> &str {
        match self {
            Self::ApprovalReminder { request_id }
            | Self::RequestExpiry { request_id }
            | Self::GrantEndingSoon { request_id } => request_id,
        }
    }

    /// The schedule's name: one of each kind per request.
    pub fn schedule_name(&self) -> String {
        match self {
            Self::ApprovalReminder { request_id } => format!("pim-remind-{request_id}"),
            Self::RequestExpiry { request_id } => format!("pim-deadline-{request_id}"),
            Self::GrantEndingSoon { request_id } => format!("pim-warn-{request_id}"),
        }
    }
}

fn one() -> u32 {
    1
}

/// The id of the grant a request opens: the request's own random part, so a grant id leads
/// back to its request (`req-1f…` opens `grant-1f…`).
pub fn grant_id_for(request_id: &str) -> String {
    format!("grant-{}", request_id.strip_prefix("req-").unwrap_or(request_id))
}

/// The request a grant id belongs to, for ids made by [`grant_id_for`].
pub fn request_id_of_grant(grant_id: &str) -> Option<String> {
    let random = grant_id.strip_prefix("grant-")?;
    let well_formed = !random.is_empty() && random.bytes().all(|b| b.is_ascii_alphanumeric());
    well_formed.then(|| format!("req-{random}"))
}

/// A fresh random id with a readable prefix.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

impl AccessRequest {
    /// Records `approver`'s approval. Once the quorum of distinct approvers is reached the
    /// request is approved and the grant window starts now; before that it stays pending.
    /// One person counts once.
    pub fn approve(&self, approver: &str, at: DateTime<Utc>) -> Result<Self> {
        self.ensure_decidable(at)?;
        if self.decisions.iter().any(|decision| decision.approver == approver) {
            return Err(PimError::conflict(
                "already_decided",
                format!("{approver} has already decided"),
            ));
        }
        let mut next = self.next(RequestState::Pending, at);
        next.decisions.push(Decision { approver: approver.into(), verdict: Verdict::Approve, at });
        if next.approvals() < self.quorum.max(1) as usize {
            return Ok(next);
        }
        if self.extends.is_some() {
            // Its time goes to the grant it extends, written in the same transaction.
            next.state = RequestState::Applied;
            return Ok(next);
        }
        next.open_grant(at)?;
        Ok(next)
    }

    /// Approves without approvers, because the policy says so (an auto-approving rule or
    /// break-glass); the grant window starts now.
    pub fn approve_by_policy(&self, at: DateTime<Utc>) -> Result<Self> {
        self.ensure_decidable(at)?;
        if self.extends.is_some() {
            return Err(PimError::conflict(
                "invalid_state",
                format!("extension request {} is decided by approvers", self.id),
            ));
        }
        let mut next = self.next(RequestState::Pending, at);
        next.open_grant(at)?;
        Ok(next)
    }

    fn open_grant(&mut self, at: DateTime<Utc>) -> Result<()> {
        let secs = i64::try_from(self.duration_secs).map_err(|_| overflow())?;
        let ends_at = at.checked_add_signed(Duration::seconds(secs)).ok_or_else(overflow)?;
        self.state = RequestState::Approved;
        self.grant = Some(Grant {
            id: grant_id_for(&self.id),
            starts_at: at,
            ends_at,
            inline_policy: true,
            attached_policies: vec![],
        });
        Ok(())
    }

    /// How many distinct approvers have approved.
    pub fn approvals(&self) -> usize {
        let mut approvers: Vec<&str> = self
            .decisions
            .iter()
            .filter(|d| d.verdict == Verdict::Approve)
            .map(|d| d.approver.as_str())
            .collect();
        approvers.sort_unstable();
        approvers.dedup();
        approvers.len()
    }

    /// Records `approver`'s denial, which ends the request: deny wins over any approvals.
    pub fn deny(&self, approver: &str, at: DateTime<Utc>) -> Result<Self> {
        self.ensure_decidable(at)?;
        if self.decisions.iter().any(|decision| decision.approver == approver) {
            return Err(PimError::conflict(
                "already_decided",
                format!("{approver} has already decided"),
            ));
        }
        let mut next = self.next(RequestState::Denied, at);
        next.decisions.push(Decision { approver: approver.into(), verdict: Verdict::Deny, at });
        Ok(next)
    }

    /// The requester withdraws a pending request.
    pub fn cancel(&self, at: DateTime<Utc>) -> Result<Self> {
        self.ensure_state(&[RequestState::Pending], "cancelled")?;
        let mut next = self.next(RequestState::Cancelled, at);
        next.reason = Some("cancelled by the requester".into());
        Ok(next)
    }

    /// The grant's policy and schedule are in place.
    pub fn activate(&self, at: DateTime<Utc>) -> Result<Self> {
        self.ensure_state(&[RequestState::Approved], "activated")?;
        Ok(self.next(RequestState::Active, at))
    }

    /// The grant has ended and its policy is gone.
    pub fn expire(&self, at: DateTime<Utc>) -> Result<Self> {
        self.ensure_state(&[RequestState::Active, RequestState::Approved], "expired")?;
        Ok(self.next(RequestState::Expired, at))
    }

    /// A fact worth recording (a failed revocation, a drift found) that leaves the state as
    /// it is; the version still moves so the record is ordered and the write conditional.
    pub fn note(&self, at: DateTime<Utc>) -> Self {
        self.next(self.state, at)
    }

    /// Marks an active grant whose policy is missing from the role.
    pub fn mark_drift(&self, what: &str, at: DateTime<Utc>) -> Result<Self> {
        self.ensure_state(&[RequestState::Active], "marked")?;
        let mut next = self.next(self.state, at);
        next.drift = Some(what.into());
        Ok(next)
    }

    /// Records `reviewer`'s review of a break-glass activation. One review closes it; the
    /// requester never reviews their own; the state is left as it is.
    pub fn record_review(
        &self,
        reviewer: &str,
        finding: Finding,
        comment: &str,
        at: DateTime<Utc>,
    ) -> Result<Self> {
        if !self.break_glass {
            return Err(PimError::conflict(
                "not_break_glass",
                format!(
                    "request {} was not a break-glass activation; there is nothing to review",
                    self.id
                ),
            ));
        }
        if self.state == RequestState::Pending {
            return Err(PimError::conflict(
                "invalid_state",
                format!("request {} is pending and cannot be reviewed yet", self.id),
            ));
        }
        if reviewer == self.requester {
            return Err(PimError::refused(
                "self_review",
                "a break-glass activation is reviewed by someone other than its requester",
            ));
        }
        if let Some(review) = &self.review {
            return Err(PimError::conflict(
                "already_reviewed",
                format!("request {} was already reviewed by {}", self.id, review.reviewer),
            ));
        }
        let mut next = self.next(self.state, at);
        next.review =
            Some(Review { reviewer: reviewer.into(), finding, comment: comment.into(), at });
        Ok(next)
    }

    /// The approvers' time ran out before a decision: the request expires.
    pub fn time_out(&self, at: DateTime<Utc>) -> Result<Self> {
        self.ensure_state(&[RequestState::Pending], "timed out")?;
        if !self.is_past_pending_deadline(at) {
            return Err(PimError::conflict(
                "invalid_state",
                format!("request {} still has time for a decision", self.id),
            ));
        }
        let mut next = self.next(RequestState::Expired, at);
        next.reason = Some("not decided in time".into());
        Ok(next)
    }

    /// Records that the approvers who had not decided were reminded; once only.
    pub fn remind(&self, at: DateTime<Utc>) -> Result<Self> {
        self.ensure_decidable(at)?;
        if self.reminded_at.is_some() {
            return Err(PimError::conflict("already_reminded", "approvers were reminded before"));
        }
        let mut next = self.next(self.state, at);
        next.reminded_at = Some(at);
        Ok(next)
    }

    /// Ends a grant before its time: relinquished by its holder or revoked by an
    /// administrator. An approved grant whose policy is still being written ends too.
    pub fn revoke(&self, reason: &str, at: DateTime<Utc>) -> Result<Self> {
        self.ensure_state(&[RequestState::Active, RequestState::Approved], "revoked")?;
        let mut next = self.next(RequestState::Revoked, at);
        next.reason = Some(reason.into());
        Ok(next)
    }

    /// Moves an active grant's end to `ends_at`, later than it was.
    pub fn extend(&self, ends_at: DateTime<Utc>, at: DateTime<Utc>) -> Result<Self> {
        self.ensure_state(&[RequestState::Active], "extended")?;
        let grant = self.grant.as_ref().ok_or_else(|| {
            PimError::conflict("invalid_state", format!("request {} has no grant", self.id))
        })?;
        if ends_at <= grant.ends_at || grant.ends_at <= at {
            return Err(PimError::conflict(
                "invalid_state",
                format!("grant {} has ended or would not end later", grant.id),
            ));
        }
        let mut next = self.next(self.state, at);
        if let Some(grant) = next.grant.as_mut() {
            grant.ends_at = ends_at;
        }
        next.duration_secs = (ends_at - grant.starts_at).num_seconds().max(0) as u64;
        Ok(next)
    }

    /// Access could not be put in place and was rolled back.
    pub fn fail(&self, reason: &str, at: DateTime<Utc>) -> Result<Self> {
        self.ensure_state(&[RequestState::Approved], "failed")?;
        let mut next = self.next(RequestState::Failed, at);
        next.reason = Some(reason.into());
        Ok(next)
    }

    /// Whether a decision at `at` would be too late.
    pub fn is_past_pending_deadline(&self, at: DateTime<Utc>) -> bool {
        at >= self.pending_until
    }

    fn ensure_decidable(&self, at: DateTime<Utc>) -> Result<()> {
        self.ensure_state(&[RequestState::Pending], "decided")?;
        if self.is_past_pending_deadline(at) {
            return Err(PimError::conflict(
                "request_expired",
                "the request was not decided in time and can no longer be approved or denied",
            ));
        }
        Ok(())
    }

    fn ensure_state(&self, allowed: &[RequestState], verb: &str) -> Result<()> {
        if allowed.contains(&self.state) {
            return Ok(());
        }
        Err(PimError::conflict(
            "invalid_state",
            format!("request {} is {} and cannot be {verb}", self.id, self.state.as_str()),
        ))
    }

    fn next(&self, state: RequestState, at: DateTime<Utc>) -> Self {
        let mut next = self.clone();
        next.state = state;
        next.version = self.version + 1;
        next.updated_at = at;
        next
    }
}

fn overflow() -> PimError {
    PimError::invalid("invalid_duration", "the grant would end beyond the representable time")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(at: DateTime<Utc>) -> AccessRequest {
        AccessRequest {
            id: "req-1".into(),
            requester: "alice".into(),
            requester_principal: "arn:aws:iam::123456789012:user/alice".into(),
            role: "prod-readonly".into(),
            target_role_arn: "arn:aws:iam::123456789012:role/pim/alice".into(),
            duration_secs: 3600,
            justification: "incident 42".into(),
            created_at: at,
            pending_until: at + Duration::hours(24),
            approvers: vec!["bob".into(), "carol".into(), "erin".into()],
            approval_rule: "approvers".into(),
            quorum: 1,
            approver_mfa: false,
            ticket: None,
            break_glass: false,
            state: RequestState::Pending,
            version: 1,
            updated_at: at,
            decisions: vec![],
            grant: None,
            reason: None,
            drift: None,
            review: None,
            reminded_at: None,
            extends: None,
        }
    }

    fn t(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn an_extension_request_is_applied_at_its_quorum_and_opens_no_grant_of_its_own() {
        let mut request = pending(t("2026-12-03T10:00:00Z"));
        request.quorum = 2;
        request.extends = Some(ExtensionOf {
            grant_id: "grant-9".into(),
            request_id: "req-9".into(),
            ends_at: t("2026-12-03T10:30:00Z"),
            extend_to: t("2026-12-03T11:30:00Z"),
        });
        let once = request.approve("bob", t("2026-12-03T10:01:00Z")).unwrap();
        assert_eq!((once.state, once.grant.is_none()), (RequestState::Pending, true));
        let twice = once.approve("carol", t("2026-12-03T10:02:00Z")).unwrap();
        assert_eq!((twice.state, twice.version), (RequestState::Applied, 3));
        assert!(twice.grant.is_none(), "the time goes to grant-9, not to a grant of its own");
        assert!(twice.activate(t("2026-12-03T10:03:00Z")).is_err());
        assert!(twice.deny("erin", t("2026-12-03T10:03:00Z")).is_err(), "applied is final");
        assert_eq!(
            request.approve_by_policy(t("2026-12-03T10:01:00Z")).unwrap_err().code(),
            "invalid_state",
            "no rule approves an extension request by itself"
        );
        let denied = once.deny("erin", t("2026-12-03T10:02:00Z")).unwrap();
        assert_eq!(denied.state, RequestState::Denied, "deny wins as for any request");
    }

    #[test]
    fn approval_opens_a_window_of_the_requested_length_from_the_decision() {
        let request = pending(t("2026-12-03T10:00:00Z"));
        let approved = request.approve("bob", t("2026-12-03T10:05:00Z")).unwrap();
        assert_eq!(approved.state, RequestState::Approved);
        assert_eq!(approved.version, 2);
        let grant = approved.grant.as_ref().unwrap();
        assert_eq!(grant.starts_at, t("2026-12-03T10:05:00Z"));
        assert_eq!(grant.ends_at, t("2026-12-03T11:05:00Z"));
        assert!(grant.policy_name().starts_with("pim-grant-"));

        let active = approved.activate(t("2026-12-03T10:05:01Z")).unwrap();
        let expired = active.expire(t("2026-12-03T11:05:00Z")).unwrap();
        assert_eq!((expired.state, expired.version), (RequestState::Expired, 4));
    }

    #[test]
    fn decisions_only_while_pending_and_before_the_deadline() {
        let request = pending(t("2026-12-03T10:00:00Z"));
        let denied = request.deny("bob", t("2026-12-03T10:01:00Z")).unwrap();
        assert_eq!(
            denied.approve("bob", t("2026-12-03T10:02:00Z")).unwrap_err().code(),
            "invalid_state"
        );
        assert_eq!(denied.cancel(t("2026-12-03T10:02:00Z")).unwrap_err().code(), "invalid_state");

        let at_deadline = request.pending_until;
        assert_eq!(request.approve("bob", at_deadline).unwrap_err().code(), "request_expired");
        assert!(request.approve("bob", at_deadline - Duration::seconds(1)).is_ok());
    }

    #[test]
    fn a_quorum_needs_distinct_approvers_and_a_deny_wins() {
        let at = t("2026-12-03T10:00:00Z");
        let request = AccessRequest { quorum: 2, ..pending(at) };
        let one = request.approve("bob", at).unwrap();
        assert_eq!((one.state, one.version, one.approvals()), (RequestState::Pending, 2, 1));
        assert!(one.grant.is_none());
        assert_eq!(one.approve("bob", at).unwrap_err().code(), "already_decided");
        assert_eq!(one.deny("bob", at).unwrap_err().code(), "already_decided");

        let two = one.approve("carol", at + Duration::minutes(5)).unwrap();
        assert_eq!(two.state, RequestState::Approved);
        assert_eq!(two.grant.as_ref().unwrap().starts_at, at + Duration::minutes(5));

        let denied = one.deny("erin", at).unwrap();
        assert_eq!(denied.state, RequestState::Denied);
    }

    #[test]
    fn only_granted_requests_expire_and_only_approved_ones_fail_or_activate() {
        let at = t("2026-12-03T10:00:00Z");
        let request = pending(at);
        assert!(request.expire(at).is_err());
        assert!(request.activate(at).is_err());
        assert!(request.fail("x", at).is_err());
        let approved = request.approve("bob", at).unwrap();
        assert_eq!(approved.expire(at).unwrap().state, RequestState::Expired);
        let failed = approved.fail("schedule refused", at).unwrap();
        assert_eq!(failed.reason.as_deref(), Some("schedule refused"));
        assert!(failed.expire(at).is_err());
    }

    #[test]
    fn a_break_glass_activation_is_reviewed_once_by_someone_else_whatever_its_state() {
        let at = t("2026-12-03T10:00:00Z");
        let request = AccessRequest { break_glass: true, ..pending(at) };
        let review = |r: &AccessRequest, who: &str| {
            r.record_review(who, Finding::Justified, "real outage", at + Duration::hours(2))
        };
        assert_eq!(review(&request, "bob").unwrap_err().code(), "invalid_state");

        let expired = request.approve_by_policy(at).unwrap().expire(at).unwrap();
        assert_eq!(review(&expired, "alice").unwrap_err().code(), "self_review");
        let reviewed = review(&expired, "bob").unwrap();
        assert_eq!(
            (reviewed.state, reviewed.version, reviewed.review.as_ref().unwrap().reviewer.as_str()),
            (RequestState::Expired, expired.version + 1, "bob")
        );
        assert_eq!(review(&reviewed, "carol").unwrap_err().code(), "already_reviewed");

        let ordinary = pending(at).approve("bob", at).unwrap();
        assert_eq!(review(&ordinary, "carol").unwrap_err().code(), "not_break_glass");
    }
}
