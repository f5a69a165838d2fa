//! Enrolling a one-time code app, and checking the codes the policy asks for.
//!
//! Enrolment is two steps, so a secret counts only once the person has proved their app
//! holds it: `POST /mfa/enrollment` issues a new secret (pending) and shows it once, as an
//! `otpauth://` URI; `POST /mfa/enrollment/confirm` with a first code makes it active. A
//! pending enrolment may be issued again (a lost QR code); an active one is never replaced
//! through the API, because whoever holds the caller's credentials for a moment could
//! otherwise move the second factor to their own device.

use super::{Pim, RefusalSubject};
use crate::audit::{Actor, AuditAction, AuditRecord, Outcome, Source};
use crate::catalog::CatalogRole;
use crate::error::{PimError, Result};
use crate::identity::Principal;
use crate::mfa::{self, Enrollment, EnrollmentState, NewSecret, OneTimeCode};
use crate::ports::SecretKeeper;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a person needs to add the secret to their app. Shown once; never stored in clear,
/// and its `Debug` shows no secret.
#[derive(Clone, Serialize)]
pub struct NewEnrollment {
    /// The `otpauth://` URI (the content of the QR code).
    pub otpauth_uri: String,
    /// The secret in base32, for typing it in.
    pub secret: String,
    /// When it was issued; the enrolment stays pending until a code confirms it.
    pub issued_at: DateTime<Utc>,
    /// Always `pending`.
    pub state: EnrollmentState,
}

impl std::fmt::Debug for NewEnrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewEnrollment")
            .field("issued_at", &self.issued_at)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// The body of `POST /mfa/enrollment/confirm`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmEnrollment {
    /// The code the app shows now.
    pub code: OneTimeCode,
}

/// The encryption context of a person's secret.
fn context(person: &str) -> [(&'static str, &str); 2] {
    [("pim:purpose", "mfa-totp"), ("pim:person", person)]
}

impl Pim {
    /// Issues the caller a new secret, pending until confirmed. Refused when the caller
    /// already has an active enrolment.
    pub async fn begin_mfa_enrollment(&self, caller: &Principal) -> Result<NewEnrollment> {
        let person = self.known_person(caller)?.clone();
        let actor = Actor::person(&person.id, Some(caller.as_str()));
        let keeper = self.secret_keeper()?;
        if let Some(existing) = self.mfa.enrollment(&person.id).await?
            && existing.state == EnrollmentState::Active
        {
            return Err(self.refuse_mfa(actor, already_enrolled()).await);
        }

        let now = self.clock.now();
        let secret = NewSecret::generate();
        let sealed_secret = keeper.seal(&secret.bytes, &context(&person.id)).await?;
        let enrollment = Enrollment {
            person: person.id.clone(),
            sealed_secret,
            state: EnrollmentState::Pending,
            last_step: None,
            created_at: now,
        };
        let record = AuditRecord::new(
            AuditAction::MfaEnrollmentStarted,
            Outcome::Success,
            actor.clone(),
            Source::Api,
            now,
        )
        .with("method", "totp");
        match self.mfa.begin_enrollment(&enrollment, &record).await {
            Ok(()) => {}
            Err(err) if err.is_refusal() => return Err(self.refuse_mfa(actor, err).await),
            Err(err) => return Err(err),
        }
        tracing::info!(person = %person.id, "mfa enrolment started");
        Ok(NewEnrollment {
            otpauth_uri: secret.otpauth_uri(&person.email),
            secret: secret.base32,
            issued_at: now,
            state: EnrollmentState::Pending,
        })
    }

    /// Confirms the caller's pending enrolment with a first code; from then on their codes
    /// count. The code's step is consumed with the confirmation.
    pub async fn confirm_mfa_enrollment(
        &self,
        caller: &Principal,
        input: ConfirmEnrollment,
    ) -> Result<()> {
        let person = self.known_person(caller)?.clone();
        let actor = Actor::person(&person.id, Some(caller.as_str()));
        let keeper = self.secret_keeper()?;
        let pending = match self.mfa.enrollment(&person.id).await? {
            Some(enrollment) if enrollment.state == EnrollmentState::Pending => enrollment,
            Some(_) => return Err(self.refuse_mfa(actor, already_enrolled()).await),
            None => return Err(self.refuse_mfa(actor, mfa::not_enrolled(&person.id)).await),
        };

        let now = self.clock.now();
        let secret = keeper.open(&pending.sealed_secret, &context(&person.id)).await?;
        let Some(step) = mfa::matching_step(&secret, input.code.as_str(), now) else {
            return Err(self.refuse_mfa(actor, mfa::code_invalid()).await);
        };
        let confirmed =
            Enrollment { state: EnrollmentState::Active, last_step: Some(step), ..pending };
        let record = AuditRecord::new(
            AuditAction::MfaEnrolled,
            Outcome::Success,
            actor.clone(),
            Source::Api,
            now,
        )
        .with("method", "totp");
        match self.mfa.confirm_enrollment(&confirmed, &record).await {
            Ok(()) => {}
            Err(err) if err.is_refusal() => return Err(self.refuse_mfa(actor, err).await),
            Err(err) => return Err(err),
        }
        tracing::info!(person = %person.id, "mfa enrolled");
        Ok(())
    }

    /// The requester's second factor where `role` asks for one: `None` when it does not,
    /// else how it was proved (`oidc`: a fresh multi-factor sign-in the authorizer
    /// asserted; `totp`: a code, checked and spent). A refusal says what is missing.
    pub(crate) async fn requester_factor(
        &self,
        role: &CatalogRole,
        person: &str,
        code: Option<&str>,
        oidc_mfa: bool,
    ) -> Result<Option<&'static str>> {
        match (role.constraints.requester_mfa, oidc_mfa) {
            (false, _) => Ok(None),
            (true, true) => Ok(Some("oidc")),
            (true, false) => self.check_code(person, code).await.map(|()| Some("totp")),
        }
    }

    /// Checks `code` against the person's active enrolment and consumes its step: the
    /// second factor a policy asks of a requester or an approver. Refusals say what is
    /// wrong (missing, not enrolled, wrong or stale, used before); the caller records them.
    pub(crate) async fn check_code(&self, person: &str, code: Option<&str>) -> Result<()> {
        let keeper = self.secret_keeper()?;
        let code = code.ok_or_else(mfa::code_required)?;
        let enrollment = match self.mfa.enrollment(person).await? {
            Some(enrollment) if enrollment.state == EnrollmentState::Active => enrollment,
            _ => return Err(mfa::not_enrolled(person)),
        };
        let secret = keeper.open(&enrollment.sealed_secret, &context(person)).await?;
        let step =
            mfa::matching_step(&secret, code, self.clock.now()).ok_or_else(mfa::code_invalid)?;
        if !self.mfa.consume_step(person, step).await? {
            return Err(mfa::code_used());
        }
        Ok(())
    }

    fn secret_keeper(&self) -> Result<&dyn SecretKeeper> {
        self.secrets.as_deref().ok_or_else(|| {
            PimError::refused(
                "mfa_unavailable",
                "one-time codes are not set up in this deployment (no MFA key)",
            )
        })
    }

    async fn refuse_mfa(&self, actor: Actor, refusal: PimError) -> PimError {
        let subject = RefusalSubject::default();
        self.refuse(AuditAction::MfaRefused, actor, Source::Api, subject, refusal).await
    }
}

fn already_enrolled() -> PimError {
    PimError::conflict(
        "mfa_already_enrolled",
        "you already have a confirmed one-time code app; ask an administrator to reset it",
    )
}
