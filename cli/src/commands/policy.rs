//! `pim policy check` and `pim policy explain`: the policy document, checked and explained
//! offline with the same code the functions run.

use chrono::{DateTime, Utc};
use clap::Subcommand;
use pim::catalog::{Catalog, Severity, check_document, explain};
use pim::duration::parse_duration;
use pim::identity::Principal;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy document; every problem is reported with line and column.
    ///
    /// Exits 0 when the document has no error (warnings are printed), 1 otherwise.
    ///
    /// Example: pim policy check infra/policy.example.yaml
    Check {
        /// The policy document (YAML).
        file: String,
        /// Treat warnings as errors.
        #[arg(long)]
        strict: bool,
    },
    /// Show whether a principal may request a role, which rules apply, who would approve,
    /// and the IAM policy a grant would carry.
    ///
    /// Example: pim policy explain --policy infra/policy.example.yaml
    ///          --principal arn:aws:sts::123456789012:assumed-role/engineer/alice --role prod-admin
    Explain {
        /// The policy document (YAML).
        #[arg(long)]
        policy: String,
        /// The principal (IAM ARN, or oidc:<subject>).
        #[arg(long)]
        principal: String,
        /// The catalog role.
        #[arg(long)]
        role: String,
        /// The duration asked for (PT1H, 90m, 1h30m, seconds); the role's default if absent.
        #[arg(long = "for")]
        duration: Option<String>,
        /// When the request would be made (RFC 3339); now if absent.
        #[arg(long)]
        at: Option<String>,
    },
}

/// Runs one policy command.
pub fn run(command: PolicyCommand) -> ExitCode {
    match command {
        PolicyCommand::Check { file, strict } => check(&file, strict),
        PolicyCommand::Explain { policy, principal, role, duration, at } => {
            explain_request(&policy, &principal, &role, duration.as_deref(), at.as_deref())
        }
    }
}

fn check(file: &str, strict: bool) -> ExitCode {
    let source = match std::fs::read_to_string(file) {
        Ok(source) => source,
        Err(err) => {
            eprintln!("pim: cannot read {file}: {err}");
            return ExitCode::from(1);
        }
    };
    let report = check_document(&source);
    print!("{}", report.render(file));
    let errors = report.problems.iter().filter(|p| p.severity == Severity::Error).count();
    let warnings = report.problems.len() - errors;
    println!("{file}: {errors} error(s), {warnings} warning(s)");
    if errors > 0 || (strict && warnings > 0) { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

fn explain_request(
    file: &str,
    principal: &str,
    role: &str,
    duration: Option<&str>,
    at: Option<&str>,
) -> ExitCode {
    let usage = |message: String| {
        eprintln!("pim: {message}");
        ExitCode::from(2)
    };
    let catalog = match Catalog::from_file(file) {
        Ok(catalog) => catalog,
        Err(err) => {
            eprintln!("pim: {err}\nrun `pim policy check {file}` for every problem");
            return ExitCode::from(1);
        }
    };
    let Ok(principal) = Principal::from_policy(principal) else {
        return usage(format!("'{principal}' is not a principal (an IAM ARN or oidc:<subject>)"));
    };
    let secs = match duration.map(parse_duration).transpose() {
        Ok(secs) => secs,
        Err(err) => return usage(err.to_string()),
    };
    let at = match at.map(|text| text.parse::<DateTime<Utc>>()).transpose() {
        Ok(at) => at.unwrap_or_else(Utc::now),
        Err(err) => return usage(format!("--at: {err}; use RFC 3339 like 2026-12-03T10:00:00Z")),
    };
    print!("{}", explain(&catalog, &principal, role, secs, at));
    ExitCode::SUCCESS
}
