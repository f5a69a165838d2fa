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
//! total length. Where a rule approves it by itself the grant is extended at once. Where
//! approvers are needed, the extension is a request of its own (with a reason, and the
//! requester's second factor where the role asks for one) that names the grant and the end
//! it asks for; its approvers decide it through the same links, quorum and second factor as
//! any request, and the approval that completes its quorum moves the grant's end in the same
//! transaction (see [`super::approvals`]). It can be decided only while the grant lasts: its
//! deadline is the grant's end at the latest. Either way the transition commits first, then
//! the schedule moves and the policy is rewritten with the new end; a failure after the
//! commit leaves access ending at the old time (IAM's condition, and the old schedule),
//! never later than recorded. A break-glass grant is not extended: its holder asks again.

use super::requests::checked_justification;
use super::{Created, Pim, RefusalSubject};
use crate::audit::{Actor, AuditAction, AuditRecord, Outcome, Source};
use crate::catalog::{ApprovalPlan, CatalogRole, Person, role_name_of};
use crate::duration::{DurationInput, format_iso};
use crate::error::{PimError, Result};
use crate::identity::Principal;
use crate::model::{
    AccessRequest, ExpiryEvent, ExtensionOf, RequestState, new_id, request_id_of_grant,
};
use crate::render::{iam_time, render_grant_policy};
use chrono::{DateTime, Duration, Utc};
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
    /// Why more time is needed; required when the longer grant needs approvers, who read
    /// it as the justification of the extension request.
    #[serde(default)]
    pub reason: Option<String>,
    /// A one-time code, where the role requires MFA of requesters.
    #[serde(default)]
    pub mfa_code: Option<crate::mfa::OneTimeCode>,
    /// Whether the authorizer asserted a fresh multi-factor sign-in; never from the body.
    #[serde(skip)]
    pub oidc_mfa: bool,
}

/// What became of an extension.
#[derive(Debug, Clone)]
pub enum Extended {
    /// A rule approved the longer grant by itself: the grant (its request) ends later now.
    Now(AccessRequest),
    /// Approvers must agree: the extension request, stored and sent to them.
    Asked(Created),
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

    /// Gives the caller's own active grant `input.by` more time: at once where a rule of
    /// the policy approves the longer grant by itself, or through an extension request to
    /// the approvers the policy names.
    pub async fn extend_grant(
        &self,
        caller: &Principal,
        grant_id: &str,
        input: Extension,
    ) -> Result<Extended> {
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
        let (role, plan, ends_at) = match checked {
            Ok(allowed) => allowed,
            Err(refusal) if refusal.is_refusal() => {
                return Err(self.refuse_change(actor, subject, refusal).await);
            }
            Err(fault) => return Err(fault),
        };
        let reason = match plan.auto_approve {
            true => None,
            false => Some(extension_reason(role, input.reason.as_deref())?),
        };
        let code = input.mfa_code.as_ref().map(crate::mfa::OneTimeCode::as_str);
        let mfa = match self.requester_factor(role, &person.id, code, input.oidc_mfa).await {
            Ok(mfa) => mfa,
            Err(err) if err.is_refusal() => {
                return Err(self.refuse_change(actor, subject, err).await);
            }
            Err(fault) => return Err(fault),
        };
        if let Some(reason) = reason {
            let asked = ExtensionAsk { original: &request, caller, person: &person, role, plan };
            return self.ask_extension(asked, ends_at, reason, mfa).await.map(Extended::Asked);
        }

        let next = match request.extend(ends_at, now) {
            Ok(next) => next,
            Err(refusal) => return Err(self.refuse_change(actor, subject, refusal).await),
        };
        let previous_end = request.grant.as_ref().map(|g| g.ends_at).unwrap_or(ends_at);
        let mut record =
            extension_record(&next, actor, previous_end, now).with("approval_rule", plan.rule);
        if let Some(mfa) = mfa {
            record = record.with("mfa", mfa);
        }
        self.store.commit_transition(&next, &record, None).await?;
        self.put_extension_in_place(&next, role, previous_end).await?;
        Ok(Extended::Now(next))
    }

    /// Moves an extended grant's schedule and rewrites its policy with the end its
    /// committed transition recorded, and tells the holder.
    pub(crate) async fn put_extension_in_place(
        &self,
        next: &AccessRequest,
        role: &CatalogRole,
        previous_end: DateTime<Utc>,
    ) -> Result<()> {
        let grant = next.grant.clone().expect("an extended request has a grant");
        // The schedule first: if the policy then fails, IAM still ends access at the old
        // time and the moved schedule removes the inert policy later.
        let event = ExpiryEvent::for_grant(&next.id, &grant);
        let role_name = role_name_of(&next.target_role_arn);
        let applied = async {
            self.scheduler.reschedule_expiry(&grant.schedule_name(), grant.ends_at, &event).await?;
            if !role.renders_inline() {
                return Ok(());
            }
            let managed = self
                .managed
                .checked(&role.managed_policies, &self.catalog.protected_resources)
                .await?;
            let document = render_grant_policy(role, grant.window(), &managed)?;
            self.binder.put_grant_policy(role_name, &grant.policy_name(), &document).await
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
        self.tell_extended(next).await;
        Ok(())
    }

    /// Stores an extension request for approvers to decide and sends them their links.
    async fn ask_extension(
        &self,
        asked: ExtensionAsk<'_>,
        extend_to: DateTime<Utc>,
        reason: String,
        mfa: Option<&'static str>,
    ) -> Result<Created> {
        let ExtensionAsk { original, caller, person, role, plan } = asked;
        let now = self.clock.now();
        let grant = original.grant.as_ref().expect("an active request has a grant");
        let lifetime = now + Duration::seconds(role.constraints.pending_lifetime_secs as i64);
        let approvers: Vec<&Person> =
            plan.approvers.iter().filter_map(|id| self.catalog.person(id)).collect();
        let added_secs = (extend_to - grant.ends_at).num_seconds().max(0) as u64;
        let request = AccessRequest {
            id: new_id("req"),
            requester: person.id.clone(),
            requester_principal: caller.to_string(),
            role: role.name.clone(),
            target_role_arn: original.target_role_arn.clone(),
            duration_secs: added_secs,
            justification: reason,
            created_at: now,
            // Deciding after the grant ended would extend nothing.
            pending_until: lifetime.min(grant.ends_at),
            approvers: approvers.iter().map(|p| p.id.clone()).collect(),
            approval_rule: plan.rule.clone(),
            quorum: plan.quorum,
            approver_mfa: plan.approver_mfa,
            ticket: original.ticket.clone(),
            break_glass: false,
            state: RequestState::Pending,
            version: 1,
            updated_at: now,
            decisions: vec![],
            grant: None,
            reason: None,
            drift: None,
            review: None,
            reminded_at: None,
            extends: Some(ExtensionOf {
                grant_id: grant.id.clone(),
                request_id: original.id.clone(),
                ends_at: grant.ends_at,
                extend_to,
            }),
        };
        let links = self.signed_links(&request, &approvers).await?;
        let actor = Actor::person(&person.id, Some(caller.as_str()));
        let record = super::requests::created_record(&request, actor.clone(), added_secs, mfa)
            .with("extends", grant.id.clone())
            .with("ends_at", iam_time(grant.ends_at))
            .with("extend_to", iam_time(extend_to));
        let per_hour = self.catalog.requests_per_hour;
        match self.store.create_request(&request, &record, per_hour).await {
            Ok(()) => {}
            Err(flood @ PimError::TooMany { .. }) => {
                let subject =
                    RefusalSubject { request_id: Some(&original.id), role: Some(&original.role) };
                return Err(self.refuse_change(actor, subject, flood).await);
            }
            Err(err) => return Err(err),
        }
        tracing::info!(request_id = %request.id, grant_id = %grant.id, requester = %person.id,
            extend_to = %iam_time(extend_to), rule = %plan.rule, "extension requested");
        Ok(self.ask_approvers(request, links).await)
    }

    /// The role, the plan that approves the longer grant (by itself or through approvers),
    /// and the new end; or why the extension is refused.
    fn extension_allowed(
        &self,
        request: &AccessRequest,
        person: &Person,
        caller: &Principal,
        by_secs: u64,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(&CatalogRole, ApprovalPlan, DateTime<Utc>)> {
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
        if request.break_glass {
            return Err(PimError::refused(
                "extension_needs_approval",
                "a break-glass grant is not extended; ask for a new grant, which overlaps this \
                 one without ending it",
            ));
        }
        let plan = role.approval_plan(person, caller, total_secs, now)?;
        Ok((role, plan, ends_at))
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

/// What an extension request is made of, besides its end and reason.
struct ExtensionAsk<'a> {
    original: &'a AccessRequest,
    caller: &'a Principal,
    person: &'a Person,
    role: &'a CatalogRole,
    plan: ApprovalPlan,
}

/// The record of a grant's end moved to `next`'s, from `previous_end`.
pub(crate) fn extension_record(
    next: &AccessRequest,
    actor: Actor,
    previous_end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> AuditRecord {
    let ends_at = next.grant.as_ref().map_or(previous_end, |g| g.ends_at);
    AuditRecord::new(AuditAction::GrantExtended, Outcome::Success, actor, Source::Api, now)
        .about(next)
        .with("previous_ends_at", iam_time(previous_end))
        .with("ends_at", iam_time(ends_at))
        .with("duration", format_iso(next.duration_secs))
}

/// The reason of an extension that needs approvers: the role's rules for a justification.
fn extension_reason(role: &CatalogRole, reason: Option<&str>) -> Result<String> {
    let Some(reason) = reason.filter(|r| !r.trim().is_empty()) else {
        return Err(PimError::invalid(
            "reason_required",
            "this extension needs approvers: give a reason for them to read",
        ));
    };
    checked_justification(reason, role, false)
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
