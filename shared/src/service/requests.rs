//! The requester's side: create, show, list and cancel.

use super::{Pim, RefusalSubject};
use crate::audit::{Actor, AuditAction, AuditRecord, Outcome, Source};
use crate::catalog::{ApprovalPlan, CatalogRole, Person};
use crate::duration::{DurationInput, format_iso};
use crate::error::{PimError, Result};
use crate::identity::Principal;
use crate::model::{AccessRequest, RequestState, new_id};
use crate::render::{GrantWindow, render_grant_policy};
use crate::token::{self, LinkClaims, TOKEN_VERSION};
use chrono::Duration;
use serde::Deserialize;

/// The longest justification accepted, in characters.
pub const MAX_JUSTIFICATION_CHARS: usize = 1000;

/// The shortest justification accepted, in characters.
pub const MIN_JUSTIFICATION_CHARS: usize = 10;

/// The body of `POST /requests`. The target IAM role is not a field: it comes from the
/// caller's identity and the catalog.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRequest {
    /// The catalog role asked for.
    pub role: String,
    /// How long; the role's default when absent.
    #[serde(default)]
    pub duration: Option<DurationInput>,
    /// Why.
    pub justification: String,
    /// The change or incident ticket, when the role asks for one.
    #[serde(default)]
    pub ticket: Option<String>,
    /// Emergency self-activation, where the role allows it.
    #[serde(default)]
    pub break_glass: bool,
    /// A one-time code from the requester's enrolled app, where the role requires MFA.
    #[serde(default)]
    pub mfa_code: Option<crate::mfa::OneTimeCode>,
    /// Whether the authorizer asserted a fresh multi-factor sign-in (OIDC `amr` and
    /// `auth_time`); set from the authenticated context, never from the body.
    #[serde(skip)]
    pub oidc_mfa: bool,
}

/// A stored request and what became of its notifications.
#[derive(Debug, Clone)]
pub struct Created {
    /// The request as stored.
    pub request: AccessRequest,
    /// Approvers whose mail could not be sent (they can still be sent the link again).
    pub undelivered: Vec<String>,
}

impl Pim {
    /// Checks a request against the policy document and, if it passes, stores it and mails
    /// the approvers, or grants it at once when the policy approves it by itself
    /// (auto-approval, break-glass). A refusal writes only its audit record.
    pub async fn create_request(&self, caller: &Principal, input: NewRequest) -> Result<Created> {
        let now = self.clock.now();
        let (person, role) = self.eligible(caller, &input.role, now).await?;
        let actor = Actor::person(&person.id, Some(caller.as_str()));
        let subject = RefusalSubject { request_id: None, role: Some(&role.name) };
        let duration_secs = checked_duration(role, input.duration.as_ref(), input.break_glass)?;
        let justification = checked_justification(&input.justification, role, input.break_glass)?;
        let ticket = checked_ticket(role, input.ticket.as_deref())?;
        let plan = match self.plan(role, person, caller, duration_secs, input.break_glass) {
            Ok(plan) => plan,
            Err(refusal) => return Err(self.refuse_request(actor, subject, refusal).await),
        };
        if let Err(refusal) = self.check_active_limit(person, role).await {
            return Err(self.refuse_request(actor, subject, refusal).await);
        }

        // The grant must fit IAM's size limit and the role's managed-policy quota, and its
        // managed policies must pass the same refusals as inline statements, before anyone
        // is asked to approve it.
        let sample =
            GrantWindow { starts_at: now, ends_at: now + Duration::seconds(duration_secs as i64) };
        match self.check_grant_fits(role, person, sample).await {
            Ok(()) => {}
            Err(refusal) if refusal.is_refusal() => {
                return Err(self.refuse_request(actor, subject, refusal).await);
            }
            Err(fault) => return Err(fault),
        }

        // The second factor comes last, so a code is spent only on a request that passes.
        let code = input.mfa_code.as_ref().map(crate::mfa::OneTimeCode::as_str);
        let mfa = match self.requester_factor(role, &person.id, code, input.oidc_mfa).await {
            Ok(mfa) => mfa,
            Err(err) if err.is_refusal() => {
                return Err(self.refuse_request(actor, subject, err).await);
            }
            Err(fault) => return Err(fault),
        };

        let approvers: Vec<&Person> =
            plan.approvers.iter().filter_map(|id| self.catalog.person(id)).collect();
        let request = AccessRequest {
            id: new_id("req"),
            requester: person.id.clone(),
            requester_principal: caller.to_string(),
            role: role.name.clone(),
            target_role_arn: person.role_arn.clone(),
            duration_secs,
            justification,
            created_at: now,
            pending_until: now + Duration::seconds(role.constraints.pending_lifetime_secs as i64),
            approvers: approvers.iter().map(|p| p.id.clone()).collect(),
            approval_rule: plan.rule.clone(),
            quorum: plan.quorum,
            approver_mfa: plan.approver_mfa,
            ticket,
            break_glass: input.break_glass,
            state: RequestState::Pending,
            version: 1,
            updated_at: now,
            decisions: vec![],
            grant: None,
            reason: None,
            drift: None,
            review: None,
            reminded_at: None,
            extends: None,
        };

        // Links are signed before anything is stored, so a KMS failure leaves nothing behind.
        let links = self.signed_links(&request, &approvers).await?;

        let mut record = created_record(&request, actor.clone(), duration_secs, mfa);
        if request.break_glass {
            record = record.with("break_glass", true).with("severity", "high");
        }
        // The request counts towards its requester's hourly limit in the same transaction;
        // a flood is refused here, before any mail is sent.
        let per_hour = self.catalog.requests_per_hour;
        match self.store.create_request(&request, &record, per_hour).await {
            Ok(()) => {}
            Err(flood @ PimError::TooMany { .. }) => {
                return Err(self.refuse_request(actor, subject, flood).await);
            }
            Err(err) => return Err(err),
        }
        tracing::info!(request_id = %request.id, requester = %person.id, role = %role.name,
            duration_secs, rule = %plan.rule, "request created");

        if plan.auto_approve {
            let granted = self.approve_by_policy(request, role).await?;
            return Ok(Created { request: granted, undelivered: vec![] });
        }
        Ok(self.ask_approvers(request, links).await)
    }

    /// Each approver's signed link to `request`.
    pub(crate) async fn signed_links<'a>(
        &self,
        request: &AccessRequest,
        approvers: &[&'a Person],
    ) -> Result<Vec<(&'a Person, String)>> {
        let mut links = Vec::with_capacity(approvers.len());
        for approver in approvers {
            links.push((*approver, self.sign_link(request, &approver.id).await?));
        }
        Ok(links)
    }

    /// Starts a stored request's reminder and deadline, and mails each approver their link.
    pub(crate) async fn ask_approvers(
        &self,
        request: AccessRequest,
        links: Vec<(&Person, String)>,
    ) -> Created {
        self.start_timers(&request).await;
        let mut undelivered = Vec::new();
        for (approver, link) in links {
            let mail = self.approval_mail(&request, approver, &link);
            if let Err(err) = self.mailer.send(&mail).await {
                tracing::error!(request_id = %request.id, approver = %approver.id, error = ?err,
                    "approval mail not sent");
                undelivered.push(approver.id.clone());
            }
        }
        Created { request, undelivered }
    }

    /// Approves a request the policy approves by itself, alerts approvers of a break-glass
    /// use, and grants.
    async fn approve_by_policy(
        &self,
        request: AccessRequest,
        role: &CatalogRole,
    ) -> Result<AccessRequest> {
        let now = self.clock.now();
        let approved = request.approve_by_policy(now)?;
        let mut record = AuditRecord::new(
            AuditAction::RequestApproved,
            Outcome::Success,
            Actor::system("policy"),
            Source::Api,
            now,
        )
        .about(&approved)
        .with("approval_rule", approved.approval_rule.clone());
        if approved.break_glass {
            record = record
                .with("break_glass", true)
                .with("severity", "high")
                .with("review_required", true);
        }
        self.store.commit_transition(&approved, &record, None).await?;
        if approved.break_glass {
            tracing::warn!(request_id = %approved.id, requester = %approved.requester, role = %role.name, "break-glass activation");
            for approver in role.all_approvers().iter().filter_map(|id| self.catalog.person(id)) {
                let mail = self.break_glass_mail(&approved, approver);
                if let Err(err) = self.mailer.send(&mail).await {
                    tracing::error!(request_id = %approved.id, approver = %approver.id, error = ?err, "break-glass alert not sent");
                }
            }
        }
        self.activate_grant(approved).await
    }

    fn plan(
        &self,
        role: &CatalogRole,
        person: &Person,
        caller: &Principal,
        secs: u64,
        break_glass: bool,
    ) -> Result<ApprovalPlan> {
        if !break_glass {
            return role.approval_plan(person, caller, secs, self.clock.now());
        }
        if role.break_glass.is_none() {
            return Err(PimError::refused(
                "break_glass_not_allowed",
                format!("{} cannot be self-activated", role.name),
            ));
        }
        Ok(ApprovalPlan {
            rule: "break_glass".into(),
            auto_approve: true,
            approvers: vec![],
            quorum: 0,
            approver_mfa: false,
        })
    }

    /// Whether a grant of `role` for `window` can be put in place on the person's role: its
    /// managed policies exist and may be granted, the inline policy fits IAM's size limit,
    /// and the policies to attach fit the role's managed-policy quota beside those attached
    /// now (counted from IAM, so attachments made outside pim count too).
    async fn check_grant_fits(
        &self,
        role: &CatalogRole,
        person: &Person,
        window: GrantWindow,
    ) -> Result<()> {
        let managed =
            self.managed.checked(&role.managed_policies, &self.catalog.protected_resources).await?;
        if role.renders_inline() {
            render_grant_policy(role, window, &managed)?;
        }
        if role.attached_policies.is_empty() {
            return Ok(());
        }
        let attached = self.binder.attached_policies(person.role_name()).await?;
        let mut after: std::collections::HashSet<&str> =
            attached.iter().map(String::as_str).collect();
        after.extend(role.attached_policies.iter().map(String::as_str));
        let quota = self.catalog.managed_policy_quota as usize;
        if after.len() > quota {
            return Err(PimError::refused(
                "managed_policy_quota",
                format!(
                    "{} has {} managed policies attached; {} would need {}, over the quota of \
                     {quota}",
                    person.role_name(),
                    attached.len(),
                    role.name,
                    after.len()
                ),
            ));
        }
        Ok(())
    }

    /// Refuses a request that would give the person more concurrent grants of the role than
    /// the policy allows. The count reads the requester index, which is eventually
    /// consistent: two requests approved in the same instant can both pass.
    async fn check_active_limit(&self, person: &Person, role: &CatalogRole) -> Result<()> {
        let Some(limit) = role.constraints.max_active_grants else { return Ok(()) };
        let held = self
            .store
            .requests_of(&person.id)
            .await?
            .iter()
            .filter(|r| {
                r.role == role.name
                    && matches!(r.state, RequestState::Approved | RequestState::Active)
            })
            .count();
        if held >= limit as usize {
            return Err(PimError::refused(
                "too_many_active_grants",
                format!(
                    "{} already holds {held} active grant(s) of {}; the limit is {limit}",
                    person.id, role.name
                ),
            ));
        }
        Ok(())
    }

    /// A request and its history, if the caller is its requester, one of its approvers, or
    /// (for break-glass) one of its reviewers.
    pub async fn show_request(
        &self,
        caller: &Principal,
        id: &str,
    ) -> Result<(AccessRequest, Vec<AuditRecord>)> {
        let person = self.known_person(caller)?;
        let request = self.store.load_request(id).await?.filter(|request| {
            request.requester == person.id
                || request.approvers.contains(&person.id)
                || self.reviewers_of(request).contains(&person.id)
        });
        let request = request.ok_or_else(|| not_found(id))?;
        let history = self.store.history(&request.id).await?;
        Ok((request, history))
    }

    /// The caller's own requests, newest first.
    pub async fn list_requests(&self, caller: &Principal) -> Result<Vec<AccessRequest>> {
        let person = self.known_person(caller)?;
        self.store.requests_of(&person.id).await
    }

    /// The requester withdraws a pending request.
    pub async fn cancel_request(&self, caller: &Principal, id: &str) -> Result<AccessRequest> {
        let person = self.known_person(caller)?;
        let request = self.store.load_request(id).await?.filter(|r| r.requester == person.id);
        let request = request.ok_or_else(|| not_found(id))?;
        let now = self.clock.now();
        let next = request.cancel(now)?;
        let record = AuditRecord::new(
            AuditAction::RequestCancelled,
            Outcome::Success,
            Actor::person(&person.id, Some(caller.as_str())),
            Source::Api,
            now,
        )
        .about(&next);
        self.store.commit_transition(&next, &record, None).await?;
        tracing::info!(request_id = %next.id, requester = %person.id, "request cancelled");
        Ok(next)
    }

    /// The person and catalog role for a request, or a recorded refusal.
    async fn eligible(
        &self,
        caller: &Principal,
        role_name: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(&Person, &CatalogRole)> {
        let shown_role: String = role_name.chars().take(64).collect();
        let subject = RefusalSubject { request_id: None, role: Some(&shown_role) };
        let Some(person) = self.catalog.person_for(caller) else {
            let refusal = PimError::refused(
                "unknown_requester",
                "the caller is not a person of the policy document",
            );
            return Err(self
                .refuse_request(Actor::principal(caller.as_str()), subject, refusal)
                .await);
        };
        let actor = Actor::person(&person.id, Some(caller.as_str()));
        let Some(role) = self.catalog.role(role_name) else {
            let refusal = PimError::refused(
                "role_not_in_catalog",
                format!("'{shown_role}' is not a role of the catalog"),
            );
            return Err(self.refuse_request(actor, subject, refusal).await);
        };
        if let Err(refusal) = role.eligibility(person, caller, at) {
            return Err(self.refuse_request(actor, subject, refusal).await);
        }
        Ok((person, role))
    }

    async fn refuse_request(
        &self,
        actor: Actor,
        subject: RefusalSubject<'_>,
        refusal: PimError,
    ) -> PimError {
        self.refuse(AuditAction::RequestRefused, actor, Source::Api, subject, refusal).await
    }

    pub(crate) fn known_person(&self, caller: &Principal) -> Result<&Person> {
        self.catalog.person_for(caller).ok_or_else(|| {
            PimError::refused(
                "unknown_requester",
                "the caller is not a person of the policy document",
            )
        })
    }

    pub(crate) async fn sign_link(
        &self,
        request: &AccessRequest,
        approver: &str,
    ) -> Result<String> {
        let claims = LinkClaims {
            v: TOKEN_VERSION,
            kid: self.signer.key_id().to_string(),
            rid: request.id.clone(),
            apr: approver.to_string(),
            lid: new_id("link"),
            exp: request.pending_until.timestamp(),
            sub: None,
        };
        let token = token::issue(self.signer.as_ref(), &claims).await?;
        Ok(format!("{}/approvals/{token}", self.public_url))
    }
}

fn checked_duration(
    role: &CatalogRole,
    input: Option<&DurationInput>,
    break_glass: bool,
) -> Result<u64> {
    let secs = match input {
        Some(input) => input.to_secs()?,
        None => role.default_secs,
    };
    let max = match (&role.break_glass, break_glass) {
        (Some(glass), true) => glass.max_secs,
        _ => role.max_secs,
    };
    let secs = if input.is_none() { secs.min(max) } else { secs };
    if secs > max {
        return Err(PimError::invalid(
            "duration_over_maximum",
            format!(
                "{} allows at most {}; {} was asked",
                role.name,
                format_iso(max),
                format_iso(secs)
            ),
        ));
    }
    Ok(secs)
}

pub(crate) fn checked_justification(
    text: &str,
    role: &CatalogRole,
    break_glass: bool,
) -> Result<String> {
    let trimmed = text.trim();
    if trimmed.chars().any(char::is_control) {
        return Err(PimError::invalid(
            "invalid_justification",
            "the justification must not contain control characters",
        ));
    }
    let minimum = match (&role.break_glass, break_glass) {
        (Some(glass), true) => glass.justification_min.max(role.constraints.justification_min),
        _ => role.constraints.justification_min,
    };
    let length = trimmed.chars().count();
    if !(minimum..=MAX_JUSTIFICATION_CHARS).contains(&length) {
        return Err(PimError::invalid(
            "invalid_justification",
            format!("the justification must be {minimum} to {MAX_JUSTIFICATION_CHARS} characters"),
        ));
    }
    if let Some(pattern) = &role.constraints.justification_pattern
        && !pattern.is_match(trimmed)
    {
        return Err(PimError::invalid(
            "invalid_justification",
            format!("the justification must match {}", pattern.as_str()),
        ));
    }
    Ok(trimmed.to_string())
}

fn checked_ticket(role: &CatalogRole, ticket: Option<&str>) -> Result<Option<String>> {
    let ticket = ticket.map(str::trim).filter(|t| !t.is_empty());
    match (&role.constraints.ticket_pattern, ticket) {
        (Some(pattern), Some(ticket)) if ticket.len() <= 128 && pattern.is_match(ticket) => {
            Ok(Some(ticket.to_string()))
        }
        (Some(pattern), _) => Err(PimError::invalid(
            "invalid_ticket",
            format!("{} needs a ticket matching {}", role.name, pattern.as_str()),
        )),
        (None, Some(ticket)) if ticket.len() > 128 || ticket.chars().any(char::is_control) => {
            Err(PimError::invalid("invalid_ticket", "a ticket is at most 128 printable characters"))
        }
        (None, ticket) => Ok(ticket.map(str::to_string)),
    }
}

/// The `request.created` record of `request`, asked for `duration_secs` by `actor`, with
/// the second factor that was checked, if any.
pub(crate) fn created_record(
    request: &AccessRequest,
    actor: Actor,
    duration_secs: u64,
    mfa: Option<&'static str>,
) -> AuditRecord {
    let mut record = AuditRecord::new(
        AuditAction::RequestCreated,
        Outcome::Success,
        actor,
        Source::Api,
        request.created_at,
    )
    .about(request)
    .with("duration", format_iso(duration_secs))
    .with("justification", request.justification.clone())
    .with("approvers", request.approvers.clone())
    .with("approval_rule", request.approval_rule.clone())
    .with("quorum", request.quorum)
    .with("target_role_arn", request.target_role_arn.clone());
    if let Some(ticket) = &request.ticket {
        record = record.with("ticket", ticket.clone());
    }
    if let Some(mfa) = mfa {
        record = record.with("mfa", mfa);
    }
    record
}

pub(crate) fn not_found(id: &str) -> PimError {
    let shown: String = id.chars().take(64).flat_map(char::escape_default).collect();
    PimError::not_found("request_not_found", format!("no request {shown} is visible to you"))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::catalog::Catalog;

    const POLICY: &str = include_str!("../../../infra/policy.example.yaml");

    #[test]
    fn justifications_are_trimmed_bounded_and_free_of_control_characters() {
        let catalog = Catalog::from_yaml(POLICY).unwrap();
        let role = catalog.role("prod-readonly").unwrap();
        assert_eq!(
            checked_justification("  incident INC-42 \n", role, false).unwrap(),
            "incident INC-42"
        );
        for bad in ["short", "incident\u{0}42 bad", "incident \u{1b}[2J wipe", &"x".repeat(1001)] {
            let err = checked_justification(bad, role, false).unwrap_err();
            assert_eq!(err.code(), "invalid_justification");
        }
    }
}
