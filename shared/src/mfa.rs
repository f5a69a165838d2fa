//! Second factors: time-based one-time codes (TOTP, RFC 6238) that people enrol through the
//! API, and the OIDC assertion of a fresh multi-factor sign-in.
//!
//! Codes are six digits from HMAC-SHA-1 over 30-second steps, the parameters every
//! authenticator app supports. A code is accepted for its own step and the steps either
//! side (up to 30 seconds of clock skew), and each step is accepted once per person: the
//! store consumes it with a conditional write, so a code seen by someone looking over a
//! shoulder, or replayed from a log, is refused. Secrets are kept encrypted by a KMS key
//! (see [`crate::ports::SecretKeeper`]) and never logged, recorded or shown again after
//! enrolment.

use crate::error::{PimError, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use totp_rs::{Algorithm, Builder, Secret, Totp};

/// Bytes of a new secret: 160 bits, as RFC 4226 recommends.
pub const SECRET_BYTES: usize = 20;

/// Seconds a code stays current.
pub const STEP_SECS: u64 = 30;

/// How long after an OIDC multi-factor sign-in (`auth_time`) it still counts as fresh.
pub const OIDC_MFA_FRESHNESS_SECS: i64 = 300;

/// The issuer shown by authenticator apps.
pub const ISSUER: &str = "pim";

/// Where a person's enrolment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrollmentState {
    /// The secret was issued; a first code has not confirmed it yet, so it proves nothing.
    Pending,
    /// Confirmed by a code: codes from it satisfy MFA.
    Active,
}

/// A person's TOTP enrolment as stored: the secret only in its encrypted form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    /// The person's id.
    pub person: String,
    /// The secret, encrypted by the MFA key with the person bound into the context.
    pub sealed_secret: Vec<u8>,
    /// Pending until a first code confirms it.
    pub state: EnrollmentState,
    /// The newest step a code was accepted for; older and equal steps are refused.
    pub last_step: Option<u64>,
    /// When the secret was issued.
    pub created_at: DateTime<Utc>,
}

/// A one-time code as typed. Its `Debug` shows no digits, so a request body or form printed
/// for a diagnosis can never put a code in a log.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct OneTimeCode(String);

impl OneTimeCode {
    /// The code's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for OneTimeCode {
    fn from(code: String) -> Self {
        Self(code)
    }
}

impl std::fmt::Debug for OneTimeCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OneTimeCode(<redacted>)")
    }
}

/// A freshly generated secret: the raw bytes to seal, and what the person's app needs.
/// Its `Debug` shows neither.
#[derive(Clone)]
pub struct NewSecret {
    /// The secret's bytes.
    pub bytes: Vec<u8>,
    /// The secret in base32, as apps take it when typed.
    pub base32: String,
}

impl NewSecret {
    /// A new random secret.
    pub fn generate() -> Self {
        let bytes: Vec<u8> = (0..SECRET_BYTES).map(|_| rand::random::<u8>()).collect();
        let base32 = Secret::new(bytes.clone().into_boxed_slice()).to_base32();
        Self { bytes, base32 }
    }

    /// The `otpauth://` URI that enrols the secret in an app (its QR code's content).
    pub fn otpauth_uri(&self, account: &str) -> String {
        let label: String =
            percent_encoding::utf8_percent_encode(&format!("{ISSUER}:{account}"), LABEL)
                .to_string();
        format!(
            "otpauth://totp/{label}?secret={}&issuer={ISSUER}&algorithm=SHA1&digits=6&period={STEP_SECS}",
            self.base32
        )
    }
}

impl std::fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewSecret(<redacted>)")
    }
}

/// Characters escaped in the URI's label.
const LABEL: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'@')
    .remove(b':');

/// The step a code was generated for, if `code` is right for `secret` at `at` within the
/// skew; `None` if it is wrong, stale or malformed. The caller must still consume the step.
pub fn matching_step(secret: &[u8], code: &str, at: DateTime<Utc>) -> Option<u64> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seconds = u64::try_from(at.timestamp()).ok()?;
    totp(secret).ok()?.check(code, seconds)
}

/// The code for `secret` at `at`; what an authenticator app shows (used by tests and the
/// local stack's walkthrough).
pub fn code_at(secret: &[u8], at: DateTime<Utc>) -> Result<String> {
    let seconds = u64::try_from(at.timestamp())
        .map_err(|_| PimError::invalid("mfa_invalid", "time before 1970"))?;
    Ok(totp(secret)?.generate(seconds).to_string())
}

fn totp(secret: &[u8]) -> Result<Totp> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(STEP_SECS)
        .with_secret(Secret::new(secret.to_vec().into_boxed_slice()))
        .build()
        .map_err(|err| PimError::invalid("mfa_invalid", format!("unusable secret: {err}")))
}

/// Whether OIDC claims assert a multi-factor sign-in (`amr` containing `mfa`) at most
/// [`OIDC_MFA_FRESHNESS_SECS`] before `now`. API Gateway hands claims over as strings: `amr`
/// arrives as `[pwd mfa]` or as JSON, `auth_time` as seconds since the epoch.
pub fn oidc_mfa_is_fresh(amr: Option<&str>, auth_time: Option<&str>, now: DateTime<Utc>) -> bool {
    let Some(amr) = amr else { return false };
    let has_mfa = amr
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|method| method.eq_ignore_ascii_case("mfa"));
    let Some(auth_time) = auth_time.and_then(|t| t.trim().parse::<i64>().ok()) else {
        return false;
    };
    let age = now.timestamp() - auth_time;
    has_mfa && (0..=OIDC_MFA_FRESHNESS_SECS).contains(&age)
}

/// The refusal for a missing code where one is required.
pub fn code_required() -> PimError {
    PimError::refused("mfa_required", "the policy requires a one-time code from your app here")
}

/// The refusal for a wrong, stale or malformed code.
pub fn code_invalid() -> PimError {
    PimError::refused("mfa_invalid", "the one-time code is wrong or no longer current")
}

/// The refusal for a code whose step was already used.
pub fn code_used() -> PimError {
    PimError::refused("mfa_code_used", "this one-time code was already used; wait for the next")
}

/// The refusal for a person without an active enrolment.
pub fn not_enrolled(person: &str) -> PimError {
    PimError::refused(
        "mfa_not_enrolled",
        format!("{person} has no confirmed one-time code app; enrol with POST /mfa/enrollment"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// RFC 6238 appendix B's SHA-1 secret and vectors (the last six digits of each).
    const RFC_SECRET: &[u8] = b"12345678901234567890";

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(seconds, 0).unwrap()
    }

    #[test]
    fn codes_match_the_rfc_6238_vectors() {
        let vectors = [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ];
        for (seconds, code) in vectors {
            assert_eq!(code_at(RFC_SECRET, at(seconds)).unwrap(), code, "{seconds}");
            let step = matching_step(RFC_SECRET, code, at(seconds)).unwrap();
            assert_eq!(step, seconds as u64 / STEP_SECS);
        }
    }

    #[test]
    fn one_step_of_skew_either_way_and_no_more() {
        let now = at(1_234_567_890);
        let code = code_at(RFC_SECRET, now).unwrap();
        let step = now.timestamp() as u64 / STEP_SECS;
        for (offset, expected) in [(-60, None), (-30, Some(step)), (30, Some(step)), (60, None)] {
            let checked = at(now.timestamp() + offset);
            assert_eq!(matching_step(RFC_SECRET, &code, checked), expected, "{offset}");
        }
    }

    #[test]
    fn malformed_and_wrong_codes_match_nothing() {
        let now = at(1_234_567_890);
        for code in ["", "00592", "0059245", "00592a", "١٢٣٤٥٦", "999999"] {
            assert_eq!(matching_step(RFC_SECRET, code, now), None, "{code}");
        }
    }

    #[test]
    fn codes_and_secrets_never_show_in_debug_output() {
        let code: OneTimeCode = serde_json::from_str("\"287082\"").unwrap();
        assert_eq!(code.as_str(), "287082");
        assert!(!format!("{code:?}").contains("287082"));
        let secret = NewSecret::generate();
        let shown = format!("{secret:?}");
        assert!(!shown.contains(&secret.base32) && !shown.contains(&format!("{:?}", secret.bytes)));
    }

    #[test]
    fn a_new_secret_enrols_through_its_uri() {
        let secret = NewSecret::generate();
        assert_eq!(secret.bytes.len(), SECRET_BYTES);
        assert_ne!(secret.bytes, NewSecret::generate().bytes);
        let uri = secret.otpauth_uri("alice@example.com");
        assert_eq!(
            uri,
            format!(
                "otpauth://totp/pim:alice@example.com?secret={}&issuer=pim&algorithm=SHA1&digits=6&period=30",
                secret.base32
            )
        );
        let decoded = Secret::try_from_base32(&secret.base32).unwrap();
        assert_eq!(decoded.as_bytes(), secret.bytes.as_slice());
    }

    #[test]
    fn oidc_mfa_counts_only_when_asserted_and_fresh() {
        let now = at(1_800_000_000);
        let fresh = (now.timestamp() - 60).to_string();
        let stale = (now.timestamp() - 301).to_string();
        let future = (now.timestamp() + 5).to_string();
        assert!(oidc_mfa_is_fresh(Some("[pwd mfa]"), Some(&fresh), now));
        assert!(oidc_mfa_is_fresh(Some(r#"["otp","mfa"]"#), Some(&fresh), now));
        assert!(!oidc_mfa_is_fresh(Some("[pwd]"), Some(&fresh), now));
        assert!(!oidc_mfa_is_fresh(Some("[mfax]"), Some(&fresh), now));
        assert!(!oidc_mfa_is_fresh(Some("[mfa]"), Some(&stale), now));
        assert!(!oidc_mfa_is_fresh(Some("[mfa]"), Some(&future), now));
        assert!(!oidc_mfa_is_fresh(Some("[mfa]"), None, now));
        assert!(!oidc_mfa_is_fresh(None, Some(&fresh), now));
    }
}
