//! The requester's commands: `roles`, `request [--wait]`, `status`, `list`, `cancel`,
//! `extend` and `revoke`, each one or a few signed calls to the API.

use super::{Command, Global, Output, bad_value};
use crate::api::Api;
use crate::failure::{Exit, Failure};
use crate::output::{
    Clock, Style, approval_status, grants_table, request_detail, requests_table, roles_table, span,
    text, time,
};
use clap::Args;
use pim::duration::{format_iso, parse_duration};
use pim::model::request_id_of_grant;
use serde_json::{Value, json};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// `pim request`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  pim request prod-readonly --for 1h --reason \"INC-1234: reading the order service's logs\"
  pim request prod-admin --for 90m --reason \"CHG-88: resize the fleet\" --ticket CHG-88 --wait
  pim request prod-db-admin --for PT30M --reason \"...\" --mfa-code prompt

Durations: 90m, 1h30m, PT1H30M or seconds. With --wait, Ctrl-C stops waiting and leaves
the request standing.")]
pub struct RequestArgs {
    /// The catalog role (see `pim roles`).
    pub role: String,
    /// How long: 90m, 1h30m, PT1H; the role's default when absent.
    #[arg(long = "for", value_name = "DURATION")]
    pub duration: Option<String>,
    /// Why you need it; approvers read it and the audit trail keeps it.
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// The change or incident ticket, where the role asks for one.
    #[arg(long, value_name = "ID")]
    pub ticket: Option<String>,
    /// A one-time code from your enrolled app, or `prompt` to be asked for it.
    #[arg(long, value_name = "CODE|prompt")]
    pub mfa_code: Option<String>,
    /// Emergency self-activation, where the role allows it (reviewed afterwards).
    #[arg(long)]
    pub break_glass: bool,
    /// Show progress until the request is approved and active, then what changed.
    #[arg(long)]
    pub wait: bool,
    /// Seconds between checks while waiting.
    #[arg(long, hide = true, default_value_t = 2.0, value_name = "SECONDS")]
    pub poll_interval: f64,
}

/// `pim list`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  pim list                # all your requests, newest first
  pim list --pending --output json
  pim list --active       # your grants in force, with the time left
  pim list --active --all # everyone's grants in force (administrators)")]
pub struct ListArgs {
    /// Only grants in force (approved or active), soonest end first.
    #[arg(long, conflicts_with = "pending")]
    pub active: bool,
    /// Only requests waiting for a decision.
    #[arg(long)]
    pub pending: bool,
    /// Only your own (the default).
    #[arg(long, conflicts_with = "all")]
    pub mine: bool,
    /// Everyone's grants in force, not only yours (administrators named in the policy);
    /// implies --active.
    #[arg(long, conflicts_with = "pending")]
    pub all: bool,
}

/// `pim extend`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  pim extend grant-4f2a... --by 30m
  pim extend grant-4f2a... --by PT1H --reason \"INC-1234 is not fixed yet\" --mfa-code prompt

Where policy grants the longer time by itself the grant ends later at once. Where it needs
approvers, --reason is required and an extension request goes to them; the grant keeps its
end until they approve (follow it with `pim status`). Break-glass grants cannot be extended.")]
pub struct ExtendArgs {
    /// The grant id (`grant-…`, see `pim list --active`).
    pub grant: String,
    /// How much longer: 30m, 1h, PT45M.
    #[arg(long, value_name = "DURATION")]
    pub by: String,
    /// Why more time is needed; required where approvers must agree, who read it.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// A one-time code from your enrolled app, or `prompt`.
    #[arg(long, value_name = "CODE|prompt")]
    pub mfa_code: Option<String>,
}

/// `pim revoke`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  pim revoke grant-4f2a...                                  # give back your own grant
  pim revoke grant-9c1e... --reason \"left the incident call\"  # administrators, anyone's")]
pub struct RevokeArgs {
    /// The grant id (`grant-…`).
    pub grant: String,
    /// Why; required when ending someone else's grant.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

/// What every command here works with.
struct Context {
    api: Api,
    output: Output,
    clock: Clock,
    style: Style,
}

impl Context {
    /// Prints a JSON document (with `--output json`) or the text for people.
    fn show(&self, document: &Value, human: impl FnOnce() -> String) {
        match self.output {
            Output::Json => {
                println!("{}", serde_json::to_string_pretty(document).expect("JSON serializes"))
            }
            Output::Table => print!("{}", human()),
        }
    }
}

/// Runs one of the API commands.
pub async fn run(command: Command, global: &Global, clock: Clock) -> Result<(), Failure> {
    let api = Api::connect(&global.target()).await?;
    let context = Context { api, output: global.output, clock, style: Style::stdout() };
    match command {
        Command::Roles => roles(&context).await,
        Command::Request(args) => request(&context, args).await,
        Command::Status { id: Some(id) } => status(&context, &id).await,
        Command::Status { id: None } => list(&context, true, true).await,
        Command::List(ListArgs { all: true, .. }) => live_grants(&context, true).await,
        Command::List(ListArgs { active: true, .. }) => live_grants(&context, false).await,
        Command::List(args) => list(&context, false, args.pending).await,
        Command::Cancel { id } => cancel(&context, &id).await,
        Command::Extend(args) => extend(&context, args).await,
        Command::Revoke(args) => revoke(&context, args).await,
        _ => unreachable!("only the API commands are routed here"),
    }
}

async fn roles(context: &Context) -> Result<(), Failure> {
    let answer = context.api.get("/roles").await?;
    let roles = answer["roles"].as_array().cloned().unwrap_or_default();
    context.show(&answer, || roles_table(&roles, context.style));
    Ok(())
}

async fn request(context: &Context, args: RequestArgs) -> Result<(), Failure> {
    let mut body = json!({ "role": args.role, "justification": args.reason });
    if let Some(duration) = &args.duration {
        let secs = parse_duration(duration).map_err(|err| bad_value("--for", err))?;
        body["duration"] = json!(format_iso(secs));
    }
    if let Some(ticket) = &args.ticket {
        body["ticket"] = json!(ticket);
    }
    if args.break_glass {
        body["break_glass"] = json!(true);
    }
    if let Some(code) = one_time_code(args.mfa_code.as_deref())? {
        body["mfa_code"] = json!(code);
    }
    if !(args.poll_interval > 0.0 && args.poll_interval <= 3600.0) {
        return Err(bad_value("--poll-interval", "must be between 0 and 3600 seconds"));
    }

    let created = context.api.post("/requests", &body).await?;
    let id = created["id"].as_str().unwrap_or_default().to_string();
    if !args.wait || created["state"] != "pending" && created["state"] != "approved" {
        return outcome(context, &created, false);
    }
    // From here on Ctrl-C ends only the waiting; the handler is in place before the
    // request id is shown, so an early Ctrl-C is caught too.
    let interrupted = interrupt_listener()?;
    if context.output == Output::Table {
        print!("{}", submitted(&created, &context.clock));
        std::io::stdout().flush().ok();
    }
    let poll = Duration::from_secs_f64(args.poll_interval);
    let waited = tokio::select! {
        waited = wait_for_decision(context, &id, poll) => waited?,
        _ = interrupted => {
            clear_progress();
            return Err(Failure::new(
                Exit::Interrupted,
                format!("stopped waiting; request {id} still stands"),
            )
            .hint(format!(
                "follow it with `pim status {id}`, or withdraw it with `pim cancel {id}`"
            )));
        }
    };
    outcome(context, &waited, true)
}

/// A future that completes at Ctrl-C, with its handler already installed.
#[cfg(unix)]
fn interrupt_listener() -> Result<impl std::future::Future<Output = ()>, Failure> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupts = signal(SignalKind::interrupt())
        .map_err(|err| Failure::new(Exit::Other, format!("cannot watch for Ctrl-C: {err}")))?;
    Ok(async move {
        interrupts.recv().await;
    })
}

/// A future that completes at Ctrl-C.
#[cfg(not(unix))]
fn interrupt_listener() -> Result<impl std::future::Future<Output = ()>, Failure> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// Polls the request until it leaves `pending` and `approved`, with a progress line on a
/// terminal's standard error.
async fn wait_for_decision(context: &Context, id: &str, poll: Duration) -> Result<Value, Failure> {
    let progress = std::io::stderr().is_terminal();
    let started = Instant::now();
    loop {
        let request = context.api.get(&format!("/requests/{id}")).await?;
        let state = request["state"].as_str().unwrap_or_default();
        let overdue = state == "pending"
            && time(&request["pending_until"]).is_some_and(|until| until <= chrono::Utc::now());
        if !matches!(state, "pending" | "approved") || overdue {
            clear_progress();
            return Ok(request);
        }
        if progress {
            let elapsed = span(started.elapsed().as_secs());
            eprint!("\r\x1b[2K{state}: {} ({elapsed})", approval_status(&request));
            std::io::stderr().flush().ok();
        }
        tokio::time::sleep(poll).await;
    }
}

fn clear_progress() {
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[2K");
    }
}

/// What a created request means for the requester, before any decision.
fn submitted(request: &Value, clock: &Clock) -> String {
    let mut out = format!(
        "request {} for {} ({}) is pending: {}\n",
        text(&request["id"]),
        text(&request["role"]),
        span(request["duration_secs"].as_u64().unwrap_or(0)),
        approval_status(request)
    );
    if let Some(until) = time(&request["pending_until"]) {
        out.push_str(&format!("  approvers have until {}\n", clock.when(until)));
    }
    let undelivered: Vec<String> =
        request["undelivered_notifications"].as_array().into_iter().flatten().map(text).collect();
    if !undelivered.is_empty() {
        out.push_str(&format!("  the mail to {} could not be sent\n", undelivered.join(", ")));
    }
    out
}

/// Prints where a request ended up and turns a refusal of the request into its status:
/// denied 4, expired 5, failed, cancelled or revoked 1.
fn outcome(context: &Context, request: &Value, waited: bool) -> Result<(), Failure> {
    let id = text(&request["id"]);
    let state = request["state"].as_str().unwrap_or_default();
    let ended = |exit: Exit, message: String| {
        let mut failure = Failure::new(exit, message);
        failure.document = Some(request.clone());
        Err(failure)
    };
    match state {
        "active" | "approved" => {
            context.show(request, || granted(request, &context.clock, context.style));
            Ok(())
        }
        "pending" if !waited => {
            context.show(request, || {
                format!(
                    "{}  follow it with `pim status {id}`; withdraw it with `pim cancel {id}`\n",
                    submitted(request, &context.clock)
                )
            });
            Ok(())
        }
        "pending" | "expired" => ended(
            Exit::Expired,
            format!("request {id} expired: nobody decided in time ({})", approval_status(request)),
        ),
        "denied" => {
            let by: Vec<String> = request["decisions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|d| d["verdict"] == "deny")
                .map(|d| text(&d["approver"]))
                .collect();
            ended(Exit::Denied, format!("request {id} was denied by {}", by.join(", ")))
        }
        "failed" => ended(
            Exit::Other,
            format!(
                "request {id} was approved but access could not be put in place: {}",
                text(&request["reason"])
            ),
        ),
        other => ended(Exit::Other, format!("request {id} is {other}")),
    }
}

/// What changed with a grant and until when.
fn granted(request: &Value, clock: &Clock, style: Style) -> String {
    let grant = &request["grant"];
    let role = style.bold(&text(&request["role"]));
    let Some(end) = time(&grant["ends_at"]) else {
        return format!("{role} is approved; access is being put in place\n");
    };
    let grant_id = text(&grant["id"]);
    let mut out = format!(
        "{role} is {} until {}, {}\n",
        style.state("active"),
        clock.when(end),
        clock.remaining(end)
    );
    let target = text(&request["target_role_arn"]);
    if grant["inline_policy"] != false {
        out.push_str(&format!(
            "  IAM role {target} now holds the inline policy pim-{grant_id}, valid from {} \
             until {}; IAM itself stops honouring it then\n",
            time(&grant["starts_at"]).map(|t| clock.when(t)).unwrap_or_default(),
            clock.when(end)
        ));
    }
    for policy in grant["attached_policies"].as_array().into_iter().flatten() {
        out.push_str(&format!("  {} is attached to {target} until then\n", text(policy)));
    }
    out.push_str(&format!("  approval: {}\n", approval_status(request)));
    out.push_str(&format!(
        "  end it early with `pim revoke {grant_id}`; more time with `pim extend {grant_id} --by 30m`\n"
    ));
    out
}

async fn status(context: &Context, id: &str) -> Result<(), Failure> {
    let request_id = match id.starts_with("grant-") {
        true => request_id_of_grant(id).ok_or_else(|| bad_value("id", "not a grant id"))?,
        false => id.to_string(),
    };
    let request = context.api.get(&format!("/requests/{}", path_segment(&request_id)?)).await?;
    context.show(&request, || {
        let mut out = request_detail(&request, &context.clock, context.style);
        let history = request["history"].as_array().cloned().unwrap_or_default();
        if !history.is_empty() {
            out.push_str("\nhistory\n");
            for record in history {
                let when = time(&record["time"]).map(|t| context.clock.when(t)).unwrap_or_default();
                out.push_str(&format!(
                    "  {when}  {}  {} by {}\n",
                    text(&record["action"]),
                    text(&record["outcome"]),
                    text(&record["actor"]["id"])
                ));
            }
        }
        out
    });
    Ok(())
}

async fn list(context: &Context, active: bool, pending: bool) -> Result<(), Failure> {
    let answer = context.api.get("/requests").await?;
    let requests: Vec<Value> = answer["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|request| {
            let state = request["state"].as_str().unwrap_or_default();
            let wanted_active = active && matches!(state, "active" | "approved");
            let wanted_pending = pending && state == "pending";
            !(active || pending) || wanted_active || wanted_pending
        })
        .cloned()
        .collect();
    context.show(&json!({ "requests": requests }), || {
        requests_table(&requests, &context.clock, context.style)
    });
    Ok(())
}

/// Grants in force from `GET /grants`: the caller's, or everyone's.
async fn live_grants(context: &Context, everyone: bool) -> Result<(), Failure> {
    let path = if everyone { "/grants?active&all" } else { "/grants?active" };
    let answer = context.api.get(path).await.map_err(|failure| match failure.code() {
        Some("not_an_administrator") => failure.hint(
            "only administrators named in the policy see everyone's grants; `pim list --active` \
             shows yours",
        ),
        _ => failure,
    })?;
    let grants = answer["grants"].as_array().cloned().unwrap_or_default();
    context.show(&answer, || grants_table(&grants, &context.clock, context.style));
    Ok(())
}

async fn cancel(context: &Context, id: &str) -> Result<(), Failure> {
    let path = format!("/requests/{}/cancel", path_segment(id)?);
    let cancelled = context.api.post(&path, &json!({})).await?;
    context.show(&cancelled, || {
        format!("request {} is {}\n", text(&cancelled["id"]), text(&cancelled["state"]))
    });
    Ok(())
}

async fn extend(context: &Context, args: ExtendArgs) -> Result<(), Failure> {
    let secs = parse_duration(&args.by).map_err(|err| bad_value("--by", err))?;
    let mut body = json!({ "by": format_iso(secs) });
    if let Some(reason) = &args.reason {
        body["reason"] = json!(reason);
    }
    if let Some(code) = one_time_code(args.mfa_code.as_deref())? {
        body["mfa_code"] = json!(code);
    }
    let path = format!("/grants/{}/extend", path_segment(&args.grant)?);
    let extended = match context.api.post(&path, &body).await {
        Ok(extended) => extended,
        Err(failure) if failure.code() == Some("reason_required") => {
            return Err(failure.hint("add --reason \"...\" for the approvers to read"));
        }
        Err(failure) => return Err(ended_grant(context, &args.grant, failure).await),
    };
    if !extended["extends"].is_null() {
        context.show(&extended, || extension_asked(&extended, &context.clock));
        return Ok(());
    }
    context.show(&extended, || {
        let end = time(&extended["grant"]["ends_at"]);
        format!(
            "grant {} of {} now ends {} ({})\n",
            args.grant,
            text(&extended["role"]),
            end.map(|t| context.clock.when(t)).unwrap_or_default(),
            end.map(|t| context.clock.remaining(t)).unwrap_or_default()
        )
    });
    Ok(())
}

/// What an extension request sent to approvers means for the holder.
fn extension_asked(request: &Value, clock: &Clock) -> String {
    let extends = &request["extends"];
    let id = text(&request["id"]);
    let mut out = format!(
        "grant {} of {} still ends {}; extension request {id} to {} is pending: {}\n",
        text(&extends["grant_id"]),
        text(&request["role"]),
        time(&extends["ends_at"]).map(|t| clock.when(t)).unwrap_or_default(),
        time(&extends["extend_to"]).map(|t| clock.when(t)).unwrap_or_default(),
        approval_status(request)
    );
    if let Some(until) = time(&request["pending_until"]) {
        out.push_str(&format!("  approvers have until {}\n", clock.when(until)));
    }
    out.push_str(&format!(
        "  follow it with `pim status {id}`; withdraw it with `pim cancel {id}`\n"
    ));
    out
}

async fn revoke(context: &Context, args: RevokeArgs) -> Result<(), Failure> {
    let body = match &args.reason {
        Some(reason) => json!({ "reason": reason }),
        None => json!({}),
    };
    let path = format!("/grants/{}/revoke", path_segment(&args.grant)?);
    let revoked = match context.api.post(&path, &body).await {
        Ok(revoked) => revoked,
        Err(failure) => return Err(ended_grant(context, &args.grant, failure).await),
    };
    context.show(&revoked, || {
        format!(
            "grant {} of {} ({}) is revoked: its policy is gone from {}\n",
            args.grant,
            text(&revoked["role"]),
            text(&revoked["requester"]),
            text(&revoked["target_role_arn"])
        )
    });
    Ok(())
}

/// A grant that is no longer active cannot be extended or revoked; when it ended by
/// expiring, that is status 5 and says when.
async fn ended_grant(context: &Context, grant: &str, failure: Failure) -> Failure {
    if failure.code() != Some("invalid_state") {
        return failure;
    }
    let Some(request_id) = request_id_of_grant(grant) else { return failure };
    let Ok(request) = context.api.get(&format!("/requests/{request_id}")).await else {
        return failure;
    };
    if request["state"] != "expired" {
        return failure;
    }
    let ended = time(&request["grant"]["ends_at"]).map(|t| context.clock.when(t));
    Failure {
        exit: Exit::Expired,
        message: format!("grant {grant} expired at {}", ended.unwrap_or_default()),
        hint: Some(format!("request {} again for new access", text(&request["role"]))),
        document: failure.document,
    }
}

/// The code to send: as given, typed at a prompt for `prompt`, or none.
pub fn one_time_code(flag: Option<&str>) -> Result<Option<String>, Failure> {
    match flag {
        None => Ok(None),
        Some("prompt") => read_code("one-time code: ").map(Some),
        Some(code) => Ok(Some(code.trim().to_string())),
    }
}

/// Reads a one-time code from standard input after a prompt on standard error.
pub fn read_code(prompt: &str) -> Result<String, Failure> {
    eprint!("{prompt}");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|err| Failure::usage(format!("cannot read the code: {err}")))?;
    let code = line.trim().to_string();
    if code.is_empty() {
        return Err(Failure::usage("no code was typed"));
    }
    Ok(code)
}

/// An id as one path segment: letters, digits and dashes only.
fn path_segment(id: &str) -> Result<&str, Failure> {
    let plain = !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if plain {
        Ok(id)
    } else {
        Err(bad_value("id", format!("'{}' is not a request or grant id", id.escape_default())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::snapshots::{active_request, assert_snapshot, clock};

    #[test]
    fn what_changed_when_a_grant_became_active() {
        assert_snapshot("granted.txt", &granted(&active_request(), &clock(), Style::plain()));
        let mut pending = active_request();
        pending["state"] = json!("pending");
        pending["decisions"] = json!([]);
        pending["grant"] = Value::Null;
        pending["undelivered_notifications"] = json!(["carol"]);
        assert_snapshot("submitted.txt", &submitted(&pending, &clock()));
        let mut extension = pending;
        extension["id"] = json!("req-8d21");
        extension["extends"] = json!({
            "grant_id": "grant-4f2a", "request_id": "req-4f2a",
            "ends_at": "2026-12-04T11:05:00Z", "extend_to": "2026-12-04T11:35:00Z"
        });
        extension["pending_until"] = json!("2026-12-04T11:05:00Z");
        assert_snapshot("extension-asked.txt", &extension_asked(&extension, &clock()));
    }

    #[test]
    fn ids_are_single_path_segments() {
        assert!(path_segment("req-4f2a").is_ok());
        for bad in ["", "../roles", "req-1/cancel", "req-1?x=y", "req 1"] {
            assert_eq!(path_segment(bad).unwrap_err().exit, Exit::Usage, "{bad}");
        }
    }
}
