//! The command groups of `pim`, one module each.

pub mod audit;

use clap::Subcommand;
use std::process::ExitCode;

/// Every command group.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read and verify the audit trail.
    Audit(audit::AuditArgs),
}

/// Runs one command and turns its outcome into the process exit status.
pub async fn run(command: Command) -> ExitCode {
    match command {
        Command::Audit(args) => audit::run(args).await,
    }
}
