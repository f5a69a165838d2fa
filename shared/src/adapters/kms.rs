//! KMS: [`LinkSigner`] on HMAC keys (`GenerateMac` and `VerifyMac` with HMAC-SHA-256, so
//! the link key never leaves KMS), [`CheckpointSigner`] on an asymmetric signing key, and
//! [`SecretKeeper`] on a symmetric key (`Encrypt`/`Decrypt` with an encryption context).

use super::{aws_error, error_code};
use crate::error::Result;
use crate::ports::{CheckpointSigner, LinkSigner, SecretKeeper};
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

/// Seals MFA secrets with one symmetric KMS key; the context is the encryption context, so
/// KMS refuses to open a secret for any other person (and key policies can name it).
#[derive(Debug, Clone)]
pub struct KmsSecretKeeper {
    client: aws_sdk_kms::Client,
    key_id: String,
}

impl KmsSecretKeeper {
    /// A keeper using the KMS key `key_id` (id, ARN or alias).
    pub fn new(client: aws_sdk_kms::Client, key_id: impl Into<String>) -> Self {
        Self { client, key_id: key_id.into() }
    }
}

fn encryption_context(context: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    context.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[async_trait]
impl SecretKeeper for KmsSecretKeeper {
    async fn seal(&self, plaintext: &[u8], context: &[(&str, &str)]) -> Result<Vec<u8>> {
        let output = self
            .client
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(Blob::new(plaintext))
            .set_encryption_context(Some(encryption_context(context)))
            .send()
            .await
            .map_err(|err| aws_error("kms:Encrypt", err))?;
        Ok(output.ciphertext_blob.map(Blob::into_inner).unwrap_or_default())
    }

    async fn open(&self, sealed: &[u8], context: &[(&str, &str)]) -> Result<Vec<u8>> {
        let output = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(sealed))
            .set_encryption_context(Some(encryption_context(context)))
            .send()
            .await
            .map_err(|err| aws_error("kms:Decrypt", err))?;
        Ok(output.plaintext.map(Blob::into_inner).unwrap_or_default())
    }
}
