//! Putting a grant in place and ending it.
//!
//! Activation creates the expiry schedule first and writes the policy second, so access
//! never exists without its scheduled end: if the schedule cannot be created nothing is
//! written and the request fails with the reason. The granting function holds no right to
//! delete policies (only revocation does), so every later failure is cleaned up by asking
//! revocation to run at once: a one-time cleanup schedule a minute out. Revocation removes
//! a grant's policy whenever it is delivered, whatever state the request is in, so a
//! policy written after its request moved on (an expiry that raced ahead) never survives.
//!
//! Removal retries throttling and transient faults with the capped, jittered backoff of
//! [`Pim::backoff`]. Past that budget it records `grant.revocation_failed` on the request,
//! counts the failure in a metric and returns a retryable error, so the scheduler delivers
//! again (its retry policy, then its dead-letter queue) and the next sweep removes the
//! policy whatever happens to the delivery.
//!
//! A role's managed policies to render are read from IAM (once per process) and checked
//! again here, since the document may have changed since the request; a refusal fails the
//! grant before anything is written. Managed policies attached as they are come last: each
//! is held and attached through [`super::attachments`] after the inline policy is written,
//! and released at expiry after the inline policy is removed, whatever the request's state.

use super::Pim;
use crate::audit::{Actor, AuditAction, AuditRecord, Outcome, Source};
use crate::catalog::role_name_of;
use crate::error::{PimError, Result};
use crate::metrics::{Unit, names};
use crate::model::{AccessRequest, ExpiryEvent, Grant, RequestState};
use crate::ports::Removal;
use crate::render::{iam_time, render_grant_policy};

/// How long after a failed activation revocation runs to clean up.
const CLEANUP_DELAY_SECS: i64 = 60;

/// How many times expiry re-reads a request that changed under it before giving up.
const EXPIRY_ATTEMPTS: usize = 3;

/// What an expiry delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpiryOutcome {
    /// The policy was removed (or already gone) and the grant is now expired.
    Expired {
        /// Whether the policy was still on the role.
        removal: Removal,
    },
    /// The grant had already ended; nothing was done.
    AlreadyEnded(RequestState),
    /// No such grant; nothing was done.
    UnknownGrant,
}

impl Pim {
    /// Writes the grant's policy and schedule for an approved request and marks it active.
    pub async fn activate_grant(&self, approved: AccessRequest) -> Result<AccessRequest> {
        let grant = approved.grant.clone().ok_or_else(|| PimError::Corrupt {
            key: approved.id.clone(),
            reason: "approved request without a grant".into(),
        })?;
        let role_name = role_name_of(&approved.target_role_arn).to_string();
        let Some(role) = self.catalog.role(&approved.role) else {
            return self
                .fail_grant(approved, "the role left the catalog before access was granted", None)
                .await;
        };
        let managed = match self
            .managed
            .checked(&role.managed_policies, &self.catalog.protected_resources)
            .await
        {
            Ok(managed) => managed,
            Err(err) => {
                let reason = "the managed policies to render could not be read or were refused";
                return self.fail_grant(approved, reason, Some(err)).await;
            }
        };
        let document = match role.renders_inline() {
            false => None,
            true => match render_grant_policy(role, grant.window(), &managed) {
                Ok(document) => Some(document),
                Err(err) => {
                    return self
                        .fail_grant(approved, "the grant policy could not be rendered", Some(err))
                        .await;
                }
            },
        };

        let event = ExpiryEvent::for_grant(&approved.id, &grant);
        if let Err(err) =
            self.scheduler.schedule_expiry(&grant.schedule_name(), grant.ends_at, &event).await
        {
            return self
                .fail_grant(approved, "the expiry schedule could not be created", Some(err))
                .await;
        }
        if let Some(document) = &document
            && let Err(err) =
                self.binder.put_grant_policy(&role_name, &grant.policy_name(), document).await
        {
            // The write may have landed even though its reply was lost: clean up either way.
            self.request_cleanup(&approved.id, &grant).await;
            return self
                .fail_grant(approved, "the grant policy could not be written", Some(err))
                .await;
        }
        for policy_arn in &role.attached_policies {
            if let Err(err) = self.hold_attachment(&role_name, policy_arn, &grant.id).await {
                // Revocation releases whatever this grant already holds.
                self.request_cleanup(&approved.id, &grant).await;
                let reason = format!("the managed policy {policy_arn} could not be attached");
                return self.fail_grant(approved, &reason, Some(err)).await;
            }
        }

        let now = self.clock.now();
        let mut active = approved.activate(now)?;
        if let Some(held) = active.grant.as_mut() {
            held.inline_policy = document.is_some();
            held.attached_policies = role.attached_policies.clone();
        }
        let record = AuditRecord::new(
            AuditAction::GrantActivated,
            Outcome::Success,
            Actor::system("grant"),
            Source::Link,
            now,
        )
        .about(&active)
        .with("policy_name", grant.policy_name())
        .with("role_arn", active.target_role_arn.clone())
        .with("starts_at", iam_time(grant.starts_at))
        .with("ends_at", iam_time(grant.ends_at))
        .with("schedule_name", grant.schedule_name())
        .with("inline_policy", document.is_some())
        .with("managed_policies", managed_versions(&managed))
        .with("attached_policies", role.attached_policies.clone());
        if let Err(err) = self.store.commit_transition(&active, &record, None).await {
            // A lost reply or a retried write that found its own first attempt looks like a
            // failure or a conflict: only the stored request tells whether ours landed.
            if !self.stored_as(&active).await {
                if matches!(err, PimError::Conflict { .. }) {
                    // The request moved on (an expiry raced ahead): take back what was written.
                    self.request_cleanup(&active.id, &grant).await;
                }
                return Err(err);
            }
        }
        tracing::info!(request_id = %active.id, grant_id = %grant.id, role = %role_name,
            expires_at = %iam_time(grant.ends_at), "grant active");
        self.tell_requester(&active).await;
        self.start_grant_warning(&active).await;
        Ok(active)
    }

    /// Whether the store holds exactly `expected` (same version and state).
    async fn stored_as(&self, expected: &AccessRequest) -> bool {
        match self.store.load_request(&expected.id).await {
            Ok(Some(stored)) => {
                stored.version == expected.version && stored.state == expected.state
            }
            _ => false,
        }
    }

    /// Ends a grant at its scheduled time: removes its policy and marks it expired.
    /// Delivering the same event again changes nothing more.
    pub async fn expire_grant(&self, event: &ExpiryEvent) -> Result<ExpiryOutcome> {
        self.end_grant(event, Source::Schedule).await
    }

    /// Ends a grant on behalf of `source` (its schedule, or the sweep for an overdue grant).
    pub(crate) async fn end_grant(
        &self,
        event: &ExpiryEvent,
        source: Source,
    ) -> Result<ExpiryOutcome> {
        let actor = if source == Source::Sweep { "sweep" } else { "schedule" };
        if event.kind != "grant_expiry" {
            return Err(PimError::invalid(
                "unknown_event",
                format!("unknown event kind '{}'", event.kind),
            ));
        }
        for _ in 0..EXPIRY_ATTEMPTS {
            let Some(request) = self.store.load_request(&event.request_id).await? else {
                tracing::warn!(request_id = %event.request_id, "expiry for an unknown request");
                return Ok(ExpiryOutcome::UnknownGrant);
            };
            let Some(grant) = request.grant.clone().filter(|grant| grant.id == event.grant_id)
            else {
                tracing::warn!(request_id = %event.request_id, grant_id = %event.grant_id, "expiry for an unknown grant");
                return Ok(ExpiryOutcome::UnknownGrant);
            };
            // Removal comes first and whatever the state: a policy written after its request
            // moved on must not survive a delivery, and removing nothing is cheap.
            let role_name = role_name_of(&request.target_role_arn);
            let removal = match self.remove_grant_policy(role_name, &grant.policy_name()).await {
                Ok(removal) => removal,
                Err(err) => {
                    self.record_revocation_failure(&request, &err, source).await;
                    return Err(err);
                }
            };
            let released = match self.release_grant_attachments(&request, &grant).await {
                Ok(released) => released,
                Err(err) => {
                    self.record_revocation_failure(&request, &err, source).await;
                    return Err(err);
                }
            };
            if !matches!(request.state, RequestState::Active | RequestState::Approved) {
                if removal == Removal::Deleted {
                    tracing::warn!(request_id = %request.id, grant_id = %grant.id, state = request.state.as_str(),
                        "removed a grant policy left behind by an ended grant");
                }
                return Ok(ExpiryOutcome::AlreadyEnded(request.state));
            }

            let now = self.clock.now();
            let expired = request.expire(now)?;
            let lag = (now - grant.ends_at).num_seconds();
            let record = AuditRecord::new(
                AuditAction::GrantExpired,
                Outcome::Success,
                Actor::system(actor),
                source,
                now,
            )
            .about(&expired)
            .with("policy_name", grant.policy_name())
            .with("policy_was_present", removal == Removal::Deleted)
            .with("ends_at", iam_time(grant.ends_at))
            .with("cleanup_lag_secs", lag);
            let record = match released.is_empty() {
                true => record,
                false => record.with("attachments", serde_json::Value::Object(released)),
            };
            match self.store.commit_transition(&expired, &record, None).await {
                Ok(()) => {
                    self.observe(names::REVOCATION_LAG, lag.max(0) as f64, Unit::Seconds);
                    tracing::info!(request_id = %request.id, grant_id = %grant.id, role = role_name,
                        lag_secs = lag, "grant expired");
                    return Ok(ExpiryOutcome::Expired { removal });
                }
                Err(PimError::Conflict { .. }) => continue,
                Err(err) => return Err(err),
            }
        }
        Err(PimError::conflict("stale_request", "the request kept changing during expiry; retry"))
    }

    /// Gives up the grant's holds on attached managed policies: those it recorded at
    /// activation, and those its role names now (an activation that failed half-way recorded
    /// none). Returns, per policy, what became of it.
    pub(crate) async fn release_grant_attachments(
        &self,
        request: &AccessRequest,
        grant: &Grant,
    ) -> Result<serde_json::Map<String, serde_json::Value>> {
        let mut arns = grant.attached_policies.clone();
        if let Some(role) = self.catalog.role(&request.role) {
            arns.extend(role.attached_policies.iter().cloned());
        }
        arns.sort();
        arns.dedup();
        let role_name = role_name_of(&request.target_role_arn);
        let mut released = serde_json::Map::new();
        for arn in arns {
            let leaving = [grant.id.clone()];
            let outcome =
                self.release_attachment(role_name, &arn, &leaving, &grant.id, None).await?;
            if outcome != super::attachments::Released::NotHeld
                || grant.attached_policies.contains(&arn)
            {
                released.insert(arn, outcome.as_str().into());
            }
        }
        Ok(released)
    }

    /// Removes a grant policy, retrying what a retry can fix within [`Pim::backoff`].
    pub(crate) async fn remove_grant_policy(
        &self,
        role_name: &str,
        policy_name: &str,
    ) -> Result<crate::ports::Removal> {
        let retried =
            self.backoff.run(|| self.binder.delete_grant_policy(role_name, policy_name)).await;
        if retried.retries > 0 {
            self.observe(names::REVOCATION_RETRIES, f64::from(retried.retries), Unit::Count);
        }
        retried.result
    }

    /// Records that a grant's policy could not be removed, on the request itself, and
    /// counts it. The grant keeps its state: it still needs ending.
    pub(crate) async fn record_revocation_failure(
        &self,
        request: &AccessRequest,
        err: &PimError,
        source: Source,
    ) {
        self.observe(names::REVOCATION_FAILURES, 1.0, Unit::Count);
        let grant_id = request.grant.as_ref().map(|grant| grant.id.clone()).unwrap_or_default();
        tracing::error!(request_id = %request.id, grant_id = %grant_id, error = ?err,
            "grant policy could not be removed within the retry budget");
        let now = self.clock.now();
        let noted = request.note(now);
        let record = AuditRecord::new(
            AuditAction::GrantRevocationFailed,
            Outcome::Failure,
            Actor::system(match source {
                Source::Sweep => "sweep",
                Source::Api => "revocation",
                _ => "schedule",
            }),
            source,
            now,
        )
        .about(&noted)
        .because(err.code(), "the grant policy could not be removed within the retry budget")
        .with("policy_name", format!("pim-{grant_id}"))
        .with("attempts", self.backoff.attempts);
        if let Err(record_err) = self.store.commit_transition(&noted, &record, None).await {
            tracing::error!(request_id = %request.id, error = ?record_err,
                "the failed revocation could not be recorded");
        }
    }

    async fn fail_grant(
        &self,
        approved: AccessRequest,
        reason: &str,
        cause: Option<PimError>,
    ) -> Result<AccessRequest> {
        let now = self.clock.now();
        let failed = approved.fail(reason, now)?;
        let code = cause.as_ref().map_or("grant_failed", PimError::code);
        let record = AuditRecord::new(
            AuditAction::GrantFailed,
            Outcome::Failure,
            Actor::system("grant"),
            Source::Link,
            now,
        )
        .about(&failed)
        .because(code, reason);
        tracing::error!(request_id = %failed.id, error = ?cause, reason, "grant failed and was rolled back");
        self.store.commit_transition(&failed, &record, None).await?;
        self.tell_requester(&failed).await;
        Err(PimError::GrantFailed { reason: reason.into(), source: cause.map(Box::new) })
    }

    /// Asks revocation to remove a grant's policy (and release its attachments) within about a minute, through a one-time
    /// cleanup schedule. If even that fails, the policy's own time condition still ends the
    /// access, and the failure is logged for a human.
    pub(crate) async fn request_cleanup(&self, request_id: &str, grant: &Grant) {
        let event = ExpiryEvent::for_grant(request_id, grant);
        let at = self.clock.now() + chrono::Duration::seconds(CLEANUP_DELAY_SECS);
        let name = format!("pim-cleanup-{}", grant.id);
        if let Err(err) = self.scheduler.schedule_expiry(&name, at, &event).await {
            tracing::error!(grant_id = %grant.id, error = ?err, "cleanup of the grant policy could not be scheduled");
        }
    }
}

/// `arn@version` of each rendered managed policy, for the activation's record.
fn managed_versions(managed: &[std::sync::Arc<crate::managed::ManagedPolicy>]) -> Vec<String> {
    managed.iter().map(|policy| format!("{}@{}", policy.arn, policy.version)).collect()
}
