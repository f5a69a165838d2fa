//! The approver's side: opening a link (which changes nothing) and deciding.
//!
//! An extension request is decided the same way. Each approval first checks that the grant
//! it extends is still active and may still end at the time asked for; the approval that
//! completes the quorum commits the decision and the grant's new end in one transaction,
//! then moves the grant's schedule and policy as an extension without approvers does.

use super::{Pim, RefusalSubject};
use crate::audit::{Actor, AuditAction, AuditRecord, Outcome, Source};
use crate::catalog::Person;
use crate::error::{PimError, Result};
use crate::identity::Principal;
use crate::model::{AccessRequest, RequestState, Verdict};
use crate::render::iam_time;
use crate::token::{self, LinkClaims};

/// What an approval link shows: the request, and who the link belongs to.
#[derive(Debug, Clone)]
pub struct LinkView {
    /// The verified claims of the link.
    pub claims: LinkClaims,
    /// The request the link decides, as stored now.
    pub request: AccessRequest,
    /// The approver the link was sent to.
    pub approver: Person,
}

impl Pim {
    /// Verifies a link and reads its request. Writes nothing, whatever the outcome: mail
    /// scanners open links, and opening must never decide or record anything.
    pub async fn open_link(&self, token: &str) -> Result<LinkView> {
        self.read_link(token).await.map_err(|(err, _)| err)
    }

    /// [`Pim::open_link`], also returning the verified claims with a refusal that came after
    /// verification, so a refusal record can say who and which request.
    async fn read_link(&self, token: &str) -> Result<LinkView, (PimError, Option<LinkClaims>)> {
        let claims = token::verify(self.signer.as_ref(), token, self.clock.now())
            .await
            .map_err(|err| (err, None))?;
        let refuse = |err: PimError| (err, Some(claims.clone()));
        let invalid = || PimError::refused("invalid_link", "this approval link is not valid");
        // An access-review link is not an approval link, whatever request id it names.
        if claims.sub.is_some() {
            return Err(refuse(invalid()));
        }
        let request = match self.store.load_request(&claims.rid).await {
            Ok(Some(request)) => request,
            Ok(None) => return Err(refuse(invalid())),
            Err(fault) => return Err(refuse(fault)),
        };
        let Some(approver) = self.catalog.person(&claims.apr).cloned() else {
            return Err(refuse(invalid()));
        };
        if is_same_person(&approver, &request) {
            return Err(refuse(PimError::refused(
                "self_approval",
                "nobody may decide their own request",
            )));
        }
        if !request.approvers.contains(&claims.apr) {
            return Err(refuse(invalid()));
        }
        Ok(LinkView { claims, request, approver })
    }

    /// Records an approver's decision through a link, and grants access on approval. The
    /// link's one-time id is consumed in the same transaction as the decision. Where the
    /// request's rule asks approvers for a second factor, an approval needs `mfa_code` (a
    /// denial grants nothing and needs none).
    pub async fn decide(
        &self,
        token: &str,
        verdict: Verdict,
        mfa_code: Option<&str>,
    ) -> Result<AccessRequest> {
        let view = match self.read_link(token).await {
            Ok(view) => view,
            Err((refusal, claims)) if refusal.is_refusal() => {
                let actor =
                    claims.as_ref().map_or_else(Actor::anonymous, |c| Actor::person(&c.apr, None));
                let request_id = claims.as_ref().map(|c| c.rid.as_str());
                let subject = RefusalSubject { request_id, role: None };
                return Err(self.refuse_decision(actor, subject, refusal).await);
            }
            Err((fault, _)) => return Err(fault),
        };
        let LinkView { claims, request, approver } = view;
        let actor = Actor::person(&approver.id, None);
        let subject = RefusalSubject { request_id: Some(&request.id), role: Some(&request.role) };

        let Some(role) = self.catalog.role(&request.role) else {
            let refusal =
                PimError::refused("role_not_in_catalog", "the role left the policy document");
            return Err(self.refuse_decision(actor, subject, refusal).await);
        };
        if !role.may_approve(&request.approval_rule, &approver.id) {
            let refusal = PimError::refused(
                "not_an_approver",
                "the policy no longer names you as an approver of this role",
            );
            return Err(self.refuse_decision(actor, subject, refusal).await);
        }
        // Eligibility is checked again: someone removed from the policy while the request
        // waited must not be granted.
        if verdict == Verdict::Approve
            && let Err(refusal) = self.still_eligible(&request)
        {
            return Err(self.refuse_decision(actor, subject, refusal).await);
        }
        // An approval of an extension counts only while its grant can still be extended.
        let extended = match (verdict, &request.extends) {
            (Verdict::Approve, Some(_)) if request.state == RequestState::Pending => {
                match self.grant_to_extend(&request).await {
                    Ok(original) => Some(original),
                    Err(refusal) if refusal.is_refusal() => {
                        return Err(self.refuse_decision(actor, subject, refusal).await);
                    }
                    Err(fault) => return Err(fault),
                }
            }
            _ => None,
        };
        // The code comes last of the checks, so it is spent only on a decision that counts.
        let code_checked = verdict == Verdict::Approve && request.approver_mfa;
        if code_checked && let Err(err) = self.check_code(&approver.id, mfa_code).await {
            if !err.is_refusal() {
                return Err(err);
            }
            return Err(self.refuse_decision(actor, subject, err).await);
        }

        let now = self.clock.now();
        let next = match verdict {
            Verdict::Approve => request.approve(&approver.id, now),
            Verdict::Deny => request.deny(&approver.id, now),
        };
        let next = match next {
            Ok(next) => next,
            Err(refusal) => return Err(self.refuse_decision(actor, subject, refusal).await),
        };
        let action = match (verdict, next.state) {
            (Verdict::Deny, _) => AuditAction::RequestDenied,
            (Verdict::Approve, RequestState::Pending) => AuditAction::ApprovalRecorded,
            (Verdict::Approve, _) => AuditAction::RequestApproved,
        };
        let record = AuditRecord::new(action, Outcome::Success, actor.clone(), Source::Link, now)
            .about(&next)
            .with("link_id", claims.lid.clone())
            .with("approval_rule", next.approval_rule.clone())
            .with("approvals", next.approvals())
            .with("quorum", next.quorum);
        let record = if code_checked { record.with("mfa", "totp") } else { record };
        let record = match &next.extends {
            Some(asked) => record.with("extends", asked.grant_id.clone()),
            None => record,
        };
        if let (RequestState::Applied, Some(original)) = (next.state, extended) {
            return self.apply_extension(next, record, original, &claims.lid).await;
        }
        if let Err(err) = self.store.commit_transition(&next, &record, Some(&claims.lid)).await {
            if err.is_refusal() {
                return Err(self.refuse_decision(actor, subject, err).await);
            }
            return Err(err);
        }
        tracing::info!(request_id = %next.id, approver = %approver.id, verdict = ?verdict, "decision recorded");

        match next.state {
            RequestState::Approved => self.activate_grant(next).await,
            RequestState::Denied => {
                self.tell_requester(&next).await;
                Ok(next)
            }
            _ => Ok(next),
        }
    }

    /// The active request whose grant `extension` asks to extend, if that grant can still
    /// end at the time asked for; why not otherwise.
    async fn grant_to_extend(&self, extension: &AccessRequest) -> Result<AccessRequest> {
        let asked = extension.extends.as_ref().expect("an extension request");
        let ended = || {
            PimError::refused(
                "grant_ended",
                format!("grant {} has ended; there is nothing to extend", asked.grant_id),
            )
        };
        let original = self.store.load_request(&asked.request_id).await?.ok_or_else(ended)?;
        let grant = original.grant.as_ref().filter(|g| g.id == asked.grant_id).ok_or_else(ended)?;
        let now = self.clock.now();
        if original.state != RequestState::Active || grant.ends_at <= now {
            return Err(ended());
        }
        if grant.ends_at >= asked.extend_to {
            return Err(PimError::refused(
                "already_extended",
                format!(
                    "grant {} already ends at {}, no earlier than this extension asks",
                    grant.id,
                    iam_time(grant.ends_at)
                ),
            ));
        }
        let role = self.catalog.role(&original.role).ok_or_else(|| {
            PimError::refused("role_not_in_catalog", "the role left the policy document")
        })?;
        let total_secs = (asked.extend_to - grant.starts_at).num_seconds().max(0) as u64;
        if total_secs > role.max_secs {
            return Err(PimError::refused(
                "duration_over_maximum",
                format!(
                    "{} now allows at most {} from the grant's start",
                    role.name,
                    crate::duration::format_iso(role.max_secs)
                ),
            ));
        }
        Ok(original)
    }

    /// Commits the approval that completes an extension's quorum together with the grant's
    /// new end, then puts the new end in place. A lost race on either request writes
    /// nothing and is refused like any stale decision.
    async fn apply_extension(
        &self,
        applied: AccessRequest,
        decision: AuditRecord,
        original: AccessRequest,
        link_id: &str,
    ) -> Result<AccessRequest> {
        let asked = applied.extends.clone().expect("an extension request");
        let approver = decision.actor.clone();
        let subject = RefusalSubject { request_id: Some(&applied.id), role: Some(&applied.role) };
        let now = self.clock.now();
        let previous_end = original.grant.as_ref().map_or(asked.ends_at, |g| g.ends_at);
        let extended = match original.extend(asked.extend_to, now) {
            Ok(extended) => extended,
            Err(refusal) => return Err(self.refuse_decision(approver, subject, refusal).await),
        };
        let record = super::holders::extension_record(
            &extended,
            Actor::system("extension"),
            previous_end,
            now,
        )
        .with("approval_rule", applied.approval_rule.clone())
        .with("extension_request", applied.id.clone())
        .with(
            "approved_by",
            applied.decisions.iter().map(|d| d.approver.clone()).collect::<Vec<_>>(),
        );
        let changes = [(&applied, &decision), (&extended, &record)];
        if let Err(err) = self.store.commit_transitions(&changes, Some(link_id)).await {
            if err.is_refusal() {
                return Err(self.refuse_decision(approver, subject, err).await);
            }
            return Err(err);
        }
        tracing::info!(request_id = %applied.id, grant_id = %asked.grant_id,
            extend_to = %iam_time(asked.extend_to), "extension approved");
        let role = self.catalog.role(&extended.role).ok_or_else(|| {
            PimError::refused("role_not_in_catalog", "the role left the policy document")
        })?;
        self.put_extension_in_place(&extended, role, previous_end).await?;
        Ok(applied)
    }

    fn still_eligible(&self, request: &AccessRequest) -> Result<()> {
        let not_eligible = || {
            PimError::refused(
                "requester_not_eligible",
                "the requester is no longer eligible for this role",
            )
        };
        let person = self.catalog.person(&request.requester).ok_or_else(not_eligible)?;
        let principal =
            Principal::from_policy(&request.requester_principal).map_err(|_| not_eligible())?;
        let role = self.catalog.role(&request.role).ok_or_else(not_eligible)?;
        role.eligibility(person, &principal, self.clock.now()).map_err(|_| not_eligible())
    }

    async fn refuse_decision(
        &self,
        actor: Actor,
        subject: RefusalSubject<'_>,
        refusal: PimError,
    ) -> PimError {
        self.refuse(AuditAction::DecisionRefused, actor, Source::Link, subject, refusal).await
    }
}

/// Whether the approver is the requester: by person, or by any principal the approver holds.
fn is_same_person(approver: &Person, request: &AccessRequest) -> bool {
    if approver.id == request.requester {
        return true;
    }
    let Ok(requester) = Principal::from_policy(&request.requester_principal) else {
        return true;
    };
    approver
        .principals
        .iter()
        .filter_map(|text| Principal::from_policy(text).ok())
        .any(|principal| principal == requester)
}
