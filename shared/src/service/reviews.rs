//! The after-the-fact review that closes a break-glass activation.
//!
//! Break-glass grants without approval, so someone who could have approved looks at it
//! afterwards: an approver of the role under the policy in force, never the requester. One
//! review closes the activation with a finding and a comment, as a conditional write with
//! its audit record. An `unjustified` finding on access still in place ends that access:
//! revocation is asked to run at once, as after a failed activation.

use super::{Pim, RefusalSubject};
use crate::audit::{Actor, AuditAction, AuditRecord, Outcome, Source};
use crate::error::{PimError, Result};
use crate::identity::Principal;
use crate::model::{AccessRequest, Finding, RequestState};
use serde::Deserialize;

/// The shortest review comment accepted, in characters.
pub const MIN_COMMENT_CHARS: usize = 10;

/// The longest review comment accepted, in characters.
pub const MAX_COMMENT_CHARS: usize = 1000;

/// The body of `POST /requests/{id}/review`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewReview {
    /// `justified` or `unjustified`.
    pub finding: Finding,
    /// Why, for the audit trail.
    pub comment: String,
}

impl Pim {
    /// Records the caller's review of a break-glass activation. Refusals (the requester, not
    /// an approver of the role, not break-glass, already reviewed) are audited.
    pub async fn review_break_glass(
        &self,
        caller: &Principal,
        id: &str,
        input: NewReview,
    ) -> Result<AccessRequest> {
        let comment = checked_comment(&input.comment)?;
        let person = self.known_person(caller)?;
        let request = self.store.load_request(id).await?;
        let request = request
            .filter(|request| {
                request.requester == person.id || self.reviewers_of(request).contains(&person.id)
            })
            .ok_or_else(|| super::requests::not_found(id))?;
        let actor = Actor::person(&person.id, Some(caller.as_str()));
        let subject = RefusalSubject { request_id: Some(&request.id), role: Some(&request.role) };
        let now = self.clock.now();
        let reviewed = match request.record_review(&person.id, input.finding, &comment, now) {
            Ok(reviewed) => reviewed,
            Err(refusal) => {
                return Err(self
                    .refuse(
                        AuditAction::BreakGlassReviewRefused,
                        actor,
                        Source::Api,
                        subject,
                        refusal,
                    )
                    .await);
            }
        };
        let live = matches!(reviewed.state, RequestState::Approved | RequestState::Active);
        let ends_access = input.finding == Finding::Unjustified && live;
        let mut record = AuditRecord::new(
            AuditAction::BreakGlassReviewed,
            Outcome::Success,
            actor,
            Source::Api,
            now,
        )
        .about(&reviewed)
        .with("finding", input.finding.as_str())
        .with("comment", comment)
        .with("access_ended", ends_access);
        if input.finding == Finding::Unjustified {
            record = record.with("severity", "high");
        }
        self.store.commit_transition(&reviewed, &record, None).await?;
        tracing::info!(request_id = %reviewed.id, reviewer = %person.id,
            finding = input.finding.as_str(), "break-glass activation reviewed");
        if ends_access && let Some(grant) = &reviewed.grant {
            tracing::warn!(request_id = %reviewed.id, grant_id = %grant.id,
                "break-glass found unjustified; its access is being ended");
            self.request_cleanup(&reviewed.id, grant).await;
        }
        Ok(reviewed)
    }

    /// Who may review a request: the approvers of its role under the policy in force, for a
    /// break-glass activation; nobody otherwise.
    pub(crate) fn reviewers_of(&self, request: &AccessRequest) -> Vec<String> {
        if !request.break_glass {
            return Vec::new();
        }
        self.catalog.role(&request.role).map(|role| role.all_approvers()).unwrap_or_default()
    }
}

fn checked_comment(text: &str) -> Result<String> {
    let trimmed = text.trim();
    let length = trimmed.chars().count();
    if trimmed.chars().any(char::is_control)
        || !(MIN_COMMENT_CHARS..=MAX_COMMENT_CHARS).contains(&length)
    {
        return Err(PimError::invalid(
            "invalid_comment",
            format!(
                "the comment must be {MIN_COMMENT_CHARS} to {MAX_COMMENT_CHARS} printable characters"
            ),
        ));
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_are_trimmed_bounded_and_printable() {
        assert_eq!(checked_comment("  real outage, INC-7 \n").unwrap(), "real outage, INC-7");
        for bad in ["too short", "real outage\u{1b}[2J", &"x".repeat(1001)] {
            assert_eq!(checked_comment(bad).unwrap_err().code(), "invalid_comment");
        }
    }
}
