//! `pim` as an engineer runs it: the real binary against a local stack over HTTP, every call
//! signed with SigV4 by the binary and verified by the stack's gateway. Credentials reach
//! the binary the standard way: an AWS config and credentials file with one profile per
//! person (what the local stack writes), chosen with `--profile`.
//!
//! The stack and the emulator are shared with the end-to-end tests (`scripts/test` starts
//! the emulator); approvals are given by following the emailed link, like an approver.

use pim_tests::{TestStack, people};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The example policy plus a role alice gets at once, for extending and revoking without
/// an approver.
fn policy() -> String {
    format!(
        "{}{}",
        pim_local::provision::EXAMPLE_POLICY,
        r#"
  - name: sandbox
    description: List the sandbox bucket.
    statements:
      - actions: ["s3:ListBucket"]
        resources: ["arn:aws:s3:::sandbox-bucket"]
    default_duration: PT30M
    max_duration: PT2H
    requesters: [alice]
    approval:
      - name: self-service
        auto_approve: true
"#
    )
}

/// How `pim` finds the stack and its credentials.
struct Pim {
    home: PathBuf,
    endpoint: String,
}

/// What one run printed and how it ended.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|err| panic!("stdout is not JSON ({err}): {self:?}"))
    }

    fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "{self:#?}");
        self
    }
}

impl Pim {
    /// Writes the stack's profiles into a fresh folder, as the local stack does.
    fn for_stack(stack: &TestStack) -> Self {
        let home = std::env::temp_dir().join(format!("pim-cli-{}", uuid::Uuid::new_v4()));
        let keys = stack.keys.as_ref().expect("a stack with signatures");
        keys.write_aws_files(&home.join("aws")).expect("write the AWS files");
        Self { home, endpoint: stack.base_url.clone() }
    }

    fn command(&self, profile: &str, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_pim"));
        self.environment(&mut command);
        command.arg("--profile").arg(profile).args(args);
        command
    }

    /// The environment of every run: the stack's profiles and endpoint, nothing inherited
    /// that could choose other credentials.
    fn environment(&self, command: &mut Command) {
        for name in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_ENDPOINT_URL",
            "NO_COLOR",
        ] {
            command.env_remove(name);
        }
        command
            .env("AWS_CONFIG_FILE", self.home.join("aws/config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", self.home.join("aws/credentials"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("PIM_CONFIG", self.home.join("pim.toml"))
            .env("PIM_ENDPOINT", &self.endpoint);
    }

    /// Runs `pim --profile PROFILE ARGS…` on a terminal (through `script`), with `NO_COLOR`
    /// set or not, and returns what the terminal showed.
    fn run_on_terminal(&self, profile: &str, args: &str, no_color: bool) -> String {
        let line = format!("{} --profile {profile} {args}", env!("CARGO_BIN_EXE_pim"));
        let mut command = Command::new("script");
        self.environment(&mut command);
        if no_color {
            command.env("NO_COLOR", "1");
        }
        let output = command
            .args(["-qec", &line, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .expect("script(1) from util-linux runs a command on a terminal");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs `pim --profile PROFILE ARGS…` to its end.
    async fn run(&self, profile: &str, args: &[&str]) -> Run {
        let mut command = self.command(profile, args);
        let output =
            tokio::task::spawn_blocking(move || command.output().expect("pim runs")).await.unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Starts a long-running `pim` and returns it with the first line it printed.
    async fn start(&self, profile: &str, args: &[&str]) -> (Running, String) {
        let mut child = self
            .command(profile, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("pim starts");
        let stdout = child.stdout.take().unwrap();
        let (first_line, rest) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            first_line.send(line).unwrap();
            let mut remaining = String::new();
            reader.read_to_string(&mut remaining).unwrap();
            remaining
        });
        let line = tokio::task::spawn_blocking(move || rest.recv().expect("pim printed a line"))
            .await
            .unwrap();
        (Running { child, reader }, line)
    }
}

/// A `pim` still running.
struct Running {
    child: Child,
    reader: std::thread::JoinHandle<String>,
}

impl Running {
    async fn finish(self) -> Run {
        let Running { mut child, reader } = self;
        tokio::task::spawn_blocking(move || {
            let mut stderr = String::new();
            child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
            let status = child.wait().unwrap();
            Run { code: status.code().unwrap_or(-1), stdout: reader.join().unwrap(), stderr }
        })
        .await
        .unwrap()
    }

    fn interrupt(&self) {
        let sent = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        assert!(sent.unwrap().success());
    }
}

/// The request id in `request req-… for …`.
fn request_id_in(line: &str) -> String {
    line.split_whitespace()
        .find(|word| word.starts_with("req-"))
        .unwrap_or_else(|| panic!("no request id in {line:?}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_approved_by_link_then_shown_extended_and_revoked() {
    let stack = TestStack::with_signatures(&policy()).await;
    let pim = Pim::for_stack(&stack);

    // What alice may request, for people and for scripts.
    let roles = pim.run("alice", &["roles"]).await;
    roles.assert_code(0);
    assert!(roles.stdout.contains("prod-readonly") && roles.stdout.contains("1 of bob, carol"));
    let listed = pim.run("alice", &["roles", "--output", "json"]).await.json();
    let names: Vec<&str> =
        listed["roles"].as_array().unwrap().iter().map(|r| r["role"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["prod-readonly", "prod-db-admin", "prod-admin", "security-audit", "sandbox"]
    );

    // alice waits while bob approves from his mail.
    let (waiting, first) = pim
        .start(
            "alice",
            &[
                "request",
                "prod-readonly",
                "--for",
                "1h",
                "--reason",
                "incident INC-1234: reading logs",
                "--wait",
                "--poll-interval",
                "0.2",
            ],
        )
        .await;
    let id = request_id_in(&first);
    let link = stack.link_for("bob@example.com", &id).await;
    assert_eq!(stack.press(&link, "approve").await.status, 200);
    let done = waiting.finish().await;
    done.assert_code(0);
    let grant = id.replacen("req-", "grant-", 1);
    assert!(done.stdout.contains("prod-readonly is active until"), "{done:?}");
    assert!(done.stdout.contains(&format!("inline policy pim-{grant}")), "{done:?}");
    assert!(
        done.stdout.contains(", 59m left\n") || done.stdout.contains(", 1h left\n"),
        "{done:?}"
    );
    let policies = stack.role_policies("alice-workload").await;
    assert!(policies.contains_key(&format!("pim-{grant}")), "{policies:?}");

    // Its status, in full and as JSON.
    let status = pim.run("alice", &["status", &id]).await;
    status.assert_code(0);
    assert!(status.stdout.contains("bob approve"), "{status:?}");
    let shown = pim.run("alice", &["status", &grant, "-o", "json"]).await.json();
    assert_eq!(
        (shown["id"].as_str(), shown["state"].as_str()),
        (Some(id.as_str()), Some("active"))
    );
    assert_eq!(shown["grant"]["id"], grant.as_str());
    let active = pim.run("alice", &["list", "--active", "-o", "json"]).await.json();
    assert_eq!(active["grants"][0]["request_id"], id.as_str());
    assert_eq!(active["grants"][0]["approvers"], serde_json::json!(["bob"]));
    let ends: chrono::DateTime<chrono::Utc> =
        shown["grant"]["ends_at"].as_str().unwrap().parse().unwrap();

    // prod-readonly needs an approver for more time: without a reason for them, refused.
    let longer = pim.run("alice", &["extend", &grant, "--by", "30m"]).await;
    longer.assert_code(3);
    assert!(longer.stderr.contains("needs approvers") && longer.stderr.contains("--reason"));
    // With one, an extension request goes to bob; the grant keeps its end until he approves.
    let asked = pim
        .run("alice", &["extend", &grant, "--by", "30m", "--reason", "INC-1234 is still open"])
        .await;
    asked.assert_code(0);
    assert!(asked.stdout.contains(&format!("grant {grant} of prod-readonly still ends")));
    let extension = request_id_in(&asked.stdout);
    let unchanged = pim.run("alice", &["status", &grant, "-o", "json"]).await.json();
    assert_eq!(unchanged["grant"]["ends_at"], shown["grant"]["ends_at"]);
    let link = stack.link_for("bob@example.com", &extension).await;
    assert_eq!(stack.press(&link, "approve").await.status, 200);
    let moved = pim.run("alice", &["status", &grant, "-o", "json"]).await.json();
    let moved_end: chrono::DateTime<chrono::Utc> =
        moved["grant"]["ends_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(moved_end - ends, chrono::Duration::minutes(30));

    // A role policy grants by itself can be extended, then given back.
    let sandbox = pim
        .run(
            "alice",
            &["request", "sandbox", "--for", "30m", "--reason", "trying the sandbox", "-o", "json"],
        )
        .await;
    sandbox.assert_code(0);
    let sandbox = sandbox.json();
    let sandbox_grant = sandbox["grant"]["id"].as_str().unwrap().to_string();
    let ends: chrono::DateTime<chrono::Utc> =
        sandbox["grant"]["ends_at"].as_str().unwrap().parse().unwrap();
    let extended =
        pim.run("alice", &["extend", &sandbox_grant, "--by", "PT30M", "-o", "json"]).await;
    extended.assert_code(0);
    let new_end: chrono::DateTime<chrono::Utc> =
        extended.json()["grant"]["ends_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(new_end - ends, chrono::Duration::minutes(30));

    let revoked = pim.run("alice", &["revoke", &sandbox_grant]).await;
    revoked.assert_code(0);
    assert!(revoked.stdout.contains("is revoked"), "{revoked:?}");
    // An administrator ends alice's other grant, and must say why.
    let silent = pim.run("erin", &["revoke", &grant]).await;
    silent.assert_code(3);
    assert!(silent.stderr.contains("must give a reason"), "{silent:?}");
    let revoked =
        pim.run("erin", &["revoke", &grant, "--reason", "incident closed, access ends"]).await;
    revoked.assert_code(0);
    assert!(revoked.stdout.contains("of prod-readonly (alice) is revoked"), "{revoked:?}");
    assert!(stack.role_policies("alice-workload").await.is_empty());
    let after = pim.run("alice", &["list", "-o", "json"]).await.json();
    let mut states: Vec<&str> = after["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    states.sort();
    assert_eq!(states, ["applied", "revoked", "revoked"]);
    let none = pim.run("alice", &["list", "--active"]).await;
    none.assert_code(0);
    assert_eq!(none.stdout, "no live grants\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_exit_with_their_status_and_say_why() {
    let stack = TestStack::with_signatures(&policy()).await;
    let pim = Pim::for_stack(&stack);
    let reason = "incident INC-1234: reading logs";

    // Not eligible: 3.
    let dave =
        pim.run("dave", &["request", "prod-readonly", "--for", "1h", "--reason", reason]).await;
    dave.assert_code(3);
    assert!(dave.stderr.contains("dave may not request prod-readonly"), "{dave:?}");

    // Too long: 3, with the maximum; as JSON, the problem document and the status.
    let long =
        pim.run("alice", &["request", "prod-readonly", "--for", "5h", "--reason", reason]).await;
    long.assert_code(3);
    assert!(long.stderr.contains("at most PT4H"), "{long:?}");
    let problem = pim
        .run(
            "alice",
            &["request", "prod-readonly", "--for", "5h", "--reason", reason, "-o", "json"],
        )
        .await
        .json();
    assert_eq!(problem["code"], "duration_over_maximum");
    assert_eq!(problem["exit_code"], 3);

    // A duration pim cannot read is a usage error before any call: 2.
    let typo =
        pim.run("alice", &["request", "prod-readonly", "--for", "5x", "--reason", reason]).await;
    typo.assert_code(2);
    assert!(typo.stderr.contains("--for"), "{typo:?}");

    // Denied while waiting: 4, naming who.
    let (waiting, first) = pim
        .start(
            "alice",
            &["request", "prod-db-admin", "--reason", reason, "--wait", "--poll-interval", "0.2"],
        )
        .await;
    let id = request_id_in(&first);
    let link = stack.link_for("carol@example.com", &id).await;
    assert_eq!(stack.press(&link, "deny").await.status, 200);
    let denied = waiting.finish().await;
    denied.assert_code(4);
    assert!(denied.stderr.contains(&format!("request {id} was denied by carol")), "{denied:?}");

    // Nobody decided in time while waiting: 5.
    let (waiting, first) = pim
        .start(
            "alice",
            &["request", "prod-db-admin", "--reason", reason, "--wait", "--poll-interval", "0.2"],
        )
        .await;
    let id = request_id_in(&first);
    stack.clock.advance(chrono::Duration::hours(25));
    let deadline = serde_json::json!({ "kind": "request_expiry", "request_id": id });
    pim_revocation::handle_event(&stack.pim, deadline).await.expect("the deadline passes");
    let expired = waiting.finish().await;
    expired.assert_code(5);
    assert!(expired.stderr.contains("nobody decided in time"), "{expired:?}");

    // A grant that ended cannot be extended: 5, with when it ended.
    let sandbox = pim
        .run("alice", &["request", "sandbox", "--reason", "trying the sandbox", "-o", "json"])
        .await
        .json();
    let grant = sandbox["grant"]["id"].as_str().unwrap().to_string();
    stack.clock.advance(chrono::Duration::minutes(31));
    let payload = stack.schedule_payload(&format!("pim-expire-{grant}")).await;
    pim_revocation::handle(&stack.pim, payload).await.expect("the grant expires");
    let late = pim.run("alice", &["extend", &grant, "--by", "10m"]).await;
    late.assert_code(5);
    assert!(late.stderr.contains(&format!("grant {grant} expired at")), "{late:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_while_waiting_leaves_the_request_standing() {
    let stack = TestStack::with_signatures(&policy()).await;
    let pim = Pim::for_stack(&stack);
    let (waiting, first) = pim
        .start(
            "alice",
            &[
                "request",
                "prod-readonly",
                "--reason",
                "incident INC-9: logs",
                "--wait",
                "--poll-interval",
                "0.2",
            ],
        )
        .await;
    let id = request_id_in(&first);
    waiting.interrupt();
    let stopped = waiting.finish().await;
    stopped.assert_code(130);
    assert!(stopped.stderr.contains(&format!("request {id} still stands")), "{stopped:?}");
    assert!(stopped.stderr.contains(&format!("pim cancel {id}")), "{stopped:?}");
    let shown = pim.run("alice", &["status", &id, "-o", "json"]).await.json();
    assert_eq!(shown["state"], "pending");

    // And it can be withdrawn.
    let cancelled = pim.run("alice", &["cancel", &id]).await;
    cancelled.assert_code(0);
    assert!(cancelled.stdout.contains("cancelled"), "{cancelled:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signatures_and_wrong_endpoints_are_refused_with_the_fix() {
    let stack = TestStack::with_signatures(&policy()).await;
    let pim = Pim::for_stack(&stack);

    // Unsigned: the gateway refuses before any function runs.
    let unsigned = reqwest::get(format!("{}/roles", stack.base_url)).await.unwrap();
    assert_eq!(unsigned.status(), 403);
    let problem: Value = unsigned.json().await.unwrap();
    assert_eq!(problem["code"], "missing_signature");

    // The X-Pim-Caller header means nothing to a stack that verifies signatures.
    let forged = reqwest::Client::new()
        .get(format!("{}/requests", stack.base_url))
        .header(pim_local::gateway::CALLER_HEADER, people::ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    // alice's key id with a wrong secret.
    let credentials = pim.home.join("aws/credentials");
    let text = std::fs::read_to_string(&credentials).unwrap();
    let secret = &stack.keys.as_ref().unwrap().key_of("alice").unwrap().secret;
    let mut file = std::fs::File::create(&credentials).unwrap();
    file.write_all(text.replace(secret.as_str(), "not-alices-secret").as_bytes()).unwrap();
    let wrong = pim.run("alice", &["roles"]).await;
    wrong.assert_code(1);
    assert!(wrong.stderr.contains("signature does not match"), "{wrong:?}");
    assert!(wrong.stderr.contains("profile alice"), "{wrong:?}");

    // A profile that does not exist.
    let nobody = pim.run("nobody", &["roles"]).await;
    nobody.assert_code(1);
    assert!(nobody.stderr.contains("profile nobody"), "{nobody:?}");

    // An endpoint that is not pim (the emulator), and one where nothing listens.
    let emulator = Pim { home: pim.home.clone(), endpoint: pim_tests::emulator_url() };
    let other = emulator.run("bob", &["roles"]).await;
    other.assert_code(1);
    assert!(other.stderr.contains("is it the pim API?"), "{other:?}");
    assert!(other.stderr.contains("PIM_ENDPOINT"), "{other:?}");
    let closed = Pim { home: pim.home.clone(), endpoint: "http://127.0.0.1:9".into() };
    let unreachable = closed.run("bob", &["roles"]).await;
    unreachable.assert_code(1);
    assert!(unreachable.stderr.contains("cannot reach"), "{unreachable:?}");

    // No endpoint at all is a usage error that names the fixes.
    let mut command = pim.command("bob", &["roles"]);
    command.env_remove("PIM_ENDPOINT");
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("pim configure --endpoint URL"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn colour_only_on_a_terminal_and_never_with_no_color() {
    let stack = TestStack::with_signatures(&policy()).await;
    let pim = Pim::for_stack(&stack);
    let piped = pim.run("alice", &["roles"]).await;
    piped.assert_code(0);
    assert!(!piped.stdout.contains('\u{1b}'), "{piped:?}");

    let terminal = tokio::task::block_in_place(|| pim.run_on_terminal("alice", "roles", false));
    assert!(terminal.contains("\u{1b}[1mprod-readonly\u{1b}[0m"), "{terminal:?}");
    let plain = tokio::task::block_in_place(|| pim.run_on_terminal("alice", "roles", true));
    assert!(plain.contains("prod-readonly") && !plain.contains('\u{1b}'), "{plain:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configure_saves_the_endpoint_for_later_commands() {
    let stack = TestStack::with_signatures(&policy()).await;
    let pim = Pim::for_stack(&stack);
    let mut configure = pim.command("bob", &["configure", "--endpoint", &stack.base_url]);
    configure.env_remove("PIM_ENDPOINT");
    assert!(configure.output().unwrap().status.success());
    assert!(std::fs::read_to_string(pim.home.join("pim.toml")).unwrap().contains(&stack.base_url));

    let mut roles = pim.command("bob", &["roles", "-o", "json"]);
    roles.env_remove("PIM_ENDPOINT");
    let output = roles.output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listed["roles"][0]["role"], "prod-readonly");
    assert_eq!(listed["roles"][0]["approval"]["approvers"], serde_json::json!(["carol"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mfa_enrolment_shows_a_qr_code_and_confirms_the_first_code() {
    let stack = TestStack::with_signatures(&policy()).await;
    let pim = Pim::for_stack(&stack);
    let mut child = pim
        .command("bob", &["mfa", "enroll"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, shown) = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stdout);
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let done = line.contains("secret: ") || line.is_empty();
            lines.push(line);
            if done {
                break;
            }
        }
        let mut rest = String::new();
        (lines, std::thread::spawn(move || reader.read_to_string(&mut rest).map(|_| rest)))
    })
    .await
    .unwrap();
    let secret =
        lines.last().unwrap().trim().strip_prefix("secret: ").expect("the secret").to_string();
    assert!(lines.iter().any(|l| l.contains('▀') || l.contains('▄')), "a QR code: {lines:?}");
    assert!(lines.iter().any(|l| l.contains("otpauth://totp/")), "{lines:?}");

    let bytes = totp_rs::Secret::try_from_base32(&secret).unwrap().as_bytes().to_vec();
    let code = pim::mfa::code_at(&bytes, stack.clock_now()).unwrap();
    child.stdin.take().unwrap().write_all(format!("{code}\n").as_bytes()).unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    let rest = shown.join().unwrap().unwrap();
    assert!(status.success(), "{rest}");
    assert!(rest.contains("one-time codes are active"), "{rest}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administrators_see_everyones_grants_eligibility_reports_and_start_reviews() {
    let stack = TestStack::with_signatures(&policy()).await;
    let pim = Pim::for_stack(&stack);
    let sandbox = pim
        .run("alice", &["request", "sandbox", "--reason", "trying the sandbox", "-o", "json"])
        .await;
    sandbox.assert_code(0);
    let grant = sandbox.json()["grant"]["id"].as_str().unwrap().to_string();

    // Everyone's live grants: erin is an administrator, bob is not.
    let everyone = pim.run("erin", &["list", "--active", "--all", "-o", "json"]).await.json();
    let grants = everyone["grants"].as_array().unwrap();
    assert_eq!(grants.len(), 1, "{everyone}");
    assert_eq!(
        (grants[0]["grant_id"].as_str(), grants[0]["holder"].as_str()),
        (Some(grant.as_str()), Some("alice"))
    );
    let table = pim.run("erin", &["list", "--all"]).await;
    table.assert_code(0);
    assert!(table.stdout.contains(&grant) && table.stdout.contains("policy (self-service)"));
    let refused = pim.run("bob", &["list", "--active", "--all"]).await;
    refused.assert_code(3);
    assert!(refused.stderr.contains("pim list --active"), "{refused:?}");
    let own = pim.run("bob", &["list", "--active", "-o", "json"]).await.json();
    assert_eq!(own["grants"], serde_json::json!([]));
    let usage = pim.run("erin", &["list", "--all", "--pending"]).await;
    usage.assert_code(2);

    // Who may request prod-admin: the engineers, less dave (denied), who is not one anyway.
    let who = pim.run("erin", &["who-can", "prod-admin", "-o", "json"]).await.json();
    let people: Vec<&str> = who["eligibility"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["person"].as_str().unwrap())
        .collect();
    assert_eq!(people, ["alice", "bob"]);
    let who_table = pim.run("erin", &["who-can", "prod-admin"]).await;
    assert!(who_table.stdout.contains("two-person: 2 of carol, erin"), "{who_table:?}");
    // What alice may request agrees with the roles she is shown.
    let what = pim.run("alice", &["what-can", "-o", "json"]).await.json();
    let roles = pim.run("alice", &["roles", "-o", "json"]).await.json();
    let names = |list: &Value, field: &str, key: &str| -> Vec<String> {
        list[field]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e[key].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&what, "eligibility", "role"), names(&roles, "roles", "role"));
    let nosy = pim.run("alice", &["what-can", "bob"]).await;
    nosy.assert_code(3);
    let unknown = pim.run("erin", &["who-can", "no-such-role"]).await;
    unknown.assert_code(1);
    assert!(unknown.stderr.contains("no-such-role"), "{unknown:?}");

    // The report of today: alice's sandbox grant, as JSON, as a table and as a CSV file.
    let today = stack.clock_now().date_naive();
    let (from, to) = (today.to_string(), (today + chrono::Days::new(1)).to_string());
    let range = ["report", "--from", &from, "--to", &to];
    let report = pim.run("erin", &[&range[..], &["-o", "json"]].concat()).await.json();
    assert_eq!(names(&report, "grants", "grant_id"), std::slice::from_ref(&grant));
    assert_eq!(report["summary"]["per_person"], serde_json::json!({ "alice": 1 }));
    let shown = pim.run("erin", &range).await;
    shown.assert_code(0);
    assert!(shown.stdout.contains("per role          sandbox 1"), "{shown:?}");
    let file = pim.home.join("report.csv");
    let file_arg = file.to_str().unwrap();
    let csv = pim.run("erin", &[&range[..], &["--csv", "--out", file_arg]].concat()).await;
    csv.assert_code(0);
    let written = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = written.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert!(lines[0].starts_with("request_id,grant_id,holder,role"), "{written}");
    assert_eq!(lines.len(), 2, "{written}");
    assert!(lines[1].contains(&grant), "{written}");
    let again = pim.run("erin", &[&range[..], &["--csv", "--out", file_arg]].concat()).await;
    again.assert_code(2);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), written);
    let backwards = pim.run("erin", &["report", "--from", &to, "--to", &from]).await;
    backwards.assert_code(2);
    let not_admin = pim.run("alice", &range).await;
    not_admin.assert_code(3);
    // The CSV export reads the API's refusal too, and writes no file.
    let kept_out = pim.home.join("refused.csv");
    let out_arg = kept_out.to_str().unwrap();
    let csv_refused = pim.run("alice", &[&range[..], &["--csv", "--out", out_arg]].concat()).await;
    csv_refused.assert_code(3);
    assert!(csv_refused.stderr.contains("administrator"), "{csv_refused:?}");
    assert!(!kept_out.exists());

    // An access review of prod-admin, started on demand: security reviews alice and bob.
    let review = pim.run("erin", &["review", "start", "prod-admin", "-o", "json"]).await.json();
    assert_eq!(review["state"], "open");
    assert_eq!(review["reviewers"], serde_json::json!(["carol", "erin"]));
    let reviewed: Vec<&str> =
        review["items"].as_array().unwrap().iter().map(|i| i["person"].as_str().unwrap()).collect();
    assert_eq!(reviewed, people);
    let mail = stack.mail_to("carol@example.com", &format!("{}/reviews/", stack.base_url)).await;
    assert!(mail.body.contains(review["id"].as_str().unwrap()), "{}", mail.body);
    // The review pages are public like the approval pages: the signing gateway lets the
    // mailed link through unsigned, and carol decides from it.
    let link = mail.links().into_iter().find(|l| l.contains("/reviews/")).expect("a link");
    let (page, _) = stack.open(&link).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(stack.press(&link, "keep").await.status, 200);
    let no_reviewers = pim.run("erin", &["review", "start", "sandbox"]).await;
    no_reviewers.assert_code(3);
    let not_allowed = pim.run("alice", &["review", "start", "prod-admin"]).await;
    not_allowed.assert_code(3);
}
