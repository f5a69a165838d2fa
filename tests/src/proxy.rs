//! A fault-injecting HTTP proxy between the SDK and the emulator.
//!
//! Each call is identified by service and operation the way AWS routes it: the service is
//! the SigV4 credential scope's (`dynamodb`, `iam`, `kms`, `scheduler`, `ses`, `logs`,
//! `events`); the operation comes from `X-Amz-Target` for the JSON protocols (DynamoDB,
//! KMS, CloudWatch Logs, EventBridge's `AWSEvents.PutEvents`), from
//! `Action=` in the form body for IAM's query protocol, and from method and path for the
//! REST-JSON services (Scheduler, SES v2). Rules then, per operation:
//!
//! - throttle the next N calls, or every call with a probability (seeded, reproducible),
//!   answering with the service's own throttling error shape;
//! - forward the call and answer 500 instead of the reply (the write lands, the reply is
//!   lost);
//! - for EventBridge's `PutEvents`, fail one entry: forward the call without its last
//!   entry and answer 200 with that entry failed, as EventBridge reports a partial failure;
//! - add latency, or hold calls until the test releases them.
//!
//! Every call is counted per operation, faults included.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// What a rule does to a matching call.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with the service's throttling error; the call never reaches the emulator.
    Throttle,
    /// Forward the call, drop the reply, answer 500.
    LoseReply,
    /// Wait this long, then forward.
    Latency(Duration),
    /// Wait until the hold is released, then forward.
    Hold(HoldHandle),
    /// `PutEvents` only: forward without the last entry, answer with that entry failed.
    FailLastEntry,
}

#[derive(Debug)]
struct Rule {
    service: String,
    operation: String,
    fault: Fault,
    /// Matching calls to let through untouched before the rule applies.
    pass: u32,
    /// Calls left to affect; `None` affects every call.
    remaining: Option<u32>,
    /// Affect a call only with this probability.
    probability: Option<f64>,
}

/// A hold on one operation: calls wait until [`HoldHandle::release`].
#[derive(Debug, Clone)]
pub struct HoldHandle {
    released: watch::Sender<bool>,
    arrivals: Arc<(Mutex<u32>, Notify)>,
}

impl HoldHandle {
    fn new() -> Self {
        Self { released: watch::channel(false).0, arrivals: Arc::new(Default::default()) }
    }

    /// Waits until at least one call is being held.
    pub async fn arrived(&self) {
        loop {
            let notified = self.arrivals.1.notified();
            if *self.arrivals.0.lock().unwrap() > 0 {
                return;
            }
            notified.await;
        }
    }

    /// Lets every held call, and every later one, through.
    pub fn release(&self) {
        self.released.send_replace(true);
    }

    async fn wait(&self) {
        *self.arrivals.0.lock().unwrap() += 1;
        self.arrivals.1.notify_waiters();
        let mut released = self.released.subscribe();
        let _ = released.wait_for(|released| *released).await;
    }
}

struct State {
    upstream: String,
    http: reqwest::Client,
    rules: Mutex<Vec<Rule>>,
    counts: Mutex<BTreeMap<(String, String), u64>>,
    rng: Mutex<StdRng>,
}

/// A running proxy; it stops when the test's runtime ends.
#[derive(Clone)]
pub struct FaultProxy {
    url: String,
    state: Arc<State>,
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` on a loopback port, with `seed` for the
    /// probabilistic faults.
    pub async fn start(upstream: &str, seed: u64) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            rules: Mutex::new(Vec::new()),
            counts: Mutex::new(BTreeMap::new()),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        });
        let serving = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let state = serving.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| handle(state.clone(), request));
                    let _ =
                        http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Self { url, state }
    }

    /// The proxy's base URL, to use as the SDK's endpoint.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn add(&self, service: &str, operation: &str, fault: Fault, remaining: Option<u32>) {
        self.state.rules.lock().unwrap().push(Rule {
            service: service.into(),
            operation: operation.into(),
            fault,
            pass: 0,
            remaining,
            probability: None,
        });
    }

    /// Throttles the next `times` calls of the operation, then lets calls pass.
    pub fn throttle(&self, service: &str, operation: &str, times: u32) {
        self.add(service, operation, Fault::Throttle, Some(times));
    }

    /// Throttles each call of the operation with `probability`, from the seeded generator.
    pub fn throttle_randomly(&self, service: &str, operation: &str, probability: f64) {
        self.state.rules.lock().unwrap().push(Rule {
            service: service.into(),
            operation: operation.into(),
            fault: Fault::Throttle,
            pass: 0,
            remaining: None,
            probability: Some(probability),
        });
    }

    /// Forwards the next `times` calls of the operation but answers them with a 500.
    pub fn lose_reply(&self, service: &str, operation: &str, times: u32) {
        self.add(service, operation, Fault::LoseReply, Some(times));
    }

    /// Lets `pass` calls of the operation through, then forwards the next `times` but
    /// answers them with a 500.
    pub fn lose_reply_after(&self, service: &str, operation: &str, pass: u32, times: u32) {
        self.state.rules.lock().unwrap().push(Rule {
            service: service.into(),
            operation: operation.into(),
            fault: Fault::LoseReply,
            pass,
            remaining: Some(times),
            probability: None,
        });
    }

    /// Fails the last entry of each of the next `times` `PutEvents` calls: the other entries
    /// are delivered, and the answer (200) reports the last one failed.
    pub fn fail_last_event_entry(&self, times: u32) {
        self.add("events", "PutEvents", Fault::FailLastEntry, Some(times));
    }

    /// Delays every call of the operation by `by`.
    pub fn delay(&self, service: &str, operation: &str, by: Duration) {
        self.add(service, operation, Fault::Latency(by), None);
    }

    /// Holds every call of the operation until the returned handle is released.
    pub fn hold(&self, service: &str, operation: &str) -> HoldHandle {
        let hold = HoldHandle::new();
        self.add(service, operation, Fault::Hold(hold.clone()), None);
        hold
    }

    /// Removes every rule; calls pass untouched.
    pub fn clear(&self) {
        self.state.rules.lock().unwrap().clear();
    }

    /// Calls seen per `(service, operation)`.
    pub fn counts(&self) -> BTreeMap<(String, String), u64> {
        self.state.counts.lock().unwrap().clone()
    }

    /// Calls seen of one operation.
    pub fn count(&self, service: &str, operation: &str) -> u64 {
        let key = (service.to_string(), operation.to_string());
        self.state.counts.lock().unwrap().get(&key).copied().unwrap_or(0)
    }

    /// Forgets the counts.
    pub fn reset_counts(&self) {
        self.state.counts.lock().unwrap().clear();
    }
}

/// The fault for a call, consuming one use of its rule.
fn fault_for(state: &State, service: &str, operation: &str) -> Option<Fault> {
    let mut rules = state.rules.lock().unwrap();
    for rule in rules.iter_mut() {
        if rule.service != service || rule.operation != operation || rule.remaining == Some(0) {
            continue;
        }
        if rule.pass > 0 {
            rule.pass -= 1;
            continue;
        }
        if let Some(probability) = rule.probability
            && state.rng.lock().unwrap().random::<f64>() >= probability
        {
            continue;
        }
        if let Some(remaining) = rule.remaining.as_mut() {
            *remaining -= 1;
        }
        return Some(rule.fault.clone());
    }
    None
}

async fn handle(
    state: Arc<State>,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let (service, operation) = identify(&parts, &body);
    *state.counts.lock().unwrap().entry((service.clone(), operation.clone())).or_default() += 1;

    let fault = fault_for(&state, &service, &operation);
    match &fault {
        Some(Fault::Throttle) => return Ok(throttling(&service)),
        Some(Fault::Latency(by)) => tokio::time::sleep(*by).await,
        Some(Fault::Hold(hold)) => hold.wait().await,
        Some(Fault::FailLastEntry) => return Ok(fail_last_entry(&state, &parts, &body).await),
        Some(Fault::LoseReply) | None => {}
    }
    let forwarded = forward(&state, &parts, body).await;
    if matches!(fault, Some(Fault::LoseReply)) {
        return Ok(internal_error(&service));
    }
    Ok(forwarded)
}

async fn forward(
    state: &State,
    parts: &http::request::Parts,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut request = state.http.request(parts.method.clone(), format!("{}{path}", state.upstream));
    for (name, value) in &parts.headers {
        if name != http::header::HOST && name != http::header::CONTENT_LENGTH {
            request = request.header(name, value);
        }
    }
    let upstream = match request.body(body).send().await {
        Ok(upstream) => upstream,
        Err(err) => return reply(502, "text/plain", vec![], format!("proxy: {err}")),
    };
    let mut response = Response::builder().status(upstream.status().as_u16());
    for (name, value) in upstream.headers() {
        if name != http::header::TRANSFER_ENCODING && name != http::header::CONTENT_LENGTH {
            response = response.header(name, value);
        }
    }
    let bytes = upstream.bytes().await.unwrap_or_default();
    response.body(Full::new(bytes)).unwrap()
}

/// Forwards a `PutEvents` call without its last entry and answers as EventBridge does when
/// one entry of a call fails: 200, `FailedEntryCount` 1, and that entry's error in place.
async fn fail_last_entry(
    state: &State,
    parts: &http::request::Parts,
    body: &[u8],
) -> Response<Full<Bytes>> {
    let mut request: serde_json::Value = serde_json::from_slice(body).expect("a PutEvents body");
    let entries = request["Entries"].as_array_mut().expect("PutEvents entries");
    entries.pop();
    let forwarded_entries = entries.len();
    let mut results: Vec<serde_json::Value> = Vec::new();
    if forwarded_entries > 0 {
        let body = Bytes::from(serde_json::to_vec(&request).unwrap());
        let forwarded = forward(state, parts, body).await;
        let bytes = forwarded.into_body().collect().await.map(|c| c.to_bytes()).unwrap();
        let answer: serde_json::Value = serde_json::from_slice(&bytes).expect("a PutEvents reply");
        results = answer["Entries"].as_array().cloned().unwrap_or_default();
    }
    results.push(serde_json::json!({
        "ErrorCode": "InternalFailure",
        "ErrorMessage": "the event could not be put (injected)"
    }));
    let failed = results.iter().filter(|entry| entry.get("ErrorCode").is_some()).count();
    let answer = serde_json::json!({ "FailedEntryCount": failed, "Entries": results });
    reply(200, "application/x-amz-json-1.1", vec![], answer.to_string())
}

/// `(service, operation)` of a call, as AWS would route it.
pub fn identify(parts: &http::request::Parts, body: &[u8]) -> (String, String) {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let service = header("authorization")
        .and_then(|auth| auth.split("Credential=").nth(1))
        .and_then(|scope| scope.split('/').nth(3))
        .unwrap_or("unknown")
        .to_string();
    if let Some(target) = header("x-amz-target") {
        return (service, target.rsplit('.').next().unwrap_or(target).to_string());
    }
    let text = String::from_utf8_lossy(body);
    if let Some(action) = text.split('&').find_map(|pair| pair.strip_prefix("Action=")) {
        return (service, action.to_string());
    }
    let segments: Vec<&str> = parts.uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let method = parts.method.as_str();
    let operation = match (service.as_str(), method, segments.as_slice()) {
        ("scheduler", "POST", ["schedules", _]) => "CreateSchedule",
        ("scheduler", "GET", ["schedules", _]) => "GetSchedule",
        ("scheduler", "PUT", ["schedules", _]) => "UpdateSchedule",
        ("scheduler", "DELETE", ["schedules", _]) => "DeleteSchedule",
        ("scheduler", "GET", ["schedules"]) => "ListSchedules",
        ("scheduler", "POST", ["schedule-groups", _]) => "CreateScheduleGroup",
        ("scheduler", "DELETE", ["schedule-groups", _]) => "DeleteScheduleGroup",
        ("ses", "POST", ["v2", "email", "outbound-emails"]) => "SendEmail",
        ("ses", "POST", ["v2", "email", "identities"]) => "CreateEmailIdentity",
        _ => return (service, format!("{method} {}", parts.uri.path())),
    };
    (service, operation.to_string())
}

fn reply(
    status: u16,
    content_type: &str,
    headers: Vec<(&str, &str)>,
    body: String,
) -> Response<Full<Bytes>> {
    let mut response = Response::builder().status(status).header("content-type", content_type);
    for (name, value) in headers {
        response = response.header(name, value);
    }
    response.body(Full::new(Bytes::from(body))).unwrap()
}

fn query_error(status: u16, kind: &str, code: &str, message: &str) -> Response<Full<Bytes>> {
    let body = format!(
        "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error>\
         <Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error>\
         <RequestId>{}</RequestId></ErrorResponse>",
        uuid::Uuid::new_v4()
    );
    reply(status, "text/xml", vec![], body)
}

fn rest_json_error(status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "Message": message }).to_string();
    reply(status, "application/json", vec![("x-amzn-errortype", code)], body)
}

fn json_error(content_type: &str, status: u16, kind: &str, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "__type": kind, "message": message }).to_string();
    reply(status, content_type, vec![], body)
}

/// The service's own answer to a throttled call.
fn throttling(service: &str) -> Response<Full<Bytes>> {
    match service {
        "dynamodb" => json_error(
            "application/x-amz-json-1.0",
            400,
            "com.amazonaws.dynamodb.v20120810#ThrottlingException",
            "Rate of requests exceeds the allowed throughput.",
        ),
        "kms" | "events" => {
            json_error("application/x-amz-json-1.1", 400, "ThrottlingException", "Rate exceeded")
        }
        "iam" => query_error(400, "Sender", "Throttling", "Rate exceeded"),
        "ses" => rest_json_error(429, "TooManyRequestsException", "Too many requests"),
        _ => rest_json_error(429, "ThrottlingException", "Rate exceeded"),
    }
}

/// The service's own answer to an internal failure, sent after the call took effect.
fn internal_error(service: &str) -> Response<Full<Bytes>> {
    match service {
        "dynamodb" => json_error(
            "application/x-amz-json-1.0",
            500,
            "com.amazonaws.dynamodb.v20120810#InternalServerError",
            "Internal server error",
        ),
        "kms" => {
            json_error("application/x-amz-json-1.1", 500, "KMSInternalException", "Internal error")
        }
        "iam" => query_error(500, "Receiver", "ServiceFailure", "Internal failure"),
        "events" => {
            json_error("application/x-amz-json-1.1", 500, "InternalException", "Internal failure")
        }
        _ => rest_json_error(500, "InternalServerException", "Internal failure"),
    }
}
