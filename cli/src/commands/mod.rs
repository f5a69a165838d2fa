//! The command groups of `pim`, one module each.

pub mod audit;
pub mod policy;

use clap::Subcommand;
use std::process::ExitCode;

/// Every command group.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read and verify the audit trail.
    Audit(audit::AuditArgs),
    /// Check and explain the policy document.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
}

/// Runs one command and turns its outcome into the process exit status.
pub async fn run(command: Command) -> ExitCode {
    match command {
        Command::Audit(args) => audit::run(args).await,
        Command::Policy(command) => policy::run(command),
    }
}
