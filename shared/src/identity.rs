//! Who is calling. The caller is whoever API Gateway authenticated: an IAM principal (the
//! IAM authorizer's caller ARN) or an OIDC subject (the JWT authorizer's claims). Nothing in
//! a request body can change it.
//!
//! Principals are compared case-insensitively after trimming, so `Alice` and `alice` are one
//! person: IAM names are unique regardless of case, and a spelling trick must never let a
//! requester count as someone else (self-approval, quorum).

use crate::error::{PimError, Result};
use std::fmt;

/// The longest principal accepted; IAM ARNs are at most 2048 characters.
const MAX_PRINCIPAL_LEN: usize = 2048;

/// An authenticated principal in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal(String);

impl Principal {
    /// An IAM principal from the caller ARN API Gateway reports (user, role or assumed role).
    pub fn from_iam_arn(arn: &str) -> Result<Self> {
        let canonical = canonical(arn)?;
        let parts: Vec<&str> = canonical.splitn(6, ':').collect();
        let well_formed = parts.len() == 6
            && parts[0] == "arn"
            && matches!(parts[2], "iam" | "sts")
            && !parts[4].is_empty()
            && !parts[5].is_empty();
        if !well_formed {
            return Err(unauthenticated());
        }
        Ok(Self(canonical))
    }

    /// An OIDC principal from the subject claim the JWT authorizer validated.
    pub fn from_oidc_subject(subject: &str) -> Result<Self> {
        Ok(Self(format!("oidc:{}", canonical(subject)?)))
    }

    /// A principal as written in the policy document (`arn:...` or `oidc:...`).
    pub fn from_policy(text: &str) -> Result<Self> {
        match text.trim().strip_prefix("oidc:") {
            Some(subject) => Self::from_oidc_subject(subject),
            None => Self::from_iam_arn(text),
        }
    }

    /// The canonical text of the principal.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn canonical(text: &str) -> Result<String> {
    let trimmed = text.trim();
    let acceptable = !trimmed.is_empty()
        && trimmed.len() <= MAX_PRINCIPAL_LEN
        && trimmed.chars().all(|c| c.is_ascii_graphic());
    if !acceptable {
        return Err(unauthenticated());
    }
    Ok(trimmed.to_ascii_lowercase())
}

fn unauthenticated() -> PimError {
    PimError::refused("unauthenticated", "the caller's identity is missing or malformed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_principal_are_equal() {
        let a =
            Principal::from_iam_arn("arn:aws:sts::111122223333:assumed-role/Dev/Alice").unwrap();
        let b =
            Principal::from_iam_arn(" ARN:AWS:STS::111122223333:assumed-role/dev/alice ").unwrap();
        assert_eq!(a, b);
        let c = Principal::from_policy("oidc:Alice@Example.com").unwrap();
        assert_eq!(c, Principal::from_oidc_subject("alice@example.com").unwrap());
    }

    #[test]
    fn malformed_identities_are_refused() {
        for arn in
            ["", "alice", "arn:aws:s3:::bucket", "arn:aws:iam::123:", "arn:aws:iam::123:user/a b"]
        {
            assert_eq!(
                Principal::from_iam_arn(arn).unwrap_err().code(),
                "unauthenticated",
                "{arn}"
            );
        }
        assert!(Principal::from_oidc_subject("with\ncontrol").is_err());
    }
}
