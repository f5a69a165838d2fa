//! KMS: [`LinkSigner`] on HMAC keys (`GenerateMac` and `VerifyMac` with HMAC-SHA-256, so
//! the link key never leaves KMS), and [`CheckpointSigner`] on an asymmetric signing key.

use super::{aws_error, error_code};
use crate::error::Result;
use crate::ports::{CheckpointSigner, LinkSigner};
use async_trait::async_trait;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MacAlgorithmSpec, MessageType, SigningAlgorithmSpec};

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

/// Signs chain checkpoints with a KMS asymmetric key (`ECC_NIST_P256`, `SIGN_VERIFY`) using
/// ECDSA with SHA-256; the private key never leaves KMS. Anyone with `kms:Verify` on the key
/// (or its public key) can check a checkpoint; nobody without `kms:Sign` can make one.
#[derive(Debug, Clone)]
pub struct KmsCheckpointSigner {
    client: aws_sdk_kms::Client,
    key_id: String,
}

impl KmsCheckpointSigner {
    /// A signer using the KMS key `key_id` (id, ARN or alias).
    pub fn new(client: aws_sdk_kms::Client, key_id: impl Into<String>) -> Self {
        Self { client, key_id: key_id.into() }
    }
}

#[async_trait]
impl CheckpointSigner for KmsCheckpointSigner {
    fn key_id(&self) -> &str {
        &self.key_id
    }

    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let output = self
            .client
            .sign()
            .key_id(&self.key_id)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .message_type(MessageType::Raw)
            .message(Blob::new(message))
            .send()
            .await
            .map_err(|err| aws_error("kms:Sign", err))?;
        Ok(output.signature.map(Blob::into_inner).unwrap_or_default())
    }

    async fn verify(&self, key_id: &str, message: &[u8], signature: &[u8]) -> Result<bool> {
        let outcome = self
            .client
            .verify()
            .key_id(key_id)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .message_type(MessageType::Raw)
            .message(Blob::new(message))
            .signature(Blob::new(signature))
            .send()
            .await;
        match outcome {
            Ok(output) => Ok(output.signature_valid),
            // Real KMS raises on a wrong signature; the emulator answers false.
            Err(err) if error_code(&err) == Some("KMSInvalidSignatureException") => Ok(false),
            Err(err) => Err(aws_error("kms:Verify", err)),
        }
    }
}
