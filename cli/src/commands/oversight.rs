//! What security leads and auditors ask: `who-can ROLE`, `what-can [PERSON]`, `report` and
//! `review start ROLE`. Everyone's live grants are `pim list --active --all` (in
//! [`super::access`]). The API decides who may see what: administrators named in the policy
//! see everyone, others themselves only.

use super::{Global, Output, bad_value};
use crate::api::Api;
use crate::failure::{Exit, Failure};
use crate::output::{Clock, Style, campaign_text, eligibility_table, report_text};
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Subcommand};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};

/// `pim who-can`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  pim who-can prod-admin
  pim who-can prod-admin --output json

Administrators see everyone; others see whether they themselves may.")]
pub struct WhoCanArgs {
    /// The catalog role.
    pub role: String,
}

/// `pim what-can`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  pim what-can           # what you may request, under which rules
  pim what-can alice     # administrators: what alice may request")]
pub struct WhatCanArgs {
    /// The person's id in the policy; yourself when absent.
    pub person: Option<String>,
}

/// `pim report`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  pim report --from 2026-11-01 --to 2026-12-01
  pim report --from 2026-11-01 --to 2026-12-01 --csv --out november.csv
  pim report --from 2026-11-01T00:00:00Z --output json > november.json

Grants are in the report when they started in [FROM, TO). Dates are midnight UTC. With
--out the file is written whole or not at all, readable by you only, and an existing file is
kept unless --force.
The summary is in the table and the JSON; the CSV holds one line per grant.")]
pub struct ReportArgs {
    /// The start of the range: a date (2026-11-01) or an RFC 3339 time; 30 days before
    /// --to when absent.
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// The end of the range (excluded): a date or an RFC 3339 time; now when absent.
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// The grants as CSV (RFC 4180) instead of the table or JSON.
    #[arg(long)]
    pub csv: bool,
    /// Write the export (CSV with --csv, else JSON) to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace the file named by --out if it exists.
    #[arg(long, requires = "out")]
    pub force: bool,
}

/// `pim review`.
#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// Start an access review of a role now: its reviewers are mailed a link per person.
    #[command(after_help = "Example:
  pim review start prod-admin

Administrators only. Reviewers keep or remove each eligible person through the mailed
links; removals come back as a diff of the policy document for its owners to apply.")]
    Start {
        /// The catalog role to review.
        role: String,
    },
}

/// Query values as one component each: everything but letters, digits and `-._~` encoded.
const QUERY_VALUE: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

fn query_value(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// Runs `who-can`.
pub async fn who_can(args: WhoCanArgs, global: &Global) -> Result<(), Failure> {
    let api = Api::connect(&global.target()).await?;
    let answer = api.get(&format!("/eligibility?role={}", query_value(&args.role))).await?;
    show_eligibility(&answer, global.output, Grouping::ByPerson);
    Ok(())
}

/// Runs `what-can`.
pub async fn what_can(args: WhatCanArgs, global: &Global) -> Result<(), Failure> {
    let api = Api::connect(&global.target()).await?;
    let path = match &args.person {
        Some(person) => format!("/eligibility?person={}", query_value(person)),
        None => "/eligibility".to_string(),
    };
    let answer = api.get(&path).await?;
    show_eligibility(&answer, global.output, Grouping::ByRole);
    Ok(())
}

/// Which column leads the eligibility table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    /// `who-can`: the people of one role.
    ByPerson,
    /// `what-can`: the roles of one person.
    ByRole,
}

fn show_eligibility(answer: &Value, output: Output, grouping: Grouping) {
    match output {
        Output::Json => print_json(answer),
        Output::Table => {
            let entries = answer["eligibility"].as_array().cloned().unwrap_or_default();
            print!("{}", eligibility_table(&entries, grouping == Grouping::ByRole, Style::stdout()))
        }
    }
}

/// Runs `report`.
pub async fn report(args: ReportArgs, global: &Global) -> Result<(), Failure> {
    let to = match &args.to {
        Some(text) => parse_time("--to", text)?,
        None => Utc::now(),
    };
    let from = match &args.from {
        Some(text) => parse_time("--from", text)?,
        None => to - chrono::Duration::days(30),
    };
    if from >= to {
        return Err(bad_value("--from", "must be before --to"));
    }
    if let Some(out) = &args.out
        && !args.force
        && out.exists()
    {
        return Err(Failure::usage(format!("{} exists; nothing was written", out.display()))
            .hint("name another file, or add --force to replace it"));
    }
    let api = Api::connect(&global.target()).await?;
    let range = format!(
        "from={}&to={}",
        query_value(&from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        query_value(&to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    );
    if args.csv {
        let csv = api.get_text(&format!("/reports?{range}&format=csv"), "text/csv").await?;
        return match &args.out {
            Some(out) => write_whole(out, csv.as_bytes(), args.force),
            None => {
                print!("{csv}");
                Ok(())
            }
        };
    }
    let answer = api.get(&format!("/reports?{range}")).await?;
    if let Some(out) = &args.out {
        let mut document = serde_json::to_vec_pretty(&answer).expect("JSON serializes");
        document.push(b'\n');
        write_whole(out, &document, args.force)?;
    }
    match (global.output, &args.out) {
        (Output::Json, None) => print_json(&answer),
        (Output::Json, Some(_)) => {}
        (Output::Table, _) => print!("{}", report_text(&answer, &Clock::system(), Style::stdout())),
    }
    Ok(())
}

/// A date (midnight UTC) or an RFC 3339 time.
fn parse_time(flag: &str, text: &str) -> Result<DateTime<Utc>, Failure> {
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    DateTime::parse_from_rfc3339(text).map(|at| at.with_timezone(&Utc)).map_err(|_| {
        bad_value(
            flag,
            format!(
                "'{}' is neither a date (2026-11-01) nor an RFC 3339 time",
                text.escape_default()
            ),
        )
    })
}

/// Writes `bytes` to `out` whole or not at all: into a new file beside it, then renamed over
/// it, so a reader never sees half a report and a failure leaves what was there.
fn write_whole(out: &Path, bytes: &[u8], force: bool) -> Result<(), Failure> {
    let failed = |err: std::io::Error| {
        Failure::new(
            Exit::Other,
            format!("cannot write {}: {err}; nothing was written", out.display()),
        )
    };
    let folder = match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = out.file_name().ok_or_else(|| bad_value("--out", "names no file"))?;
    let partial =
        folder.join(format!(".{}.{}.partial", name.to_string_lossy(), std::process::id()));
    let written = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        // The report holds people's justifications: readable by its owner only.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&partial)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        if !force && out.exists() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "it appeared meanwhile",
            ));
        }
        std::fs::rename(&partial, out)
    })();
    if let Err(err) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(failed(err));
    }
    eprintln!("wrote {} ({} bytes)", out.display(), bytes.len());
    Ok(())
}

/// Runs `review start`.
pub async fn review(command: ReviewCommand, global: &Global) -> Result<(), Failure> {
    let ReviewCommand::Start { role } = command;
    let api = Api::connect(&global.target()).await?;
    let campaign = api.post("/reviews", &json!({ "role": role })).await?;
    match global.output {
        Output::Json => print_json(&campaign),
        Output::Table => print!("{}", campaign_text(&campaign, &Clock::system())),
    }
    Ok(())
}

fn print_json(document: &Value) {
    println!("{}", serde_json::to_string_pretty(document).expect("JSON serializes"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_ends_are_dates_or_rfc_3339_times() {
        assert_eq!(
            parse_time("--from", "2026-11-01").unwrap(),
            "2026-11-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            parse_time("--to", "2026-11-01T12:30:00+01:00").unwrap(),
            "2026-11-01T11:30:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        for bad in ["yesterday", "2026-13-01", "2026-11-01 10:00"] {
            assert_eq!(parse_time("--from", bad).unwrap_err().exit, Exit::Usage, "{bad}");
        }
    }

    #[test]
    fn query_values_cannot_add_parameters() {
        assert_eq!(query_value("prod-admin"), "prod-admin");
        assert_eq!(query_value("a&all=true"), "a%26all%3Dtrue");
        assert_eq!(query_value("2026-11-01T00:00:00Z"), "2026-11-01T00%3A00%3A00Z");
    }

    #[test]
    fn a_report_file_is_written_whole_and_kept_unless_forced() {
        let folder = std::env::temp_dir().join(format!("pim-report-{}", std::process::id()));
        std::fs::create_dir_all(&folder).unwrap();
        let out = folder.join("report.csv");
        write_whole(&out, b"first", false).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"first");
        assert!(write_whole(&out, b"second", false).is_err());
        assert_eq!(std::fs::read(&out).unwrap(), b"first");
        write_whole(&out, b"second", true).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"second");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&out).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "only its owner reads the report");
        }
        let left: Vec<_> =
            std::fs::read_dir(&folder).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, [std::ffi::OsString::from("report.csv")], "no partial file is left");
        std::fs::remove_dir_all(&folder).unwrap();
    }
}
