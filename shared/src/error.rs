//! The one error type of the domain.
//!
//! Refusals carry a stable machine `code` (part of the API: clients and tests match on it)
//! and a sentence for people. Failures of AWS calls keep the SDK error as their source, so
//! logs show the real cause, and say whether a retry can help.

use std::error::Error as StdError;

/// A boxed error from a dependency (the SDK, serde), kept as the source.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Shorthand for results in the domain.
pub type Result<T, E = PimError> = std::result::Result<T, E>;

/// What went wrong, in the domain's terms.
#[derive(Debug, thiserror::Error)]
pub enum PimError {
    /// The input is malformed or out of bounds (HTTP 400).
    #[error("{message}")]
    Invalid { code: &'static str, message: String },

    /// The input is well formed but policy or security refuses it (HTTP 403).
    #[error("{message}")]
    Refused { code: &'static str, message: String },

    /// The thing asked for does not exist or is not the caller's to see (HTTP 404).
    #[error("{message}")]
    NotFound { code: &'static str, message: String },

    /// The request is no longer in a state that allows this (HTTP 409).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },

    /// The caller asked more often than policy allows; a retry can succeed after
    /// `retry_after_secs` (HTTP 429).
    #[error("{message}")]
    TooMany { code: &'static str, message: String, retry_after_secs: u64 },

    /// The body is larger than the API accepts (HTTP 413).
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: usize },

    /// The body is not of the media type the endpoint takes (HTTP 415).
    #[error("expected a body of type {expected}")]
    UnsupportedMediaType { expected: &'static str },

    /// An AWS call failed; `retryable` says whether trying again can help.
    #[error("{operation} failed")]
    Aws {
        operation: &'static str,
        retryable: bool,
        #[source]
        source: BoxError,
    },

    /// Access could not be put in place and was rolled back (HTTP 502).
    #[error("access was not granted: {reason}")]
    GrantFailed {
        reason: String,
        #[source]
        source: Option<Box<PimError>>,
    },

    /// A setting is missing or malformed; the function cannot start.
    #[error("configuration: {0}")]
    Config(String),

    /// A stored item could not be read back; a human must look.
    #[error("stored record {key} is unreadable: {reason}")]
    Corrupt { key: String, reason: String },
}

impl PimError {
    /// A 400 refusal with its stable code.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid { code, message: message.into() }
    }

    /// A 403 refusal with its stable code.
    pub fn refused(code: &'static str, message: impl Into<String>) -> Self {
        Self::Refused { code, message: message.into() }
    }

    /// A 404 with its stable code.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::NotFound { code, message: message.into() }
    }

    /// A 409 with its stable code.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict { code, message: message.into() }
    }

    /// An AWS failure, keeping the SDK error as the source.
    pub fn aws(operation: &'static str, retryable: bool, source: impl Into<BoxError>) -> Self {
        Self::Aws { operation, retryable, source: source.into() }
    }

    /// The HTTP status this error maps to.
    pub fn status(&self) -> u16 {
        match self {
            Self::Invalid { .. } => 400,
            Self::Refused { .. } => 403,
            Self::NotFound { .. } => 404,
            Self::Conflict { .. } => 409,
            Self::TooMany { .. } => 429,
            Self::TooLarge { .. } => 413,
            Self::UnsupportedMediaType { .. } => 415,
            Self::Aws { .. } | Self::GrantFailed { .. } => 502,
            Self::Config(_) | Self::Corrupt { .. } => 500,
        }
    }

    /// The stable machine code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { code, .. }
            | Self::Refused { code, .. }
            | Self::NotFound { code, .. }
            | Self::Conflict { code, .. }
            | Self::TooMany { code, .. } => code,
            Self::TooLarge { .. } => "body_too_large",
            Self::UnsupportedMediaType { .. } => "unsupported_media_type",
            Self::Aws { .. } => "upstream_failure",
            Self::GrantFailed { .. } => "grant_failed",
            Self::Config(_) => "misconfigured",
            Self::Corrupt { .. } => "corrupt_record",
        }
    }

    /// Whether the caller may try the same thing again and expect a different outcome.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Aws { retryable, .. } => *retryable,
            Self::GrantFailed { .. } => true,
            _ => false,
        }
    }

    /// Whether this is a refusal of the caller's input (4xx) rather than a fault of ours.
    pub fn is_refusal(&self) -> bool {
        self.status() < 500
    }
}
