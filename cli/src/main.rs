//! `pim`, the engineers' command line. Each command group lives in its own module; `main`
//! parses the arguments and hands over.
//!
//! Exit status: 0 success, 1 the document or operation failed, 2 usage error.

mod policy;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "pim", version, about = "Just-in-time privileged access for AWS")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check and explain the policy document.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Policy(command) => policy::run(command),
    }
}
