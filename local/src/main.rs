//! `pim-local`: the whole system on this machine against the AWS emulator, with a guided
//! walk through one elevation. Run it through `scripts/local`, which installs the emulator
//! first.
//!
//! Options:
//!   --port N          port of the API on 127.0.0.1 (default 8080)
//!   --auto-approve    approve the walkthrough's request by following the emailed link
//!                     itself, instead of waiting for you to do it in a browser
//!   --exit            stop after the walkthrough instead of serving until Ctrl-C
//!   --no-walkthrough  only serve the stack
//!
//! `pim-local provision --emulator URL --policy FILE --public-url URL` only creates the
//! stack's resources in an emulator that is already running, for the policy document at
//! FILE, and prints the functions' environment variables as one JSON object (what
//! `bench/run` starts the release binaries with).

use aws_config::Region;
use pim::adapters::AwsClients;
use pim::catalog::{Catalog, role_name_of};
use pim::clock::{Clock, SystemClock};
use pim::service::{AuditShipper, Pim};
use pim_local::auth::{AwsFiles, KeyRing, LocalKey, signature_headers};
use pim_local::emulator::{Emulator, repository_root};
use pim_local::firer::fire_due;
use pim_local::gateway::{self, Authentication};
use pim_local::mailbox::{SentMail, sent_mail};
use pim_local::provision::{
    EXAMPLE_POLICY, StackNames, function_environment, provision, provision_audit, requester_roles,
};
use pim_local::subscriber::delivered_events;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// The region of the local stack, which signatures must name.
const REGION: &str = "us-east-1";

/// The emulator's default account, where the local stack lives.
const ACCOUNT: &str = "123456789012";

struct Options {
    port: u16,
    auto_approve: bool,
    exit_after: bool,
    walkthrough: bool,
}

fn options() -> Result<Options, Failure> {
    let mut options =
        Options { port: 8080, auto_approve: false, exit_after: false, walkthrough: true };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => options.port = args.next().ok_or("--port needs a number")?.parse()?,
            "--auto-approve" => options.auto_approve = true,
            "--exit" => options.exit_after = true,
            "--no-walkthrough" => options.walkthrough = false,
            "-h" | "--help" => {
                println!(
                    "usage: scripts/local [--port N] [--auto-approve] [--exit] [--no-walkthrough]"
                );
                println!(
                    "       pim-local provision --emulator URL --policy FILE --public-url URL"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown option {other}; see --help").into()),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() {
    if let Err(err) = run().await {
        eprintln!("pim-local: {err}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Failure> {
    if std::env::args().nth(1).as_deref() == Some("provision") {
        return provision_only(std::env::args().skip(2).collect()).await;
    }
    let options = options()?;
    let root = repository_root();
    let state = root.join(".local-state");
    std::fs::create_dir_all(&state)?;

    say("starting the AWS emulator (single-threaded moto)");
    let emulator = Emulator::start(&root, &state.join("emulator.log"))?;
    let config = emulator_config(emulator.url()).await;
    let clients = AwsClients::new(&config);

    let listener =
        tokio::net::TcpListener::bind(("127.0.0.1", options.port)).await.map_err(|err| {
            format!("cannot listen on 127.0.0.1:{}: {err} (try --port)", options.port)
        })?;
    let public_url = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
    let policy_file = state.join("policy.yaml");
    std::fs::write(&policy_file, EXAMPLE_POLICY)?;
    let catalog = Catalog::from_yaml(EXAMPLE_POLICY)?;
    let names = StackNames {
        table: "pim-local".into(),
        schedule_group: "pim-local-expiry".into(),
        sender: "pim@example.com".into(),
        public_url: public_url.clone(),
        policy_file: policy_file.display().to_string(),
        account: ACCOUNT.into(),
    };
    say("creating the resources infra/template.yaml declares");
    let settings = provision(&clients, &catalog, &names).await?;
    let pim = Arc::new(Pim::with_aws(&settings, catalog.clone(), &clients, Arc::new(SystemClock)));
    let events = aws_sdk_eventbridge::Client::new(&config);
    let audit =
        provision_audit(&clients, &events, &settings.table, "pim-local-audit", "pim-local-events")
            .await?;
    let event_log = subscribe_to_every_event(&clients, &events, &audit.event_bus).await?;
    let shipper = AuditShipper::with_aws(&audit, &clients, &events, Arc::new(SystemClock));

    // Like API Gateway's IAM authorizer, the gateway lets through only calls signed with a
    // key it knows: one per person, written where the AWS credential chain finds them.
    let keys = Arc::new(KeyRing::issue(&pim.catalog, REGION));
    let files = keys.write_aws_files(&state.join("aws"))?;
    tokio::spawn(gateway::serve(listener, pim.clone(), Authentication::SigV4(keys.clone())));
    say(&format!("API and approval pages at {public_url}"));
    say("calls must be signed with SigV4; a profile per person is in .local-state/aws");
    println!("  export AWS_CONFIG_FILE={}", files.config.display());
    println!("  export AWS_SHARED_CREDENTIALS_FILE={}", files.credentials.display());
    println!("  export PIM_ENDPOINT={public_url}");
    println!("  pim --profile alice roles");
    tokio::spawn(watch(
        clients.clone(),
        pim.clone(),
        emulator.url().to_string(),
        settings.schedule_group.clone(),
        catalog,
        shipper,
    ));

    if options.walkthrough {
        let alice = keys.key_of("alice").ok_or("the example policy has no alice")?.clone();
        let api = Api { http: reqwest::Client::new(), url: public_url.clone(), key: alice };
        walkthrough(&api, emulator.url(), &clients, &event_log, options.auto_approve).await?;
        list_with_the_command_line(&files, &public_url)?;
        say("walkthrough complete");
    }
    if options.exit_after {
        return Ok(());
    }
    say("the stack keeps running; press Ctrl-C to stop");
    println!("  with the exports above, try:");
    println!(
        "    pim --profile alice request prod-readonly --for 2m --reason 'looking at logs' --wait"
    );
    println!("    pim --profile alice list");
    tokio::signal::ctrl_c().await?;
    drop(emulator);
    Ok(())
}

/// Provisions an emulator that is already running and prints the environment variables of
/// the functions (the request, approval and revocation ones, and the audit shipper's).
async fn provision_only(args: Vec<String>) -> Result<(), Failure> {
    let value = |flag: &str| -> Result<String, Failure> {
        let at = args.iter().position(|arg| arg == flag);
        let value = at.and_then(|at| args.get(at + 1));
        value.cloned().ok_or_else(|| format!("provision needs {flag} VALUE").into())
    };
    let (emulator_url, policy_file) = (value("--emulator")?, value("--policy")?);
    let catalog = Catalog::from_file(&policy_file)?;
    let config = emulator_config(&emulator_url).await;
    let clients = AwsClients::new(&config);
    let names = StackNames {
        table: "pim-local".into(),
        schedule_group: "pim-local-expiry".into(),
        sender: "pim@example.com".into(),
        public_url: value("--public-url")?,
        policy_file: policy_file.clone(),
        account: "123456789012".into(),
    };
    let settings = provision(&clients, &catalog, &names).await?;
    let events = aws_sdk_eventbridge::Client::new(&config);
    let audit =
        provision_audit(&clients, &events, &settings.table, "pim-local-audit", "pim-local-events")
            .await?;
    let env = function_environment(&settings, &audit);
    println!("{}", serde_json::to_string(&env)?);
    Ok(())
}

/// The API as one person calls it: every call signed with their local key.
struct Api {
    http: reqwest::Client,
    url: String,
    key: LocalKey,
}

impl Api {
    /// Sends a signed call and reads the JSON answer.
    async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, Failure> {
        let url = format!("{}{path}", self.url);
        let host = reqwest::Url::parse(&url)?.authority().to_string();
        let body = body.map(serde_json::to_vec).transpose()?.unwrap_or_default();
        let mut headers = vec![("host", host.as_str())];
        if !body.is_empty() {
            headers.push(("content-type", "application/json"));
        }
        let now = chrono::Utc::now();
        let signature = signature_headers(&self.key, REGION, method, &url, &headers, &body, now);
        let mut request = self.http.request(method.parse()?, &url).body(body);
        for (name, value) in headers.iter().skip(1) {
            request = request.header(*name, *value);
        }
        for (name, value) in signature {
            request = request.header(name, value);
        }
        Ok(request.send().await?.json().await?)
    }
}

/// One elevation from request to expiry, narrated.
async fn walkthrough(
    api: &Api,
    emulator_url: &str,
    clients: &AwsClients,
    event_log: &str,
    auto_approve: bool,
) -> Result<(), Failure> {
    let http = reqwest::Client::builder().cookie_store(true).build()?;
    say("1. alice asks for prod-readonly for one minute (a SigV4-signed POST /requests)");
    let body = serde_json::json!({ "role": "prod-readonly", "duration": "1m", "justification": "walkthrough: reading production logs" });
    let created = api.call("POST", "/requests", Some(&body)).await?;
    let id = created["id"]
        .as_str()
        .ok_or_else(|| format!("the request was refused: {created}"))?
        .to_string();
    println!("   request {id} is {}", created["state"]);

    say("2. the approvers were mailed a signed link");
    let link = wait_for_link(&http, emulator_url, &id).await?;
    println!("   {link}");
    if auto_approve {
        say("   following the link and pressing Approve (--auto-approve)");
        approve_through_page(&http, &link).await?;
    } else {
        say("   open the link in a browser and press Approve (the page itself changes nothing)");
    }

    say("3. waiting for the decision");
    let request = wait_for_state(
        api,
        &id,
        &["active", "denied", "failed", "cancelled"],
        Duration::from_secs(3600),
    )
    .await?;
    if request["state"] != "active" {
        println!("   the request ended {}; run again to see a grant", request["state"]);
        return Ok(());
    }
    let ends_at = request["grant"]["ends_at"].as_str().unwrap_or_default().to_string();
    let policy_name = format!("pim-{}", request["grant"]["id"].as_str().unwrap_or_default());
    let role_name =
        role_name_of(request["target_role_arn"].as_str().unwrap_or_default()).to_string();
    let document = clients
        .iam
        .get_role_policy()
        .role_name(&role_name)
        .policy_name(&policy_name)
        .send()
        .await?;
    say(&format!("4. IAM role {role_name} now holds {policy_name}, self-expiring at {ends_at}:"));
    let decoded = percent_decode(document.policy_document());
    let pretty: Value = serde_json::from_str(&decoded).unwrap_or(Value::String(decoded));
    println!("{}", serde_json::to_string_pretty(&pretty)?);

    say("5. waiting for the expiry schedule to fire");
    let request = wait_for_state(api, &id, &["expired"], Duration::from_secs(300)).await?;
    let remaining = clients.iam.list_role_policies().role_name(&role_name).send().await?;
    println!(
        "   request is {}; policies left on {role_name}: {:?}",
        request["state"],
        remaining.policy_names()
    );

    say("6. the audit records of this request");
    for record in request["history"].as_array().into_iter().flatten() {
        println!(
            "   {}  {:<18} {:<8} by {}",
            record["time"].as_str().unwrap_or(""),
            record["action"].as_str().unwrap_or(""),
            record["outcome"].as_str().unwrap_or(""),
            record["actor"]["id"].as_str().unwrap_or("?")
        );
    }

    say("7. the lifecycle events the audit shipper put on the event bus");
    for event in events_of_request(&http, emulator_url, event_log, &id).await? {
        let detail = &event["detail"];
        println!(
            "   {}  {:<18} state {:<8} record {}",
            detail["time"].as_str().unwrap_or(""),
            event["detail-type"].as_str().unwrap_or(""),
            detail["state"].as_str().unwrap_or("-"),
            detail["sequence"]
        );
    }
    Ok(())
}

/// Step 8: alice's requests as `pim` (built beside this binary by `scripts/local`) shows
/// them, signing with her profile from the files the stack wrote.
fn list_with_the_command_line(files: &AwsFiles, public_url: &str) -> Result<(), Failure> {
    let pim = std::env::current_exe()?.with_file_name("pim");
    say("8. the same request, as the command line shows it: pim --profile alice list");
    if !pim.exists() {
        println!("   (build it with `cargo build -p pim-cli` to see this step)");
        return Ok(());
    }
    let status = std::process::Command::new(&pim)
        .args(["--profile", "alice", "list"])
        .env("AWS_CONFIG_FILE", &files.config)
        .env("AWS_SHARED_CREDENTIALS_FILE", &files.credentials)
        .env("PIM_ENDPOINT", public_url)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_REGION")
        .status()?;
    if !status.success() {
        return Err(format!("pim --profile alice list failed: {status}").into());
    }
    Ok(())
}

/// The log group the local stack's subscription rule fills with every pim event.
const EVENT_LOG_GROUP: &str = "/pim-local/events";

/// Subscribes a log group to every pim event on the bus, as an integration would with a
/// rule of its own; returns the log group's name.
async fn subscribe_to_every_event(
    clients: &AwsClients,
    events: &aws_sdk_eventbridge::Client,
    bus: &str,
) -> Result<String, Failure> {
    clients.logs.create_log_group().log_group_name(EVENT_LOG_GROUP).send().await?;
    let rule = "pim-local-every-event";
    let pattern = serde_json::json!({ "source": [pim::events::EVENT_SOURCE] });
    events
        .put_rule()
        .name(rule)
        .event_bus_name(bus)
        .event_pattern(pattern.to_string())
        .send()
        .await?;
    let target = aws_sdk_eventbridge::types::Target::builder()
        .id("local-log-group")
        .arn(format!("arn:aws:logs:us-east-1:{ACCOUNT}:log-group:{EVENT_LOG_GROUP}"))
        .build()?;
    events.put_targets().rule(rule).event_bus_name(bus).targets(target).send().await?;
    Ok(EVENT_LOG_GROUP.to_string())
}

/// The events of one request that reached the subscription, in chain order, once its
/// expiry's event is among them (the shipper runs every second here; give it ten).
async fn events_of_request(
    http: &reqwest::Client,
    emulator_url: &str,
    log_group: &str,
    request_id: &str,
) -> Result<Vec<Value>, Failure> {
    let mut found = Vec::new();
    for _ in 0..50 {
        found = delivered_events(http, emulator_url, ACCOUNT, log_group).await?;
        found.retain(|event| event["detail"]["request_id"] == request_id);
        if found.iter().any(|event| event["detail-type"] == "Grant Expired") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(found)
}

async fn wait_for_link(
    http: &reqwest::Client,
    emulator_url: &str,
    request_id: &str,
) -> Result<String, Failure> {
    for _ in 0..100 {
        let mail = sent_mail(http, emulator_url).await?;
        if let Some(link) =
            mail.iter().filter(|m| m.body.contains(request_id)).flat_map(SentMail::links).next()
        {
            return Ok(link);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err("no approval mail arrived".into())
}

async fn approve_through_page(http: &reqwest::Client, link: &str) -> Result<(), Failure> {
    let page = http.get(link).send().await?.text().await?;
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .ok_or("the approval page has no form")?;
    let response = http
        .post(link)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&decision=approve"))
        .send()
        .await?;
    if !response.status().is_success() {
        return Err(format!("approval refused: {}", response.status()).into());
    }
    Ok(())
}

async fn wait_for_state(
    api: &Api,
    id: &str,
    states: &[&str],
    limit: Duration,
) -> Result<Value, Failure> {
    let started = std::time::Instant::now();
    let mut last = String::new();
    loop {
        let request = api.call("GET", &format!("/requests/{id}"), None).await?;
        let state = request["state"].as_str().unwrap_or("?").to_string();
        if states.contains(&state.as_str()) {
            println!();
            return Ok(request);
        }
        if state != last {
            print!("   {state} ");
            last = state;
        } else {
            print!(".");
        }
        use std::io::Write;
        std::io::stdout().flush().ok();
        if started.elapsed() > limit {
            return Err(format!("gave up waiting for {id} to become {states:?}").into());
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// How often the local stack runs the reconciliation sweep, in rounds of about a second;
/// deployed, an EventBridge rule runs it every few minutes.
const SWEEP_EVERY_ROUNDS: u64 = 60;

/// How often the local stack raises alerts and checks access reviews, in rounds of about a
/// second; deployed, an EventBridge rule runs it every hour.
const OVERSIGHT_EVERY_ROUNDS: u64 = 3600;

/// Background work of the stack: fire due schedules, sweep, show new mail and policy changes.
async fn watch(
    clients: AwsClients,
    pim: Arc<Pim>,
    emulator_url: String,
    group: String,
    catalog: Catalog,
    shipper: AuditShipper,
) {
    let http = reqwest::Client::new();
    let mut seen_mail: HashSet<String> = HashSet::new();
    let mut policies: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for round in 1.. {
        if round % SWEEP_EVERY_ROUNDS == 0 {
            match pim_revocation::sweep(&pim).await {
                Ok(report) => log(&format!("sweep: {report}")),
                Err(err) => log(&format!("sweep failed: {err}")),
            }
        }
        // Alerts and access reviews: hourly deployed, and once at start here so the
        // example's scheduled review shows its mail.
        if round % OVERSIGHT_EVERY_ROUNDS == 1 {
            match pim_revocation::oversight(&pim).await {
                Ok(report) => log(&format!("oversight: {report}")),
                Err(err) => log(&format!("oversight failed: {err}")),
            }
        }
        match fire_due(&clients.scheduler, &group, &pim, SystemClock.now()).await {
            Ok(fired) => {
                for f in fired {
                    log(&format!(
                        "schedule {} fired → revocation answered {:?}",
                        f.name, f.outcome
                    ));
                }
            }
            Err(err) => log(&format!("firing schedules failed: {err}")),
        }
        // The audit shipper runs every minute in AWS; here every second, as schedules do.
        match shipper.ship().await {
            Ok(shipped) if shipped.records > 0 => log(&format!(
                "audit: {} records shipped to the log group and {} events to the bus, chain at {}",
                shipped.records, shipped.events, shipped.through
            )),
            Ok(_) => {}
            Err(err) => log(&format!("audit shipping failed: {err}")),
        }
        if let Ok(mail) = sent_mail(&http, &emulator_url).await {
            for message in mail.into_iter().filter(|m| seen_mail.insert(m.id.clone())) {
                log(&format!("mail to {}: {}", message.to.join(", "), message.subject));
                for link in message.links() {
                    log(&format!("  link: {link}"));
                }
            }
        }
        for role in requester_roles(&catalog) {
            let name = role_name_of(&role).to_string();
            let Ok(listed) = clients.iam.list_role_policies().role_name(&name).send().await else {
                continue;
            };
            let now: Vec<String> = listed.policy_names().to_vec();
            let before = policies.insert(name.clone(), now.clone()).unwrap_or_default();
            for added in now.iter().filter(|p| !before.contains(p)) {
                log(&format!("IAM: {added} attached to role {name}"));
            }
            for removed in before.iter().filter(|p| !now.contains(p)) {
                log(&format!("IAM: {removed} removed from role {name}"));
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

fn say(text: &str) {
    println!("\x1b[1m==> {text}\x1b[0m");
}

fn log(text: &str) {
    println!("    [stack] {text}");
}

/// The SDK configuration that points every client at the emulator at `url`.
async fn emulator_config(url: &str) -> aws_config::SdkConfig {
    pim::adapters::sdk_config_loader()
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "local",
            "local",
            None,
            None,
            "pim-local",
        ))
        .load()
        .await
}
