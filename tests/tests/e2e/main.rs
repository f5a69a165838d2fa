//! End-to-end tests: the functions' handlers behind the loopback gateway, over real HTTP,
//! against the AWS emulator through the official SDK. One test binary, so the SDK is linked
//! once.

mod alerts;
mod audit;
mod config;
mod events;
mod extensions;
mod holders;
mod lifecycle;
mod links;
mod managed;
mod mfa;
mod policy;
mod races;
mod refusals;
mod reviews;
mod revocation;
mod visibility;
