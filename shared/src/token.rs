//! Approval links. A link carries a token that binds the token version, the MAC key id, the
//! request, the approver, a one-time link id and an expiry; the MAC is computed by KMS
//! (`GenerateMac`, HMAC-SHA-256) so the key never leaves it.
//!
//! Wire form: `base64url(claims JSON) "." base64url(MAC over the first part)`. Anything that
//! does not parse, names another key, carries a MAC of the wrong length or fails
//! verification is refused as `invalid_link` (403) before the request is even read.

use crate::error::{PimError, Result};
use crate::ports::LinkSigner;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The token format this build issues and accepts.
pub const TOKEN_VERSION: u8 = 1;

/// Tokens longer than this are refused unread.
pub const MAX_TOKEN_LEN: usize = 1024;

/// HMAC-SHA-256 tags are 32 bytes.
const MAC_LEN: usize = 32;

/// What a link token asserts, once verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkClaims {
    /// Token format version.
    pub v: u8,
    /// The MAC key's id.
    pub kid: String,
    /// The request the link decides.
    pub rid: String,
    /// The approver (person id) the link was sent to.
    pub apr: String,
    /// The one-time link id, consumed by the decision.
    pub lid: String,
    /// Expiry, seconds since the epoch; the link is refused at and after this second.
    pub exp: i64,
    /// For an access-review link, the person it decides about (`rid` is then the campaign);
    /// absent from approval links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
}

impl LinkClaims {
    /// The expiry as a time.
    pub fn expires_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.exp, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

/// Signs `claims` with `signer` and returns the token.
pub async fn issue(signer: &dyn LinkSigner, claims: &LinkClaims) -> Result<String> {
    let json = serde_json::to_vec(claims).expect("claims serialize");
    let payload = URL_SAFE_NO_PAD.encode(json);
    let mac = signer.mac(payload.as_bytes()).await?;
    Ok(format!("{payload}.{}", URL_SAFE_NO_PAD.encode(mac)))
}

/// Verifies `token` and returns its claims if it is authentic and unexpired at `now`.
pub async fn verify(
    signer: &dyn LinkSigner,
    token: &str,
    now: DateTime<Utc>,
) -> Result<LinkClaims> {
    let (payload, claims, mac) = decode(token)?;
    if claims.kid != signer.key_id() {
        return Err(invalid());
    }
    if !signer.verify(payload.as_bytes(), &mac).await? {
        return Err(invalid());
    }
    if now.timestamp() >= claims.exp {
        return Err(PimError::refused("link_expired", "this approval link has expired"));
    }
    Ok(claims)
}

/// Splits and decodes a token without verifying it.
fn decode(token: &str) -> Result<(&str, LinkClaims, Vec<u8>)> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(invalid());
    }
    let (payload, mac) = token.split_once('.').ok_or_else(invalid)?;
    let mac = URL_SAFE_NO_PAD.decode(mac).map_err(|_| invalid())?;
    let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| invalid())?;
    let claims: LinkClaims = serde_json::from_slice(&json).map_err(|_| invalid())?;
    if claims.v != TOKEN_VERSION || mac.len() != MAC_LEN {
        return Err(invalid());
    }
    Ok((payload, claims, mac))
}

fn invalid() -> PimError {
    PimError::refused("invalid_link", "this approval link is not valid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use hmac::{KeyInit, Mac};
    use proptest::prelude::*;

    type HmacSha256 = hmac::Hmac<sha2::Sha256>;

    /// An in-memory HMAC signer standing in for KMS in codec tests.
    struct TestSigner(&'static str);

    #[async_trait]
    impl LinkSigner for TestSigner {
        fn key_id(&self) -> &str {
            self.0
        }
        async fn mac(&self, message: &[u8]) -> Result<Vec<u8>> {
            let mut mac = HmacSha256::new_from_slice(self.0.as_bytes()).unwrap();
            mac.update(message);
            Ok(mac.finalize().into_bytes().to_vec())
        }
        async fn verify(&self, message: &[u8], tag: &[u8]) -> Result<bool> {
            let mut mac = HmacSha256::new_from_slice(self.0.as_bytes()).unwrap();
            mac.update(message);
            Ok(mac.verify_slice(tag).is_ok())
        }
    }

    fn claims() -> LinkClaims {
        LinkClaims {
            v: TOKEN_VERSION,
            kid: "key-1".into(),
            rid: "req-1".into(),
            apr: "bob".into(),
            lid: "link-1".into(),
            exp: 1_800_000_000,
            sub: None,
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(future)
    }

    #[test]
    fn a_token_verifies_until_its_expiry_second() {
        let signer = TestSigner("key-1");
        let token = block_on(issue(&signer, &claims())).unwrap();
        assert_eq!(block_on(verify(&signer, &token, at(1_799_999_999))).unwrap(), claims());
        let err = block_on(verify(&signer, &token, at(1_800_000_000))).unwrap_err();
        assert_eq!(err.code(), "link_expired");
    }

    #[test]
    fn another_key_id_or_key_is_refused() {
        let token = block_on(issue(&TestSigner("key-1"), &claims())).unwrap();
        let err = block_on(verify(&TestSigner("key-2"), &token, at(0))).unwrap_err();
        assert_eq!(err.code(), "invalid_link");
    }

    #[test]
    fn swapped_fields_are_refused() {
        let signer = TestSigner("key-1");
        let token = block_on(issue(&signer, &claims())).unwrap();
        let (_, mac) = token.split_once('.').unwrap();
        for forged in [
            LinkClaims { rid: "req-2".into(), ..claims() },
            LinkClaims { apr: "alice".into(), ..claims() },
            LinkClaims { lid: "link-2".into(), ..claims() },
            LinkClaims { exp: 1_900_000_000, ..claims() },
        ] {
            let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
            let err = block_on(verify(&signer, &format!("{payload}.{mac}"), at(0))).unwrap_err();
            assert_eq!(err.code(), "invalid_link");
        }
    }

    proptest! {
        #[test]
        fn any_change_to_a_token_is_refused(index in 0usize..400, byte in any::<u8>(), cut in 0usize..400) {
            let signer = TestSigner("key-1");
            let token = block_on(issue(&signer, &claims())).unwrap();
            let mut bytes = token.clone().into_bytes();
            let index = index % bytes.len();
            prop_assume!(bytes[index] != byte);
            bytes[index] = byte;
            let flipped = String::from_utf8_lossy(&bytes).into_owned();
            let truncated = &token[..cut % token.len()];
            let oversize = format!("{token}{}", "A".repeat(MAX_TOKEN_LEN));
            for candidate in [flipped.as_str(), truncated, oversize.as_str()] {
                let err = block_on(verify(&signer, candidate, at(0))).unwrap_err();
                prop_assert_eq!(err.code(), "invalid_link");
            }
        }
    }
}
