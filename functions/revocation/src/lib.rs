//! Time-driven work, and ending grants early: the only function that removes grant
//! policies. Its events:
//!
//! - a grant's expiry, delivered by its one-time schedule with the schedule's own input, an
//!   [`ExpiryEvent`] (`"kind": "grant_expiry"`); delivering it twice changes nothing more;
//! - a pending request's timers, [`RequestTimer`] (`"kind": "approval_reminder"` or
//!   `"request_expiry"`), from their one-time schedules;
//! - the reconciliation sweep, delivered every few minutes by an EventBridge rule whose
//!   input is `{"kind": "sweep"}` (a bare scheduled event is taken as a sweep too);
//! - the hourly oversight, `{"kind": "oversight"}` from another rule: usage alerts, and
//!   access reviews due to start or past their deadline;
//! - `POST /grants/{id}/revoke` from API Gateway (see [`handle_http`]): the holder
//!   relinquishes a grant, or an administrator revokes it, and the policy is gone when the
//!   answer comes.
//!
//! An error returned here makes the platform retry the delivery (the schedule's retry
//! policy and dead-letter queue; the rule's asynchronous invocation retries), so only
//! faults that a retry can fix are returned as errors; a payload for a grant that is
//! already over, or unknown, is answered as done.

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use pim::PimError;
use pim::api::{caller_of, json_response, problem_response, read_json};
use pim::model::{ExpiryEvent, RequestTimer};
use pim::service::{ExpiryOutcome, Pim, Revocation};
use serde_json::{Value, json};

/// Handles one delivery of a non-HTTP kind.
pub async fn handle_event(pim: &Pim, event: Value) -> Result<Value, PimError> {
    let is_sweep = event["kind"] == "sweep" || event["detail-type"] == "Scheduled Event";
    if is_sweep {
        return sweep(pim).await;
    }
    if event["kind"] == "oversight" {
        return oversight(pim).await;
    }
    let timers = ["approval_reminder", "request_expiry", "grant_ending_soon"];
    if event["kind"].as_str().is_some_and(|kind| timers.contains(&kind)) {
        let timer: RequestTimer = serde_json::from_value(event).map_err(|err| {
            PimError::invalid("unknown_event", format!("not a request timer: {err}"))
        })?;
        let outcome = pim.handle_timer(&timer).await?;
        return Ok(json!({ "request_id": timer.request_id(), "outcome": format!("{outcome:?}") }));
    }
    let expiry: ExpiryEvent = serde_json::from_value(event).map_err(|err| {
        PimError::invalid("unknown_event", format!("not an expiry or sweep event: {err}"))
    })?;
    handle(pim, expiry).await
}

/// Runs one sweep; any item it could not repair is an error, so the platform retries and
/// the failure is visible, after everything else was done.
pub async fn sweep(pim: &Pim) -> Result<Value, PimError> {
    let report = pim.sweep().await?;
    if !report.failures.is_empty() {
        return Err(PimError::aws(
            "sweep",
            true,
            format!("the sweep could not repair everything: {}", report.failures.join("; ")),
        ));
    }
    Ok(serde_json::to_value(&report).expect("report serializes"))
}

/// The hourly oversight: usage alerts are raised (each recorded once), access reviews due
/// on their role's schedule start, and reviews past their deadline are reported.
pub async fn oversight(pim: &Pim) -> Result<Value, PimError> {
    let alerts = pim.raise_alerts().await?;
    let reviews = pim.check_reviews().await?;
    Ok(json!({ "alerts": alerts, "reviews": reviews }))
}

/// Handles one scheduler delivery.
pub async fn handle(pim: &Pim, event: ExpiryEvent) -> Result<Value, PimError> {
    let outcome = pim.expire_grant(&event).await?;
    Ok(match outcome {
        ExpiryOutcome::Expired { removal } => {
            json!({ "grant_id": event.grant_id, "outcome": "expired", "policy": format!("{removal:?}") })
        }
        ExpiryOutcome::AlreadyEnded(state) => {
            json!({ "grant_id": event.grant_id, "outcome": "already_ended", "state": state.as_str() })
        }
        ExpiryOutcome::UnknownGrant => {
            json!({ "grant_id": event.grant_id, "outcome": "unknown_grant" })
        }
    })
}

/// Whether an event is an API Gateway HTTP request (payload format 2.0).
pub fn is_http_event(event: &Value) -> bool {
    event["version"] == "2.0" && event["requestContext"]["http"].is_object()
}

/// Answers `POST /grants/{id}/revoke`; every other path is 404.
pub async fn handle_http(pim: &Pim, request: Request) -> Response<Body> {
    match route(pim, &request).await {
        Ok(response) => response,
        Err(err) => problem_response(&err),
    }
}

async fn route(pim: &Pim, request: &Request) -> Result<Response<Body>, PimError> {
    let path = request.uri().path().to_string();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let start = segments.iter().position(|s| *s == "grants").unwrap_or(segments.len());
    match (request.method(), &segments[start..]) {
        (&Method::POST, ["grants", id, "revoke"]) => {
            let input: Revocation = match request.body().is_empty() {
                true => Revocation::default(),
                false => read_json(request)?,
            };
            let revoked = pim.revoke_grant(&caller_of(request)?, id, input).await?;
            Ok(json_response(200, &revoked))
        }
        _ => Err(PimError::not_found("no_such_route", "there is nothing at this path")),
    }
}

/// The API Gateway response (payload format 2.0) for `response`.
pub fn http_answer(response: Response<Body>) -> Value {
    let (parts, body) = response.into_parts();
    let headers: serde_json::Map<String, Value> = parts
        .headers
        .iter()
        .filter_map(|(name, value)| Some((name.to_string(), Value::from(value.to_str().ok()?))))
        .collect();
    let body = match body {
        Body::Text(text) => text,
        Body::Binary(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        _ => String::new(),
    };
    json!({ "statusCode": parts.status.as_u16(), "headers": headers, "body": body, "isBase64Encoded": false })
}
