//! The harness of the end-to-end tests: a whole stack per test, in its own emulator account.
//!
//! Every test shares one emulator (started by `scripts/test`, found through
//! `PIM_EMULATOR_URL`) and is isolated from the others by a random account id, sent with
//! every SDK call as the emulator's `x-moto-account-id` header. The stack's clock is a
//! [`ManualClock`], so tests move time instead of waiting. SDK retries are off, so a
//! mistake fails fast instead of being retried for seconds.
//!
//! A stack can also talk to the emulator through a [`proxy::FaultProxy`] (see
//! [`TestStack::through_proxy`]): the domain's clients go through the proxy, while the
//! test's own clients (`clients`, used to inspect and seed) go straight to the emulator.

pub mod proxy;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::retry::RetryConfig;
use pim::adapters::AwsClients;
use pim::backoff::Backoff;
use pim::catalog::{Catalog, role_name_of};
use pim::clock::ManualClock;
use pim::clock::SystemClock;
use pim::config::{AuditSettings, Settings};
use pim::metrics::RecordedMetrics;
use pim::model::ExpiryEvent;
use pim::service::{AuditShipper, Pim};
use pim_local::auth::KeyRing;
use pim_local::gateway::{self, Authentication, CALLER_HEADER, OIDC_HEADER};
use pim_local::mailbox::{SentMail, sent_mail};
use pim_local::provision::{
    EXAMPLE_POLICY, StackNames, provision, provision_audit, requester_roles,
};
use proxy::FaultProxy;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Principals of the example policy's people.
pub mod people {
    /// Requests prod-readonly and prod-db-admin.
    pub const ALICE: &str = "arn:aws:sts::123456789012:assumed-role/engineer/alice";
    /// Requests and approves prod-readonly.
    pub const BOB: &str = "arn:aws:sts::123456789012:assumed-role/engineer/bob";
    /// Approves both roles.
    pub const CAROL: &str = "arn:aws:sts::123456789012:assumed-role/security/carol";
    /// Known, but eligible for nothing.
    pub const DAVE: &str = "arn:aws:sts::123456789012:assumed-role/contractor/dave";
    /// Unknown to the policy document.
    pub const MALLORY: &str = "arn:aws:sts::123456789012:assumed-role/engineer/mallory";
}

/// The emulator's URL, from `PIM_EMULATOR_URL` (set by `scripts/test`).
pub fn emulator_url() -> String {
    std::env::var("PIM_EMULATOR_URL").unwrap_or_else(|_| {
        panic!("PIM_EMULATOR_URL is not set: run the tests with scripts/test, which starts the emulator")
    })
}

/// Sends every call to one emulator account.
#[derive(Debug)]
struct AccountHeader(String);

impl Intercept for AccountHeader {
    fn name(&self) -> &'static str {
        "AccountHeader"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        context.request_mut().headers_mut().insert("x-moto-account-id", self.0.clone());
        Ok(())
    }
}

/// SDK clients bound to one emulator account, retries off.
pub async fn clients_for(account: &str) -> AwsClients {
    clients_via(account, &emulator_url(), RetryConfig::disabled()).await
}

/// SDK clients bound to one emulator account, calling `endpoint` (the emulator or a proxy
/// in front of it) with the SDK retry behaviour `retry`.
pub async fn clients_via(account: &str, endpoint: &str, retry: RetryConfig) -> AwsClients {
    let config = sdk_config(endpoint, retry).await;
    let header = || AccountHeader(account.to_string());
    AwsClients {
        logs: aws_sdk_cloudwatchlogs::Client::from_conf(
            aws_sdk_cloudwatchlogs::config::Builder::from(&config).interceptor(header()).build(),
        ),
        dynamodb: aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&config).interceptor(header()).build(),
        ),
        iam: aws_sdk_iam::Client::from_conf(
            aws_sdk_iam::config::Builder::from(&config).interceptor(header()).build(),
        ),
        kms: aws_sdk_kms::Client::from_conf(
            aws_sdk_kms::config::Builder::from(&config).interceptor(header()).build(),
        ),
        scheduler: aws_sdk_scheduler::Client::from_conf(
            aws_sdk_scheduler::config::Builder::from(&config).interceptor(header()).build(),
        ),
        ses: aws_sdk_sesv2::Client::from_conf(
            aws_sdk_sesv2::config::Builder::from(&config).interceptor(header()).build(),
        ),
    }
}

/// An EventBridge client bound to one emulator account, calling `endpoint` with the SDK
/// retry behaviour `retry` (kept apart from [`AwsClients`], as the shipper keeps it).
pub async fn events_client_via(
    account: &str,
    endpoint: &str,
    retry: RetryConfig,
) -> aws_sdk_eventbridge::Client {
    let config = sdk_config(endpoint, retry).await;
    aws_sdk_eventbridge::Client::from_conf(
        aws_sdk_eventbridge::config::Builder::from(&config)
            .interceptor(AccountHeader(account.to_string()))
            .build(),
    )
}

async fn sdk_config(endpoint: &str, retry: RetryConfig) -> aws_config::SdkConfig {
    pim::adapters::sdk_config_loader()
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .retry_config(retry)
        .load()
        .await
}

/// A random 12-digit account id.
pub fn random_account() -> String {
    format!("{:012}", rand::random::<u64>() % 900_000_000_000 + 100_000_000_000)
}

/// One stack: resources in its own account, the domain on a manual clock, and the gateway
/// on a loopback port.
pub struct TestStack {
    /// The emulator account.
    pub account: String,
    /// Clients bound to the account.
    pub clients: AwsClients,
    /// The settings the functions would read.
    pub settings: Settings,
    /// The domain, as the functions build it.
    pub pim: Arc<Pim>,
    /// The audit shipper's settings.
    pub audit: AuditSettings,
    /// An EventBridge client bound to the account (straight to the emulator).
    pub events: aws_sdk_eventbridge::Client,
    /// The audit shipper, as its function builds it (on the system clock: CloudWatch
    /// refuses events far from the present).
    pub shipper: AuditShipper,
    /// The stack's clock.
    pub clock: Arc<ManualClock>,
    /// The gateway's base URL.
    pub base_url: String,
    /// An HTTP client without cookies or redirects.
    pub http: reqwest::Client,
    /// The metrics the domain emitted.
    pub metrics: Arc<RecordedMetrics>,
    /// The proxy between the domain and the emulator, when there is one.
    pub proxy: Option<FaultProxy>,
    /// The local keys whose SigV4 signatures the gateway verifies; `None` when the gateway
    /// trusts the `X-Pim-Caller` header instead (the default of these tests, which call
    /// the functions as anyone).
    pub keys: Option<Arc<KeyRing>>,
}

/// The retry budget of test stacks: the production shape, in milliseconds.
pub const TEST_BACKOFF: Backoff =
    Backoff { attempts: 4, base: Duration::from_millis(1), cap: Duration::from_millis(4) };

/// An HTTP answer: status, headers and body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body text.
    pub text: String,
}

impl Answer {
    /// The CSRF token of the page's form, if it has one.
    pub fn csrf(&self) -> Option<String> {
        let rest = self.text.split("name=\"csrf\" value=\"").nth(1)?;
        rest.split('"').next().map(str::to_string)
    }

    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|_| panic!("not JSON: {}", self.text))
    }

    /// The problem code of a JSON problem document, or of an HTML error page.
    pub fn code(&self) -> String {
        if let Ok(json) = serde_json::from_str::<Value>(&self.text) {
            return json["code"].as_str().unwrap_or_default().to_string();
        }
        self.text
            .split("data-code=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default()
            .to_string()
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }
}

impl TestStack {
    /// Provisions a stack with the example policy document.
    pub async fn start() -> Self {
        Self::with_policy(EXAMPLE_POLICY).await
    }

    /// Provisions a stack with `policy` as its policy document.
    pub async fn with_policy(policy: &str) -> Self {
        Self::build(policy, None, false).await
    }

    /// Provisions a stack with `policy` whose gateway verifies SigV4 signatures made with
    /// [`TestStack::keys`], as the local stack people use does.
    pub async fn with_signatures(policy: &str) -> Self {
        Self::build(policy, None, true).await
    }

    /// Provisions a stack whose domain calls AWS through a fresh fault proxy, with the SDK
    /// retry behaviour `retry` (the test's own clients bypass the proxy).
    pub async fn through_proxy(retry: RetryConfig) -> Self {
        let proxy = FaultProxy::start(&emulator_url(), 7).await;
        Self::build(EXAMPLE_POLICY, Some((proxy, retry)), false).await
    }

    /// The stack's proxy; panics for a stack without one.
    pub fn proxy(&self) -> &FaultProxy {
        self.proxy.as_ref().expect("a stack started through_proxy")
    }

    async fn build(
        policy: &str,
        proxy: Option<(FaultProxy, RetryConfig)>,
        signatures: bool,
    ) -> Self {
        let account = random_account();
        let clients = clients_for(&account).await;
        let catalog = Catalog::from_yaml(policy).expect("test policy is valid");
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let base_url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let names = StackNames {
            table: "pim-test".into(),
            schedule_group: "pim-test-expiry".into(),
            sender: "pim@example.com".into(),
            public_url: base_url.clone(),
            policy_file: "policy.yaml".into(),
            account: account.clone(),
        };
        let settings = provision(&clients, &catalog, &names).await.expect("provisioning");
        let clock = Arc::new(ManualClock::at(chrono::Utc::now()));
        let domain_clients = match &proxy {
            Some((proxy, retry)) => clients_via(&account, proxy.url(), retry.clone()).await,
            None => clients.clone(),
        };
        let metrics = Arc::new(RecordedMetrics::default());
        let mut pim = Pim::with_aws(&settings, catalog, &domain_clients, clock.clone());
        pim.metrics = metrics.clone();
        pim.backoff = TEST_BACKOFF;
        let pim = Arc::new(pim);
        let events = events_client_via(&account, &emulator_url(), RetryConfig::disabled()).await;
        let audit = provision_audit(
            &clients,
            &events,
            &settings.table,
            "pim-test-audit",
            "pim-test-events",
        )
        .await
        .expect("provisioning the audit stream");
        let shipper = AuditShipper::with_aws(&audit, &clients, &events, Arc::new(SystemClock));
        let keys = signatures.then(|| Arc::new(KeyRing::issue(&pim.catalog, "us-east-1")));
        tokio::spawn(gateway::serve(listener, pim.clone(), authentication(&keys)));
        let http =
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let proxy = proxy.map(|(proxy, _)| proxy);
        Self {
            account,
            clients,
            settings,
            pim,
            audit,
            events,
            shipper,
            clock,
            base_url,
            http,
            metrics,
            proxy,
            keys,
        }
    }

    /// The domain as another process would build it, as Lambda runs each function in a
    /// process of its own: the stack's settings, policy document and clock, and new clients
    /// (through the stack's proxy when it has one, with `retry`), so none of the state a
    /// process keeps between invocations, such as the audit chain head it last wrote.
    pub async fn another_process(&self, retry: RetryConfig) -> Arc<Pim> {
        let clients = match &self.proxy {
            Some(proxy) => clients_via(&self.account, proxy.url(), retry).await,
            None => clients_via(&self.account, &emulator_url(), retry).await,
        };
        let catalog = self.pim.catalog.as_ref().clone();
        let mut pim = Pim::with_aws(&self.settings, catalog, &clients, self.clock.clone());
        pim.metrics = self.metrics.clone();
        pim.backoff = TEST_BACKOFF;
        Arc::new(pim)
    }

    /// Serves `pim` on a gateway of its own; returns its base URL. Links mailed by any
    /// process name the stack's gateway: replace `base_url` in them to reach this one.
    pub async fn serve(&self, pim: Arc<Pim>) -> String {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let base_url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        tokio::spawn(gateway::serve(listener, pim, authentication(&self.keys)));
        base_url
    }

    /// The stack's current time.
    pub fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        pim::clock::Clock::now(self.clock.as_ref())
    }

    /// Sends a request through the gateway as `caller` (an IAM ARN, or `None`).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        caller: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Answer {
        let mut request = self.http.request(method, format!("{}{path}", self.base_url)).body(body);
        if let Some(caller) = caller {
            request = request.header(CALLER_HEADER, caller);
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        answer(request).await
    }

    /// `POST /requests` with a JSON body as `caller`.
    pub async fn create(&self, caller: &str, body: Value) -> Answer {
        let body = serde_json::to_vec(&body).unwrap();
        self.call(reqwest::Method::POST, "/requests", Some(caller), Some("application/json"), body)
            .await
    }

    /// `POST path` with a JSON body, as `caller` (an IAM ARN).
    pub async fn post_json(&self, caller: &str, path: &str, body: Value) -> Answer {
        let body = serde_json::to_vec(&body).unwrap();
        self.call(reqwest::Method::POST, path, Some(caller), Some("application/json"), body).await
    }

    /// `POST /requests` as the OIDC subject `subject`.
    pub async fn create_as_oidc(&self, subject: &str, body: Value) -> Answer {
        let request = self
            .http
            .post(format!("{}/requests", self.base_url))
            .header(OIDC_HEADER, subject)
            .json(&body);
        answer(request).await
    }

    /// `GET /requests/{id}` as `caller`.
    pub async fn show(&self, caller: &str, id: &str) -> Answer {
        self.call(reqwest::Method::GET, &format!("/requests/{id}"), Some(caller), None, vec![])
            .await
    }

    /// A request alice makes for prod-readonly for an hour, expected to be accepted.
    pub async fn alice_requests_readonly(&self) -> Value {
        let created = self.create(people::ALICE, serde_json::json!({
            "role": "prod-readonly", "duration": "PT1H", "justification": "incident INC-1234: reading logs"
        })).await;
        assert_eq!(created.status, 201, "{}", created.text);
        created.json()
    }

    /// The approval link mailed to `email` for `request_id`.
    pub async fn link_for(&self, email: &str, request_id: &str) -> String {
        let mail = self.mail_to(email, request_id).await;
        let links = mail.links();
        assert_eq!(links.len(), 1, "one link per approval mail: {}", mail.body);
        links[0].clone()
    }

    /// The mail sent to `email` that mentions `needle` (waits up to ten seconds).
    pub async fn mail_to(&self, email: &str, needle: &str) -> SentMail {
        for _ in 0..50 {
            let mail = self.all_mail_to(email, needle).await;
            if let Some(found) = mail.into_iter().next() {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("no mail to {email} about {needle}");
    }

    /// Every mail sent to `email` mentioning `needle`, oldest first.
    pub async fn all_mail_to(&self, email: &str, needle: &str) -> Vec<SentMail> {
        let mail = sent_mail(&self.http, &emulator_url()).await.expect("mailbox");
        mail.into_iter()
            .filter(|m| m.to.iter().any(|to| to == email) && m.body.contains(needle))
            .collect()
    }

    /// Opens an approval link like a browser: GET, returning the page and its CSRF cookie.
    pub async fn open(&self, link: &str) -> (Answer, Option<String>) {
        let opened = answer(self.http.get(link)).await;
        let cookie =
            opened.header("set-cookie").and_then(|c| c.split(';').next().map(str::to_string));
        (opened, cookie)
    }

    /// Opens the link and presses a button on the page, like an approver.
    pub async fn press(&self, link: &str, decision: &str) -> Answer {
        let (page, cookie) = self.open(link).await;
        let (Some(csrf), Some(cookie)) = (page.csrf(), cookie) else {
            return page;
        };
        self.post_form(link, &cookie, &format!("csrf={csrf}&decision={decision}")).await
    }

    /// POSTs a form to a link with a cookie, as the page's own form would.
    pub async fn post_form(&self, link: &str, cookie: &str, form: &str) -> Answer {
        let request = self
            .http
            .post(link)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", cookie)
            .header("origin", &self.base_url)
            .body(form.to_string());
        answer(request).await
    }

    /// Everything the system could have changed: table items, grant policies on every
    /// requester role, and schedules.
    pub async fn snapshot(&self) -> Snapshot {
        let mut items = BTreeMap::new();
        let scanned = self
            .clients
            .dynamodb
            .scan()
            .table_name(&self.settings.table)
            .send()
            .await
            .expect("scan");
        for item in scanned.items() {
            let text = |name: &str| {
                item.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
            };
            let sorted: BTreeMap<&String, &AttributeValue> = item.iter().collect();
            items.insert(format!("{}|{}", text("pk"), text("sk")), format!("{sorted:?}"));
        }
        let mut policies = BTreeMap::new();
        for role in requester_roles(&self.pim.catalog) {
            let name = role_name_of(&role).to_string();
            let listed = self
                .clients
                .iam
                .list_role_policies()
                .role_name(&name)
                .send()
                .await
                .expect("list policies");
            policies.insert(name, listed.policy_names().to_vec());
        }
        let schedules = self
            .clients
            .scheduler
            .list_schedules()
            .group_name(&self.settings.schedule_group)
            .send()
            .await
            .expect("list schedules")
            .schedules()
            .iter()
            .filter_map(|s| s.name().map(str::to_string))
            .collect();
        Snapshot { items, policies, schedules }
    }

    /// The grant policy documents on a role, by name.
    pub async fn role_policies(&self, role_name: &str) -> BTreeMap<String, Value> {
        let listed =
            self.clients.iam.list_role_policies().role_name(role_name).send().await.expect("list");
        let mut found = BTreeMap::new();
        for name in listed.policy_names() {
            let policy = self
                .clients
                .iam
                .get_role_policy()
                .role_name(role_name)
                .policy_name(name)
                .send()
                .await
                .unwrap();
            let text = percent_encoding::percent_decode_str(policy.policy_document())
                .decode_utf8_lossy()
                .into_owned();
            found.insert(name.clone(), serde_json::from_str(&text).unwrap());
        }
        found
    }

    /// When the schedule `name` fires, or `None` when there is no such schedule.
    pub async fn schedule_time(&self, name: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        let schedule = self
            .clients
            .scheduler
            .get_schedule()
            .group_name(&self.settings.schedule_group)
            .name(name)
            .send()
            .await
            .ok()?;
        schedule.schedule_expression().and_then(pim::adapters::scheduler::parse_at_expression)
    }

    /// The input of a schedule: the payload the scheduler would deliver to revocation.
    pub async fn schedule_payload(&self, name: &str) -> ExpiryEvent {
        let schedule = self
            .clients
            .scheduler
            .get_schedule()
            .group_name(&self.settings.schedule_group)
            .name(name)
            .send()
            .await
            .expect("schedule exists");
        let input = schedule.target().and_then(|t| t.input()).expect("schedule has input");
        serde_json::from_str(input).expect("schedule input is an expiry event")
    }

    /// Stored refusal records (those that changed nothing else), in chain order.
    pub async fn refusals(&self) -> Vec<Value> {
        self.chain().await.into_iter().filter(|record| record["outcome"] == "refused").collect()
    }

    /// Every audit record of the chain, in chain order, read from the table.
    pub async fn chain(&self) -> Vec<Value> {
        let lines = pim::ports::AuditChain::chain_records(&self.store(), 0, usize::MAX)
            .await
            .expect("chain records");
        lines.iter().map(|line| serde_json::from_str(line).unwrap()).collect()
    }

    /// The stack's store, for reading the chain.
    pub fn store(&self) -> pim::adapters::DynamoRequestStore {
        pim::adapters::DynamoRequestStore::new(self.clients.dynamodb.clone(), &self.settings.table)
    }

    /// Every line of the audit log group, read through the SDK, oldest first.
    pub async fn audit_stream(&self) -> Vec<String> {
        let sink = pim::adapters::CloudWatchAuditSink::new(
            self.clients.logs.clone(),
            &self.audit.log_group,
        );
        pim::ports::AuditSink::read_all(&sink).await.expect("read the audit log group")
    }
}

impl TestStack {
    /// Creates a rule on the stack's bus that sends the events matching `pattern` to a new
    /// log group, as a subscriber would; returns the log group's name.
    pub async fn subscribe(&self, rule: &str, pattern: &Value) -> String {
        let log_group = format!("/pim-test/{rule}");
        self.clients.logs.create_log_group().log_group_name(&log_group).send().await.unwrap();
        self.events
            .put_rule()
            .name(rule)
            .event_bus_name(&self.audit.event_bus)
            .event_pattern(pattern.to_string())
            .send()
            .await
            .expect("put the rule");
        let target = aws_sdk_eventbridge::types::Target::builder()
            .id("log-group")
            .arn(format!("arn:aws:logs:us-east-1:{}:log-group:{log_group}", self.account))
            .build()
            .unwrap();
        self.events
            .put_targets()
            .rule(rule)
            .event_bus_name(&self.audit.event_bus)
            .targets(target)
            .send()
            .await
            .expect("put the target");
        log_group
    }

    /// Every event a subscription's log group received, as EventBridge delivered them
    /// (`source`, `detail-type`, `detail`, ...), in the order of their chain `sequence`.
    pub async fn delivered(&self, log_group: &str) -> Vec<Value> {
        pim_local::subscriber::delivered_events(
            &self.http,
            &emulator_url(),
            &self.account,
            log_group,
        )
        .await
        .expect("read the subscription's log group")
    }
}

/// What a stack holds at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Table items by `pk|sk`, rendered.
    pub items: BTreeMap<String, String>,
    /// Inline policy names by role.
    pub policies: BTreeMap<String, Vec<String>>,
    /// Schedule names.
    pub schedules: Vec<String>,
}

impl Snapshot {
    /// The snapshot without the audit chain (records and head), to compare state while
    /// refusals are recorded: a refusal appends to the chain and changes nothing else.
    pub fn without_refusals(&self) -> Self {
        let mut copy = self.clone();
        copy.items.retain(|key, _| !key.starts_with("AUDIT#"));
        copy
    }
}

/// Sends `request` and reads the whole answer.
pub async fn answer(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("gateway answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    Answer { status, headers, text }
}

/// A string attribute value.
pub fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_string())
}

/// Everything the stacks of this test process log, as the functions would write it (JSON
/// lines), captured from the first call on: tests scan it for secrets.
pub fn captured_logs() -> String {
    let buffer = log_buffer();
    String::from_utf8_lossy(&buffer.lock().unwrap()).into_owned()
}

/// Starts capturing logs into the buffer [`captured_logs`] reads: everything of the domain,
/// and `info` and above of the libraries, as a function logs at its default level.
pub fn capture_logs() {
    static INSTALLED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    INSTALLED.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        let levels = tracing_subscriber::filter::Targets::new()
            .with_default(tracing::Level::INFO)
            .with_target("pim", tracing::Level::TRACE);
        let _ = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(|| LogWriter)
            .finish()
            .with(levels)
            .try_init();
    });
}

fn log_buffer() -> &'static std::sync::Mutex<Vec<u8>> {
    static BUFFER: std::sync::OnceLock<std::sync::Mutex<Vec<u8>>> = std::sync::OnceLock::new();
    BUFFER.get_or_init(Default::default)
}

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        log_buffer().lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How a test gateway knows its callers: by their signatures when the stack issued keys,
/// else by the trusted caller headers.
fn authentication(keys: &Option<Arc<KeyRing>>) -> Authentication {
    match keys {
        Some(keys) => Authentication::SigV4(keys.clone()),
        None => Authentication::TrustedHeaders,
    }
}

/// The actions of a request's history, as `GET /requests/{id}` shows it, oldest first.
pub fn history_actions(request: &Value) -> Vec<String> {
    let history = request["history"].as_array().expect("the request's history");
    history.iter().map(|r| r["action"].as_str().unwrap().to_string()).collect()
}
