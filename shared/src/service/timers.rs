//! A request's own clock: approvers who have not decided are reminded once, halfway
//! through their time; a request still pending at its deadline expires and its requester
//! is told; and the holder of a grant of at least [`WARN_GRANTS_FROM_SECS`] is warned
//! [`WARN_BEFORE_SECS`] before it ends.
//!
//! One timer is set when a request is stored: the reminder. When it fires it reminds, then
//! sets the second, the deadline. A request decided before the reminder therefore costs one
//! schedule and one read when it fires. Both deliveries are safe to repeat: the reminder is
//! a conditional transition that happens once (`reminded_at`), and expiry is one.

use super::Pim;
use crate::audit::{Actor, AuditAction, AuditRecord, Outcome, Source};
use crate::error::{PimError, Result};
use crate::model::{AccessRequest, RequestState, RequestTimer};
use chrono::Duration;

/// How long before a grant's end its holder is warned.
pub const WARN_BEFORE_SECS: i64 = 10 * 60;

/// Grants shorter than this get no warning: the activation mail says when they end.
pub const WARN_GRANTS_FROM_SECS: i64 = 30 * 60;

/// What a timer delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimerOutcome {
    /// Approvers who had not decided were reminded; the deadline timer is set.
    Reminded {
        /// Who was reminded.
        approvers: Vec<String>,
    },
    /// The request was not decided in time and expired.
    Expired,
    /// The holder was warned that their grant ends soon.
    Warned,
    /// The request is no longer pending, or the work was done before; nothing changed.
    Nothing(RequestState),
}

impl Pim {
    /// Sets the first timer of a request that waits for approvers: the reminder halfway
    /// through their time. A failure is logged, not fatal: decisions past the deadline are
    /// refused whatever happens to the timers.
    pub(crate) async fn start_timers(&self, request: &AccessRequest) {
        let halfway = request.created_at + (request.pending_until - request.created_at) / 2;
        let timer = RequestTimer::ApprovalReminder { request_id: request.id.clone() };
        if let Err(err) =
            self.scheduler.schedule_timer(&timer.schedule_name(), halfway, &timer).await
        {
            tracing::error!(request_id = %request.id, error = ?err,
                "reminder timer not set; the request will not be reminded or expired by schedule");
        }
    }

    /// Sets the warning timer of a grant long enough to have one. A failure is logged: the
    /// activation mail already says when access ends.
    pub(crate) async fn start_grant_warning(&self, active: &AccessRequest) {
        let Some(grant) = &active.grant else { return };
        if (grant.ends_at - grant.starts_at).num_seconds() < WARN_GRANTS_FROM_SECS {
            return;
        }
        let timer = RequestTimer::GrantEndingSoon { request_id: active.id.clone() };
        let at = grant.ends_at - Duration::seconds(WARN_BEFORE_SECS);
        if let Err(err) = self.scheduler.schedule_timer(&timer.schedule_name(), at, &timer).await {
            tracing::warn!(request_id = %active.id, error = ?err, "grant warning timer not set");
        }
    }

    /// Handles one delivery of a request's timer.
    pub async fn handle_timer(&self, timer: &RequestTimer) -> Result<TimerOutcome> {
        let Some(request) = self.store.load_request(timer.request_id()).await? else {
            tracing::warn!(request_id = timer.request_id(), "timer for an unknown request");
            return Ok(TimerOutcome::Nothing(RequestState::Cancelled));
        };
        if let RequestTimer::GrantEndingSoon { .. } = timer {
            return Ok(self.warn_holder(&request).await);
        }
        if request.state != RequestState::Pending {
            return Ok(TimerOutcome::Nothing(request.state));
        }
        let now = self.clock.now();
        if request.is_past_pending_deadline(now) {
            return self.time_out(&request).await;
        }
        match timer {
            RequestTimer::ApprovalReminder { .. } => self.remind(&request).await,
            // Delivered early: an error, so the scheduler delivers it again.
            RequestTimer::GrantEndingSoon { .. } => Ok(TimerOutcome::Nothing(request.state)),
            RequestTimer::RequestExpiry { .. } => Err(PimError::aws(
                "scheduler",
                true,
                format!("the deadline of {} has not come yet", request.id),
            )),
        }
    }

    async fn remind(&self, request: &AccessRequest) -> Result<TimerOutcome> {
        let now = self.clock.now();
        let deadline = RequestTimer::RequestExpiry { request_id: request.id.clone() };
        let waiting: Vec<String> = request
            .approvers
            .iter()
            .filter(|a| !request.decisions.iter().any(|d| &d.approver == *a))
            .cloned()
            .collect();
        let reminded = match request.remind(now) {
            Ok(reminded) => reminded,
            Err(PimError::Conflict { code: "already_reminded", .. }) => {
                self.set_deadline(request, &deadline).await?;
                return Ok(TimerOutcome::Nothing(request.state));
            }
            Err(err) => return Err(err),
        };
        let record = AuditRecord::new(
            AuditAction::RequestReminded,
            Outcome::Success,
            Actor::system("schedule"),
            Source::Schedule,
            now,
        )
        .about(&reminded)
        .with("approvers", waiting.clone());
        match self.store.commit_transition(&reminded, &record, None).await {
            Ok(()) => {}
            // A decision or another delivery got there first; the next delivery sees it.
            Err(PimError::Conflict { .. }) => return Ok(TimerOutcome::Nothing(request.state)),
            Err(err) => return Err(err),
        }

        for approver in waiting.iter().filter_map(|id| self.catalog.person(id)) {
            let sent = async {
                let link = self.sign_link(&reminded, &approver.id).await?;
                self.mailer.send(&self.reminder_mail(&reminded, approver, &link)).await
            };
            if let Err(err) = sent.await {
                tracing::error!(request_id = %reminded.id, approver = %approver.id, error = ?err,
                    "reminder not sent");
            }
        }
        self.set_deadline(&reminded, &deadline).await?;
        tracing::info!(request_id = %reminded.id, reminded = waiting.len(), "approvers reminded");
        Ok(TimerOutcome::Reminded { approvers: waiting })
    }

    /// Mails the holder of a grant still active and ending within the warning time (an
    /// extended grant ends later: the extension mail said when).
    async fn warn_holder(&self, request: &AccessRequest) -> TimerOutcome {
        let now = self.clock.now();
        let ending_soon = request.grant.as_ref().is_some_and(|grant| {
            let left = (grant.ends_at - now).num_seconds();
            (0..=WARN_BEFORE_SECS + 60).contains(&left)
        });
        if request.state != RequestState::Active || !ending_soon {
            return TimerOutcome::Nothing(request.state);
        }
        self.tell_ending_soon(request).await;
        TimerOutcome::Warned
    }

    async fn set_deadline(&self, request: &AccessRequest, deadline: &RequestTimer) -> Result<()> {
        // A second after the deadline, so the delivery never finds the request still open.
        let at = request.pending_until + Duration::seconds(1);
        self.scheduler.schedule_timer(&deadline.schedule_name(), at, deadline).await
    }

    async fn time_out(&self, request: &AccessRequest) -> Result<TimerOutcome> {
        let now = self.clock.now();
        let expired = request.time_out(now)?;
        let record = AuditRecord::new(
            AuditAction::RequestExpired,
            Outcome::Success,
            Actor::system("schedule"),
            Source::Schedule,
            now,
        )
        .about(&expired);
        match self.store.commit_transition(&expired, &record, None).await {
            Ok(()) => {}
            Err(PimError::Conflict { .. }) => return Ok(TimerOutcome::Nothing(request.state)),
            Err(err) => return Err(err),
        }
        tracing::info!(request_id = %expired.id, "request expired undecided");
        self.tell_requester(&expired).await;
        Ok(TimerOutcome::Expired)
    }
}
