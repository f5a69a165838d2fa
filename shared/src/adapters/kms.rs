//! [`LinkSigner`] on KMS HMAC keys: `GenerateMac` and `VerifyMac` with HMAC-SHA-256, so the
//! link key never leaves KMS.

use super::{aws_error, error_code};
use crate::error::Result;
use crate::ports::LinkSigner;
use async_trait::async_trait;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::MacAlgorithmSpec;

/// Signs and verifies link tokens with one KMS HMAC key.
#[derive(Debug, Clone)]
pub struct KmsLinkSigner {
    client: aws_sdk_kms::Client,
    key_id: String,
}

impl KmsLinkSigner {
    /// A signer using the KMS key `key_id` (id, ARN or alias).
    pub fn new(client: aws_sdk_kms::Client, key_id: impl Into<String>) -> Self {
        Self { client, key_id: key_id.into() }
    }
}

#[async_trait]
impl LinkSigner for KmsLinkSigner {
    fn key_id(&self) -> &str {
        &self.key_id
    }

    async fn mac(&self, message: &[u8]) -> Result<Vec<u8>> {
        let output = self
            .client
            .generate_mac()
            .key_id(&self.key_id)
            .mac_algorithm(MacAlgorithmSpec::HmacSha256)
            .message(Blob::new(message))
            .send()
            .await
            .map_err(|err| aws_error("kms:GenerateMac", err))?;
        Ok(output.mac.map(Blob::into_inner).unwrap_or_default())
    }

    async fn verify(&self, message: &[u8], tag: &[u8]) -> Result<bool> {
        let outcome = self
            .client
            .verify_mac()
            .key_id(&self.key_id)
            .mac_algorithm(MacAlgorithmSpec::HmacSha256)
            .message(Blob::new(message))
            .mac(Blob::new(tag))
            .send()
            .await;
        match outcome {
            Ok(output) => Ok(output.mac_valid),
            // Real KMS raises on a wrong tag; the emulator answers false. Both mean "forged".
            Err(err) if error_code(&err) == Some("KMSInvalidMacException") => Ok(false),
            Err(err) => Err(aws_error("kms:VerifyMac", err)),
        }
    }
}
