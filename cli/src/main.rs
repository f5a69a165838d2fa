//! `pim`, the engineers' command line. One module per command group under `commands`; the
//! API client, settings file, output and exit statuses beside them. This file only parses
//! the arguments and hands over.

mod api;
mod commands;
mod config;
mod failure;
mod output;

use clap::{CommandFactory, Parser};
use std::process::ExitCode;

/// Just-in-time privileged access for AWS: ask for a role for a while, with a reason.
#[derive(Debug, Parser)]
#[command(
    name = "pim",
    version,
    after_help = "Examples:
  pim roles
  pim request prod-readonly --for 1h --reason \"INC-1234: reading logs\" --wait
  pim list --active
  pim revoke grant-4f2a...

Calls are signed with SigV4 using the standard AWS credential chain (--profile, AWS_PROFILE,
IAM Identity Center, credential_process, environment). Exit status: 0 done, 1 other failure,
2 usage, 3 refused by policy, 4 denied, 5 expired, 130 interrupted while waiting."
)]
struct Cli {
    #[command(subcommand)]
    command: commands::Command,
    #[command(flatten)]
    global: commands::Global,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    commands::run(cli.command, cli.global, Cli::command).await
}
