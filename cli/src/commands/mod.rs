//! The command groups of `pim`, one module each.
//!
//! - [`access`]: `roles`, `request`, `status`, `list`, `cancel`, `extend`, `revoke`: the API.
//! - [`mfa`]: `mfa enroll`, with the QR code in the terminal.
//! - [`configure`]: `configure`, the settings file.
//! - [`oversight`]: `who-can`, `what-can`, `report` and `review start`, for security leads
//!   and auditors.
//! - [`policy`] and [`audit`]: the policy document and the audit trail, offline or from AWS.

pub mod access;
pub mod audit;
pub mod configure;
pub mod mfa;
pub mod oversight;
pub mod policy;

use crate::api::Target;
use crate::failure::{Exit, Failure};
use crate::output::{Clock, Style};
use clap::{Args, Subcommand, ValueEnum};
use std::process::ExitCode;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Tables and sentences for people.
    Table,
    /// One JSON document on standard output, with the API's field names, for scripts.
    Json,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// The AWS profile to sign with (else AWS_PROFILE, else the default credential chain).
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// The API's AWS region (else the endpoint's host name, `pim configure`, AWS_REGION or
    /// the profile's region).
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,
    /// The pim API's URL (else PIM_ENDPOINT, else the URL `pim configure` saved).
    #[arg(long, global = true, env = "PIM_ENDPOINT", hide_env_values = true, value_name = "URL")]
    pub endpoint: Option<String>,
    /// `table` for people, `json` for scripts.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

impl Global {
    /// Where and as whom to call the API.
    pub fn target(&self) -> Target {
        Target {
            profile: self.profile.clone(),
            region: self.region.clone(),
            endpoint: self.endpoint.clone(),
        }
    }
}

/// Every command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the roles you may request, with maximum durations and who approves.
    #[command(after_help = "Example:\n  pim roles\n  pim roles --output json")]
    Roles,
    /// Ask for a role for a while.
    Request(access::RequestArgs),
    /// Show one request (or grant) in full, or your open requests.
    #[command(
        after_help = "Examples:\n  pim status               # your pending and active requests\n  pim status req-4f2a...   # one request, its approvals and grant\n  pim status grant-4f2a... # the request of a grant"
    )]
    Status {
        /// A request id (`req-…`) or grant id (`grant-…`).
        id: Option<String>,
    },
    /// List your requests, your live grants, or everyone's (administrators).
    List(access::ListArgs),
    /// Withdraw a pending request.
    #[command(after_help = "Example:\n  pim cancel req-4f2a...")]
    Cancel {
        /// The request id (`req-…`).
        id: String,
    },
    /// Make an active grant last longer: at once where policy allows, else by approval.
    Extend(access::ExtendArgs),
    /// End a grant now: your own (relinquish), or anyone's as an administrator.
    Revoke(access::RevokeArgs),
    /// Who may request a role, and under which approval rules.
    WhoCan(oversight::WhoCanArgs),
    /// What a person (or you) may request, and under which approval rules.
    WhatCan(oversight::WhatCanArgs),
    /// The auditors' report of a time range: every grant, and a summary (administrators).
    Report(oversight::ReportArgs),
    /// Access reviews: recertify who stays eligible for a role (administrators).
    #[command(subcommand)]
    Review(oversight::ReviewCommand),
    /// Enrol the one-time code app that policy may ask for.
    #[command(subcommand)]
    Mfa(mfa::MfaCommand),
    /// Save the API's URL (and region) so commands need no --endpoint.
    Configure(configure::ConfigureArgs),
    /// Print shell completions for bash, zsh or fish.
    #[command(
        after_help = "Examples:\n  pim completions bash > ~/.local/share/bash-completion/completions/pim\n  pim completions zsh > \"${fpath[1]}/_pim\"\n  pim completions fish > ~/.config/fish/completions/pim.fish"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Read and verify the audit trail.
    Audit(audit::AuditArgs),
    /// Check and explain the policy document.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
}

/// Runs one command and turns its outcome into the process exit status.
pub async fn run(
    command: Command,
    global: Global,
    cli: impl FnOnce() -> clap::Command,
) -> ExitCode {
    let outcome = match command {
        Command::Audit(args) => return audit::run(args).await,
        Command::Policy(command) => return policy::run(command),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut cli(), "pim", &mut std::io::stdout());
            Ok(())
        }
        Command::Configure(args) => configure::run(args, &global).await,
        Command::Mfa(command) => mfa::run(command, &global).await,
        Command::WhoCan(args) => oversight::who_can(args, &global).await,
        Command::WhatCan(args) => oversight::what_can(args, &global).await,
        Command::Report(args) => oversight::report(args, &global).await,
        Command::Review(command) => oversight::review(command, &global).await,
        command => access::run(command, &global, Clock::system()).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => report(failure, global.output),
    }
}

/// Prints a failure: the sentence and the fix on standard error, and with `--output json`
/// the problem document (or an equivalent) on standard output.
fn report(failure: Failure, output: Output) -> ExitCode {
    let style = Style::stderr();
    eprintln!("{} {}", style.error("pim:"), failure.message);
    if let Some(hint) = &failure.hint {
        eprintln!("  {hint}");
    }
    if output == Output::Json {
        let document = failure.document.clone().unwrap_or_else(
            || serde_json::json!({ "code": "cli_error", "detail": failure.message }),
        );
        let mut document = document;
        document["exit_code"] = serde_json::json!(failure.exit as u8);
        println!("{document}");
    }
    ExitCode::from(failure.exit as u8)
}

/// A usage failure for a value the user typed.
pub fn bad_value(flag: &str, err: impl std::fmt::Display) -> Failure {
    Failure::new(Exit::Usage, format!("{flag}: {err}"))
}
