//! `pim audit`: list records with filters, verify the chain, print a grant's receipt.
//!
//! Records are read from the audit log group (`--log-group`, or `PIM_AUDIT_LOG_GROUP`) or
//! from an export, one JSON document a line (`--file`). Exit status: 0 when the command did
//! what was asked (for `verify`: the chain is intact), 1 when `verify` found a problem or
//! `receipt` found no such grant, 2 when the records could not be read.

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use pim::adapters::{AwsClients, CloudWatchAuditSink, DynamoRequestStore, KmsCheckpointSigner};
use pim::audit::query::{Filter, receipt, records_of, table};
use pim::audit::verify::verify_stream;
use pim::ports::{AuditChain, AuditSink};
use std::process::ExitCode;

/// Where the records come from.
#[derive(Debug, Clone, Args)]
pub struct Source {
    /// The audit log group to read.
    #[arg(long, env = "PIM_AUDIT_LOG_GROUP", global = true)]
    log_group: Option<String>,
    /// An export of the stream to read instead: one JSON document a line.
    #[arg(long, global = true, conflicts_with = "log_group")]
    file: Option<std::path::PathBuf>,
}

/// `pim audit`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  pim audit --log-group /pim/audit --person alice --since 2026-12-01T00:00:00Z
  pim audit --file export.jsonl --action request. --json
  pim audit verify --log-group /pim/audit --table pim-requests
  pim audit receipt grant-4f2a... --log-group /pim/audit")]
pub struct AuditArgs {
    #[command(subcommand)]
    command: Option<AuditCommand>,
    #[command(flatten)]
    source: Source,
    #[command(flatten)]
    filter: FilterArgs,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Verify the chain against its signed checkpoints; the exit status says the result.
    #[command(
        after_help = "Example:\n  pim audit verify --log-group /pim/audit --table pim-requests"
    )]
    Verify {
        /// The table holding the chain head: also detects records cut off the end.
        #[arg(long, env = "PIM_TABLE")]
        table: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// One grant's story: request, justification, approvals, policy and window, expiry.
    #[command(after_help = "Example:\n  pim audit receipt grant-4f2a... --file export.jsonl")]
    Receipt {
        /// The grant id (`grant-…`).
        grant: String,
    },
}

/// Filters of the listing.
#[derive(Debug, Args)]
struct FilterArgs {
    /// Records by this person (their id in the policy document).
    #[arg(long)]
    person: Option<String>,
    /// Records about this catalog role.
    #[arg(long)]
    role: Option<String>,
    /// Records of this request.
    #[arg(long)]
    request: Option<String>,
    /// This action (`grant.activated`), or a family ending in a dot (`request.`).
    #[arg(long)]
    action: Option<String>,
    /// Records at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<DateTime<Utc>>,
    /// Records before this time (RFC 3339).
    #[arg(long)]
    until: Option<DateTime<Utc>>,
    /// One JSON record a line instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `pim audit`.
pub async fn run(args: AuditArgs) -> ExitCode {
    match execute(args).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("pim audit: {}", chain_of(err.as_ref()));
            ExitCode::from(2)
        }
    }
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

async fn execute(args: AuditArgs) -> Result<ExitCode, Failure> {
    let config = pim::adapters::sdk_config_loader().load().await;
    let clients = AwsClients::new(&config);
    let lines = read_lines(&args.source, &clients).await?;
    match args.command {
        None => Ok(list(&lines, &args.filter)),
        Some(AuditCommand::Receipt { grant }) => match receipt(&grant, &records_of(&lines)) {
            Some(story) => {
                story.iter().for_each(|line| println!("{line}"));
                Ok(ExitCode::SUCCESS)
            }
            None => {
                eprintln!("pim audit: no record mentions grant {}", grant.escape_default());
                Ok(ExitCode::from(1))
            }
        },
        Some(AuditCommand::Verify { table, json }) => {
            let head = match table {
                Some(table) => Some(
                    DynamoRequestStore::new(clients.dynamodb.clone(), table).chain_head().await?,
                ),
                None => None,
            };
            // The key id comes from each checkpoint; the signer's own key is unused here.
            let verifier = KmsCheckpointSigner::new(clients.kms.clone(), "");
            let report = verify_stream(&lines, &verifier, head.as_ref()).await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print_report(&report);
            }
            Ok(if report.is_intact() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
    }
}

async fn read_lines(source: &Source, clients: &AwsClients) -> Result<Vec<String>, Failure> {
    if let Some(path) = &source.file {
        let text = std::fs::read_to_string(path)
            .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
        return Ok(text.lines().filter(|line| !line.trim().is_empty()).map(Into::into).collect());
    }
    let group = source.log_group.as_ref().ok_or("give --log-group or --file")?;
    Ok(CloudWatchAuditSink::new(clients.logs.clone(), group).read_all().await?)
}

fn list(lines: &[String], args: &FilterArgs) -> ExitCode {
    let filter = Filter {
        person: args.person.clone(),
        role: args.role.clone(),
        request: args.request.clone(),
        action: args.action.clone(),
        since: args.since,
        until: args.until,
    };
    let records: Vec<_> =
        records_of(lines).into_iter().filter(|record| filter.matches(record)).collect();
    if args.json {
        for record in &records {
            println!("{}", serde_json::to_string(record).expect("records serialize"));
        }
    } else {
        table(&records).iter().for_each(|line| println!("{line}"));
    }
    ExitCode::SUCCESS
}

fn print_report(report: &pim::audit::verify::Report) {
    match &report.finding {
        None => println!(
            "intact: {} records through sequence {}, {} signed checkpoints, {} redeliveries",
            report.records, report.head.sequence, report.checkpoints, report.redeliveries
        ),
        Some(finding) => {
            let sequence = finding.sequence.map_or("-".into(), |s| s.to_string());
            println!(
                "{:?} at line {} (sequence {sequence}, record {}): {}",
                finding.kind,
                finding.line,
                finding.record_id.as_deref().unwrap_or("-"),
                finding.detail
            );
        }
    }
}

/// An error with its causes, outermost first.
fn chain_of(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}
