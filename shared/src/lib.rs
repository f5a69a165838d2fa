//! The domain of pim, shared by every function, the local stack and the tests.
//!
//! A map of the crate, in the order a request travels through it:
//!
//! - [`identity`]: who the caller is, taken from the API Gateway authorizer context.
//! - [`catalog`]: the policy document: people, privileged roles, who may request and approve.
//! - [`duration`]: the durations people type (`PT1H`, `90m`, seconds) and their bounds.
//! - [`model`]: requests and grants, and the state machine that moves them.
//! - [`render`]: the IAM policy document of a grant, every statement time-bounded.
//! - [`managed`]: managed policies a role names, read from IAM, checked and rendered.
//! - [`token`]: the signed approval links and their codec.
//! - [`mfa`]: one-time codes (TOTP) people enrol, and fresh OIDC multi-factor sign-ins.
//! - [`audit`]: the versioned audit record written with every transition and refusal, its
//!   hash chain and signed checkpoints, the verifier, and the filters and receipts of reading.
//! - [`events`]: the lifecycle events integrations receive on the EventBridge bus, derived
//!   from audit records, and their versioned schema.
//! - [`ports`]: the traits the domain needs from the outside world (store, IAM, scheduler,
//!   mail, MAC signing, the audit chain, the audit stream, checkpoint signing, the event
//!   bus), with [`clock`] for time.
//! - [`service`]: the domain operations the functions call, one per use case.
//! - [`adapters`]: one module per AWS service implementing the ports with the official SDK
//!   (EventBridge only with the `events` feature, which only the audit shipper needs).
//! - [`backoff`]: capped, jittered retries of calls that must eventually succeed.
//! - [`metrics`]: operational metrics as CloudWatch embedded metric format lines.
//! - [`config`]: the typed settings every function reads once, at cold start.
//! - [`api`]: problem documents and HTTP helpers shared by the HTTP functions.
//! - [`error`]: the one domain error type.

pub mod adapters;
pub mod api;
pub mod audit;
pub mod backoff;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod duration;
pub mod error;
pub mod events;
pub mod identity;
pub mod managed;
pub mod metrics;
pub mod mfa;
pub mod model;
pub mod ports;
pub mod render;
pub mod service;
pub mod telemetry;
pub mod token;

pub use error::{PimError, Result};
