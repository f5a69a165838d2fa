//! What an EventBridge rule delivered into a log group, read back as a subscriber sees it:
//! the whole event (`source`, `detail-type`, `detail`, ...), one per log event.
//!
//! Read with CloudWatch Logs' own wire protocol (`FilterLogEvents`, JSON over HTTP) rather
//! than the SDK: the emulator stamps the log events it writes for EventBridge with
//! fractional millisecond timestamps, which the SDK refuses to parse as the integers the
//! API promises.

use serde_json::{Value, json};

/// Every event delivered into `log_group` of `account`, ordered by the chain `sequence` in
/// their detail (EventBridge does not promise delivery order).
pub async fn delivered_events(
    http: &reqwest::Client,
    emulator_url: &str,
    account: &str,
    log_group: &str,
) -> Result<Vec<Value>, String> {
    let mut events = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut body = json!({ "logGroupName": log_group });
        if let Some(token) = &token {
            body["nextToken"] = json!(token);
        }
        let page: Value = http
            .post(emulator_url)
            .header("x-amz-target", "Logs_20140328.FilterLogEvents")
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-moto-account-id", account)
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/logs/aws4_request, \
                 SignedHeaders=host, Signature=0",
            )
            .body(body.to_string())
            .send()
            .await
            .map_err(|err| format!("reading {log_group}: {err}"))?
            .json()
            .await
            .map_err(|err| format!("reading {log_group}: {err}"))?;
        let page_events = page["events"].as_array().cloned().unwrap_or_default();
        for event in &page_events {
            let message = event["message"].as_str().unwrap_or_default();
            let parsed = serde_json::from_str(message)
                .map_err(|err| format!("a delivered event is not JSON: {err}"))?;
            events.push(parsed);
        }
        token = page["nextToken"].as_str().map(str::to_string);
        if token.is_none() || page_events.is_empty() {
            break;
        }
    }
    events.sort_by_key(|event: &Value| event["detail"]["sequence"].as_u64());
    Ok(events)
}
