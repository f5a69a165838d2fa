//! Adapters: the ports implemented with the official AWS SDK, one module per service.
//!
//! Clients are built once per process from one [`aws_config::SdkConfig`]; pointing
//! `AWS_ENDPOINT_URL` at the emulator moves all of them without a code path of its own.
//!
//! Every client speaks HTTPS through one client of our choosing, [`https_client`]: rustls
//! with the *ring* crypto provider. The SDK's default client (rustls on aws-lc-rs) would link
//! the aws-lc C library instead: 0.7 MB more of every function's binary, the same protocol.
//!
//! The EventBridge client is not among [`AwsClients`]: only the audit shipper puts events,
//! so its adapter (`eventbridge`) and client exist only with the crate's `events` feature,
//! and the functions that do not publish never build or link it.

pub mod cloudwatch_logs;
pub mod dynamodb;
#[cfg(feature = "events")]
pub mod eventbridge;
pub mod iam;
pub mod kms;
pub mod scheduler;
pub mod ses;

use crate::error::PimError;
use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

pub use cloudwatch_logs::CloudWatchAuditSink;
pub use dynamodb::DynamoRequestStore;
#[cfg(feature = "events")]
pub use eventbridge::EventBridgePublisher;
pub use iam::{IamInlinePolicyBinder, IamManagedPolicySource};
pub use kms::{KmsCheckpointSigner, KmsLinkSigner, KmsSecretKeeper};
pub use scheduler::EventBridgeExpiryScheduler;
pub use ses::SesMailer;

/// The HTTPS client of every SDK client: rustls on the *ring* provider, with the SDK's own
/// restrictions (TLS 1.2 and 1.3 only, AEAD cipher suites with forward secrecy) and server
/// certificates checked against the system's trusted roots.
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::rustls(tls::rustls_provider::CryptoMode::Ring))
        .build_https()
}

/// The SDK configuration loader every process starts from: the newest behaviour version
/// and [`https_client`]. Credentials, region and endpoint come from the environment unless
/// the caller sets them.
pub fn sdk_config_loader() -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https_client())
}

/// The SDK configuration of a function on Lambda, from what Lambda puts in its environment
/// and nothing else (see [`lambda_sdk_config_from`]).
pub fn lambda_sdk_config() -> crate::Result<aws_config::SdkConfig> {
    lambda_sdk_config_from(|name| std::env::var(name).ok())
}

/// The SDK configuration of a function from the environment variables `env` gives: the
/// region (`AWS_REGION`) and the execution role's credentials (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), which Lambda sets for the life of the
/// execution environment; the newest behaviour version's defaults (standard retries,
/// connect timeout, stalled-stream protection) and [`https_client`]. `AWS_ENDPOINT_URL`,
/// when set, points every client elsewhere (the benchmark's emulator). Fails naming the
/// first missing variable.
///
/// [`sdk_config_loader`] also looks for shared profiles, web identity tokens, container and
/// instance credentials: providers a function never uses, whose code (an STS client among
/// it) would be linked into every package.
pub fn lambda_sdk_config_from(
    env: impl Fn(&str) -> Option<String>,
) -> crate::Result<aws_config::SdkConfig> {
    let var = |name: &str| {
        env(name)
            .filter(|value| !value.is_empty())
            .ok_or_else(|| PimError::Config(format!("{name} is not set")))
    };
    let credentials = Credentials::new(
        var("AWS_ACCESS_KEY_ID")?,
        var("AWS_SECRET_ACCESS_KEY")?,
        var("AWS_SESSION_TOKEN").ok(),
        None,
        "lambda-environment",
    );
    let config = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(var("AWS_REGION")?))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .http_client(https_client())
        .retry_config(aws_config::retry::RetryConfig::standard());
    Ok(match var("AWS_ENDPOINT_URL") {
        Ok(url) => config.endpoint_url(url).build(),
        Err(_) => config.build(),
    })
}

/// The SDK clients of every service pim calls, built once from one shared configuration.
#[derive(Debug, Clone)]
pub struct AwsClients {
    /// CloudWatch Logs: the audit stream.
    pub logs: aws_sdk_cloudwatchlogs::Client,
    /// DynamoDB: requests, audit records, link ids.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// IAM: grant policies on requesters' roles.
    pub iam: aws_sdk_iam::Client,
    /// KMS: link MACs.
    pub kms: aws_sdk_kms::Client,
    /// EventBridge Scheduler: expiry schedules.
    pub scheduler: aws_sdk_scheduler::Client,
    /// SES v2: mail.
    pub ses: aws_sdk_sesv2::Client,
}

impl AwsClients {
    /// Builds every client from `config`.
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            logs: aws_sdk_cloudwatchlogs::Client::new(config),
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            iam: aws_sdk_iam::Client::new(config),
            kms: aws_sdk_kms::Client::new(config),
            scheduler: aws_sdk_scheduler::Client::new(config),
            ses: aws_sdk_sesv2::Client::new(config),
        }
    }
}

/// Error codes that mean "slow down" or "try again" in any AWS service.
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalServerError",
    "InternalServerException",
    "KMSInternalException",
];

/// Whether an SDK error can go away by itself: throttling, 5xx, timeouts, broken connections.
pub fn is_transient<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            service.raw().status().as_u16() >= 500
                || service.err().code().is_some_and(|code| TRANSIENT_CODES.contains(&code))
        }
        _ => false,
    }
}

/// Wraps an SDK error as a domain error, keeping it as the source.
pub fn aws_error<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> PimError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let retryable = is_transient(&err);
    PimError::aws(operation, retryable, err)
}

/// The service error code of an SDK error, if the service answered with one.
pub fn error_code<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Option<&str> {
    match err {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}
