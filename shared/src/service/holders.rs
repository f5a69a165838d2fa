//! A grant after it is active: its holder relinquishes it or asks for more time, and an
//! administrator named in the policy document revokes anyone's with a reason.
//!
//! Revocation runs in the revocation function, the only one that may delete grant policies,
//! so the policy is gone when the call returns. The transition to `revoked` commits first;
//! the policy is removed after, with the same retries as at expiry, and the expiry schedule
//! is cancelled once the policy is gone. If the removal fails past its budget the grant is
//! still `revoked`, its policy is an orphan to the sweep, and the expiry schedule (left in
//! place) removes it at the latest when the window ends, which is also when IAM stops
//! honouring it.
//!
//! Extension runs in the request function. The new end must stay within the role's maximum
//! counted from the grant's start, and the policy decides as for a new request of that
//! total length: extension in place happens only where an approval rule approves it by
//! itself; where approvers are needed the holder asks for a new grant, which overlaps the
//! current one without ending it. The transition commits first, then the schedule moves and
//! the policy is rewritten with the new end; a failure after the commit leaves access
//! ending at the old time (IAM's condition, and the old schedule), never later than recorded.

use super::{Pim, RefusalSubject};
use crate::audit::{Actor, AuditAction, AuditRecord, Outcome, Source};
use crate::catalog::{Person, role_name_of};
use crate::duration::{DurationInput, format_iso};
use crate::error::{PimError, Result};
use crate::identity::Principal;
use crate::model::{AccessRequest, ExpiryEvent, RequestState, request_id_of_grant};
use crate::render::{iam_time, render_grant_policy};
use chrono::Duration;
use serde::Deserialize;

/// The body of `POST /grants/{id}/revoke`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// Why; required when an administrator ends someone else's grant.
    #[serde(default)]
    pub reason: Option<String>,
}

/// The body of `POST /grants/{id}/extend`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Extension {
    /// How much longer (`30m`, `PT30M`, seconds).
    pub by: DurationInput,
    /// A one-time code, where the role requires MFA of requesters.
    #[serde(default)]
    pub mfa_code: Option<crate::mfa::OneTimeCode>,
    /// Whether the authorizer asserted a fresh multi-factor sign-in; never from the body.
    #[serde(skip)]
    pub oidc_mfa: bool,
}

/// The shortest and longest reason accepted, in characters.
const REASON_CHARS: std::ops::RangeInclusive<usize> = 10..=1000;

impl Pim {
    /// Ends the grant `grant_id` now: the caller is its holder, or an administrator (who
    /// must give a reason for someone else's grant). The policy is removed before this
    /// returns, and the expiry schedule cancelled.
    pub async fn revoke_grant(
        &self,
        caller: &Principal,
        grant_id: &str,
        input: Revocation,
    ) -> Result<AccessRequest> {
        let person = self.known_person(caller)?.clone();
        let actor = Actor::person(&person.id, Some(caller.as_str()));
        let request = self.grant_visible_to(&person, grant_id).await?;
        let subject = RefusalSubject { request_id: Some(&request.id), role: Some(&request.role) };
        let holder = request.requester == person.id;
        let reason = match (holder, checked_reason(input.reason.as_deref())) {
            (_, Err(refusal)) => return Err(refusal),
            (true, Ok(reason)) => reason.unwrap_or_else(|| "relinquished by the holder".into()),
            (false, Ok(Some(reason))) => reason,
            (false, Ok(None)) => {
                return Err(PimError::invalid(
                    "invalid_reason",
                    "an administrator ending someone else's grant must give a reason",
                ));
            }
        };

        let now = self.clock.now();
        let next = match request.revoke(&reason, now) {
            Ok(next) => next,
            Err(refusal) => return Err(self.refuse_change(actor, subject, refusal).await),
        };
        let grant = next.grant.clone().expect("a revocable request has a grant");
        let record =
            AuditRecord::new(AuditAction::GrantRevoked, Outcome::Success, actor, Source::Api, now)
                .about(&next)
                .because("revoked", &reason)
                .with("revoked_by", if holder { "holder" } else { "administrator" })
                .with("policy_name", grant.policy_name())
                .with("ends_at", iam_time(grant.ends_at));
        self.store.commit_transition(&next, &record, None).await?;
        tracing::info!(request_id = %next.id, grant_id = %grant.id, by = %person.id, holder,
            "grant revoked");

        let role_name = role_name_of(&next.target_role_arn);
        let removed = async {
            self.remove_grant_policy(role_name, &grant.policy_name()).await?;
            self.release_grant_attachments(&next, &grant).await
        };
        match removed.await {
            Ok(_) => {
                if let Err(err) = self.scheduler.cancel_expiry(&grant.schedule_name()).await {
                    // It fires once at the end and finds nothing to do.
                    tracing::warn!(grant_id = %grant.id, error = ?err, "expiry schedule not cancelled");
                }
            }
            Err(err) => {
                self.record_revocation_failure(&next, &err, Source::Api).await;
                return Err(err);
            }
        }
        if !holder {
            self.tell_requester(&next).await;
        }
        Ok(next)
    }

    /// Gives the caller's own active grant `input.by` more time, where the policy approves
    /// the longer grant by itself.
    pub async fn extend_grant(
        &self,
        caller: &Principal,
        grant_id: &str,
        input: Extension,
    ) -> Result<AccessRequest> {
        let person = self.known_person(caller)?.clone();
        let actor = Actor::person(&person.id, Some(caller.as_str()));
        let request = self.grant_visible_to(&person, grant_id).await?;
        let subject = RefusalSubject { request_id: Some(&request.id), role: Some(&request.role) };
        let by_secs = input.by.to_secs()?;
        if by_secs == 0 {
            return Err(PimError::invalid("invalid_duration", "an extension must add some time"));
        }
        let now = self.clock.now();
        let checked = self.extension_allowed(&request, &person, caller, by_secs, now);
        let (role, plan_rule, ends_at) = match checked {
            Ok(allowed) => allowed,
            Err(refusal) if refusal.is_refusal() => {
                return Err(self.refuse_change(actor, subject, refusal).await);
            }
            Err(fault) => return Err(fault),
        };
        let code = input.mfa_code.as_ref().map(crate::mfa::OneTimeCode::as_str);
        let mfa = match self.requester_factor(role, &person.id, code, input.oidc_mfa).await {
            Ok(mfa) => mfa,
            Err(err) if err.is_refusal() => {
                return Err(self.refuse_change(actor, subject, err).await);
            }
            Err(fault) => return Err(fault),
        };

        let next = match request.extend(ends_at, now) {
            Ok(next) => next,
            Err(refusal) => return Err(self.refuse_change(actor, subject, refusal).await),
        };
        let grant = next.grant.clone().expect("an extended request has a grant");
        let document = match role.renders_inline() {
            true => {
                let managed = self
                    .managed
                    .checked(&role.managed_policies, &self.catalog.protected_resources)
                    .await?;
                Some(render_grant_policy(role, grant.window(), &managed)?)
            }
            false => None,
        };
        let previous_end = request.grant.as_ref().map(|g| g.ends_at).unwrap_or(grant.ends_at);
        let mut record =
            AuditRecord::new(AuditAction::GrantExtended, Outcome::Success, actor, Source::Api, now)
                .about(&next)
                .with("previous_ends_at", iam_time(previous_end))
                .with("ends_at", iam_time(grant.ends_at))
                .with("duration", format_iso(next.duration_secs))
                .with("approval_rule", plan_rule);
        if let Some(mfa) = mfa {
            record = record.with("mfa", mfa);
        }
        self.store.commit_transition(&next, &record, None).await?;

        // The schedule first: if the policy then fails, IAM still ends access at the old
        // time and the moved schedule removes the inert policy later.
        let event = ExpiryEvent::for_grant(&next.id, &grant);
        let role_name = role_name_of(&next.target_role_arn);
        let applied = async {
            self.scheduler.reschedule_expiry(&grant.schedule_name(), grant.ends_at, &event).await?;
            match &document {
                Some(document) => {
                    self.binder.put_grant_policy(role_name, &grant.policy_name(), document).await
                }
                None => Ok(()),
            }
        };
        if let Err(err) = applied.await {
            tracing::error!(request_id = %next.id, grant_id = %grant.id, error = ?err,
                "extension recorded but not in place; access ends at the previous time");
            return Err(PimError::GrantFailed {
                reason: format!(
                    "the extension is recorded but could not be put in place; access still \
                     ends at {}",
                    iam_time(previous_end)
                ),
                source: Some(Box::new(err)),
            });
        }
        tracing::info!(request_id = %next.id, grant_id = %grant.id, ends_at = %iam_time(grant.ends_at),
            "grant extended");
        self.tell_extended(&next).await;
        Ok(next)
    }

    /// The role, the rule that approves the longer grant by itself, and the new end; or why
    /// the extension is refused.
    fn extension_allowed(
        &self,
        request: &AccessRequest,
        person: &Person,
        caller: &Principal,
        by_secs: u64,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(&crate::catalog::CatalogRole, String, chrono::DateTime<chrono::Utc>)> {
        if request.requester != person.id {
            return Err(PimError::refused(
                "not_the_holder",
                "only the holder of a grant may ask for more time",
            ));
        }
        if request.state != RequestState::Active {
            return Err(PimError::conflict(
                "invalid_state",
                format!(
                    "request {} is {} and cannot be extended",
                    request.id,
                    request.state.as_str()
                ),
            ));
        }
        let grant = request
            .grant
            .as_ref()
            .ok_or_else(|| crate::service::requests::not_found(&request.id))?;
        let role = self.catalog.role(&request.role).ok_or_else(|| {
            PimError::refused("role_not_in_catalog", "the role left the policy document")
        })?;
        role.eligibility(person, caller, now)?;
        let ends_at = grant
            .ends_at
            .checked_add_signed(Duration::seconds(i64::try_from(by_secs).unwrap_or(i64::MAX)))
            .ok_or_else(|| PimError::invalid("invalid_duration", "the end would overflow"))?;
        let total_secs = (ends_at - grant.starts_at).num_seconds().max(0) as u64;
        let max_secs = match (&role.break_glass, request.break_glass) {
            (Some(glass), true) => glass.max_secs,
            _ => role.max_secs,
        };
        if total_secs > max_secs {
            return Err(PimError::invalid(
                "duration_over_maximum",
                format!(
                    "{} allows at most {} from the grant's start; the extension would make it {}",
                    role.name,
                    format_iso(max_secs),
                    format_iso(total_secs)
                ),
            ));
        }
        let plan = role.approval_plan(person, caller, total_secs, now)?;
        if !plan.auto_approve || request.break_glass {
            return Err(PimError::refused(
                "extension_needs_approval",
                format!(
                    "rule {} needs approvers for {} of {}; ask for a new grant, which overlaps \
                     this one without ending it",
                    plan.rule,
                    format_iso(total_secs),
                    role.name
                ),
            ));
        }
        Ok((role, plan.rule, ends_at))
    }

    /// The request behind `grant_id`, if `person` holds the grant or is an administrator;
    /// anyone else is told it does not exist.
    async fn grant_visible_to(&self, person: &Person, grant_id: &str) -> Result<AccessRequest> {
        let missing = || {
            let shown: String = grant_id.chars().take(64).flat_map(char::escape_default).collect();
            PimError::not_found("grant_not_found", format!("no grant {shown} is visible to you"))
        };
        let request_id = request_id_of_grant(grant_id).ok_or_else(missing)?;
        let request = self.store.load_request(&request_id).await?.ok_or_else(missing)?;
        let same_grant = request.grant.as_ref().is_some_and(|g| g.id == grant_id);
        let visible = request.requester == person.id || self.catalog.is_administrator(&person.id);
        if !same_grant || !visible {
            return Err(missing());
        }
        Ok(request)
    }

    async fn refuse_change(
        &self,
        actor: Actor,
        subject: RefusalSubject<'_>,
        refusal: PimError,
    ) -> PimError {
        self.refuse(AuditAction::GrantChangeRefused, actor, Source::Api, subject, refusal).await
    }
}

/// A reason as given: trimmed, printable, 10 to 1000 characters; `None` when absent.
fn checked_reason(reason: Option<&str>) -> Result<Option<String>> {
    let Some(reason) = reason.map(str::trim).filter(|r| !r.is_empty()) else { return Ok(None) };
    if reason.chars().any(char::is_control) || !REASON_CHARS.contains(&reason.chars().count()) {
        return Err(PimError::invalid(
            "invalid_reason",
            "a reason is 10 to 1000 printable characters",
        ));
    }
    Ok(Some(reason.to_string()))
}
