//! `pim`, the engineers' command line. One module per command group under `commands`;
//! this file only parses the arguments and hands over.

mod commands;

use clap::Parser;
use std::process::ExitCode;

/// Just-in-time privileged access for AWS.
#[derive(Debug, Parser)]
#[command(name = "pim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: commands::Command,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    commands::run(cli.command).await
}
