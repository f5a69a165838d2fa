//! The whole system on one machine, against the AWS emulator: what `scripts/local` runs,
//! and what the end-to-end tests build on.
//!
//! - [`auth`]: local access keys per person, and the SigV4 verification of the gateway.
//! - [`emulator`]: starts the single-threaded emulator and stops it on drop.
//! - [`provision`]: creates the resources `infra/template.yaml` declares, read from the
//!   template itself so the two cannot drift.
//! - [`gateway`]: serves the API and the approval pages on loopback the way API Gateway
//!   would hand them to the functions.
//! - [`firer`]: delivers due expiry schedules to revocation (the emulator never fires them).
//! - [`mailbox`]: reads the mail the emulator accepted.
//! - [`subscriber`]: reads the lifecycle events a rule on the bus delivered to a log group.

pub mod auth;
pub mod emulator;
pub mod firer;
pub mod gateway;
pub mod mailbox;
pub mod provision;
pub mod subscriber;
