//! The requester's side: create, show, list and cancel.

use super::{Pim, RefusalSubject};
use crate::audit::{Actor, AuditAction, AuditRecord, Outcome, Source};
use crate::catalog::{CatalogRole, Person};
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
    /// the approvers. A refusal writes only its audit record.
    pub async fn create_request(&self, caller: &Principal, input: NewRequest) -> Result<Created> {
        let now = self.clock.now();
        let (person, role) = self.eligible(caller, &input.role).await?;
        let duration_secs = checked_duration(role, input.duration.as_ref())?;
        let justification = checked_justification(&input.justification)?;

        // The grant must fit IAM's size limit before anyone is asked to approve it.
        let sample =
            GrantWindow { starts_at: now, ends_at: now + Duration::seconds(duration_secs as i64) };
        render_grant_policy(role, sample)?;

        let approvers: Vec<&Person> = role
            .approvers
            .iter()
            .filter(|id| **id != person.id)
            .filter_map(|id| self.catalog.person(id))
            .collect();
        let request = AccessRequest {
            id: new_id("req"),
            requester: person.id.clone(),
            requester_principal: caller.to_string(),
            role: role.name.clone(),
            target_role_arn: person.role_arn.clone(),
            duration_secs,
            justification,
            created_at: now,
            pending_until: now + Duration::seconds(self.catalog.pending_lifetime_secs as i64),
            approvers: approvers.iter().map(|p| p.id.clone()).collect(),
            state: RequestState::Pending,
            version: 1,
            updated_at: now,
            decisions: vec![],
            grant: None,
            reason: None,
            drift: None,
        };

        // Links are signed before anything is stored, so a KMS failure leaves nothing behind.
        let mut links = Vec::with_capacity(approvers.len());
        for approver in &approvers {
            links.push((*approver, self.sign_link(&request, &approver.id).await?));
        }

        let record = AuditRecord::new(
            AuditAction::RequestCreated,
            Outcome::Success,
            Actor::person(&person.id, Some(caller.as_str())),
            Source::Api,
            now,
        )
        .about(&request)
        .with("duration", format_iso(duration_secs))
        .with("justification", request.justification.clone())
        .with("approvers", request.approvers.clone())
        .with("target_role_arn", request.target_role_arn.clone());
        self.store.create_request(&request, &record).await?;
        tracing::info!(request_id = %request.id, requester = %person.id, role = %role.name,
            duration_secs, "request created");

        let mut undelivered = Vec::new();
        for (approver, link) in links {
            let mail = self.approval_mail(&request, approver, &link);
            if let Err(err) = self.mailer.send(&mail).await {
                tracing::error!(request_id = %request.id, approver = %approver.id, error = ?err,
                    "approval mail not sent");
                undelivered.push(approver.id.clone());
            }
        }
        Ok(Created { request, undelivered })
    }

    /// A request and its history, if the caller is its requester or one of its approvers.
    pub async fn show_request(
        &self,
        caller: &Principal,
        id: &str,
    ) -> Result<(AccessRequest, Vec<AuditRecord>)> {
        let person = self.known_person(caller)?;
        let request = self.store.load_request(id).await?.filter(|request| {
            request.requester == person.id || request.approvers.contains(&person.id)
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
        if !role.may_request(&person.id) {
            let refusal = PimError::refused(
                "not_eligible",
                format!("{} may not request {}", person.id, role.name),
            );
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

    fn known_person(&self, caller: &Principal) -> Result<&Person> {
        self.catalog.person_for(caller).ok_or_else(|| {
            PimError::refused(
                "unknown_requester",
                "the caller is not a person of the policy document",
            )
        })
    }

    async fn sign_link(&self, request: &AccessRequest, approver: &str) -> Result<String> {
        let claims = LinkClaims {
            v: TOKEN_VERSION,
            kid: self.signer.key_id().to_string(),
            rid: request.id.clone(),
            apr: approver.to_string(),
            lid: new_id("link"),
            exp: request.pending_until.timestamp(),
        };
        let token = token::issue(self.signer.as_ref(), &claims).await?;
        Ok(format!("{}/approvals/{token}", self.public_url))
    }
}

fn checked_duration(role: &CatalogRole, input: Option<&DurationInput>) -> Result<u64> {
    let secs = match input {
        Some(input) => input.to_secs()?,
        None => role.default_secs,
    };
    if secs > role.max_secs {
        return Err(PimError::invalid(
            "duration_over_maximum",
            format!(
                "{} allows at most {}; {} was asked",
                role.name,
                format_iso(role.max_secs),
                format_iso(secs)
            ),
        ));
    }
    Ok(secs)
}

fn checked_justification(text: &str) -> Result<String> {
    let trimmed = text.trim();
    if trimmed.chars().any(char::is_control) {
        return Err(PimError::invalid(
            "invalid_justification",
            "the justification must not contain control characters",
        ));
    }
    let length = trimmed.chars().count();
    if !(MIN_JUSTIFICATION_CHARS..=MAX_JUSTIFICATION_CHARS).contains(&length) {
        return Err(PimError::invalid(
            "invalid_justification",
            format!(
                "the justification must be {MIN_JUSTIFICATION_CHARS} to {MAX_JUSTIFICATION_CHARS} characters"
            ),
        ));
    }
    Ok(trimmed.to_string())
}

fn not_found(id: &str) -> PimError {
    let shown: String = id.chars().take(64).flat_map(char::escape_default).collect();
    PimError::not_found("request_not_found", format!("no request {shown} is visible to you"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn justifications_are_trimmed_bounded_and_free_of_control_characters() {
        assert_eq!(checked_justification("  incident INC-42 \n").unwrap(), "incident INC-42");
        for bad in ["short", "incident\u{0}42 bad", "incident \u{1b}[2J wipe", &"x".repeat(1001)] {
            assert_eq!(checked_justification(bad).unwrap_err().code(), "invalid_justification");
        }
    }
}
