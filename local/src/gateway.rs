//! A stand-in for API Gateway on loopback. Each HTTP request becomes the same payload
//! (format 2.0) API Gateway hands a Lambda function, and is answered by the function's own
//! handler: `/requests…`, `/mfa/…`, `/grants`, `/grants/{id}/extend`, `/eligibility` and
//! `/reports` and `POST /reviews` by the request function, `/reviews/{token}` by the approval
//! function,
//! `/grants/{id}/revoke` by the revocation function, `/approvals/…` by the approval
//! function.
//!
//! Authentication: API Gateway's IAM authorizer verifies SigV4 and passes the caller's ARN.
//! This stand-in does not verify signatures; it takes the caller from the `X-Pim-Caller`
//! header (or an OIDC subject from `X-Pim-Oidc-Subject`, with further claims such as `amr`
//! and `auth_time` as a JSON object of strings in `X-Pim-Oidc-Claims`), and so must only
//! ever listen on loopback. The functions never read those headers themselves.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use pim::service::Pim;
use serde_json::{Map, Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The header that names the caller's IAM ARN, local stack only.
pub const CALLER_HEADER: &str = "x-pim-caller";

/// The header that names the caller's OIDC subject, local stack only.
pub const OIDC_HEADER: &str = "x-pim-oidc-subject";

/// The header with further OIDC claims (a JSON object of strings), local stack only.
pub const OIDC_CLAIMS_HEADER: &str = "x-pim-oidc-claims";

/// Bodies above this are refused before the function sees them (API Gateway's own limit
/// is larger; the functions refuse anything over 16 KiB anyway).
const MAX_GATEWAY_BODY: usize = 2 * 1024 * 1024;

/// Serves the API on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, pim: Arc<Pim>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else { continue };
        let pim = pim.clone();
        tokio::spawn(async move {
            let service =
                service_fn(move |request| answer(pim.clone(), peer.ip().to_string(), request));
            if let Err(err) =
                http1::Builder::new().serve_connection(TokioIo::new(stream), service).await
            {
                tracing::debug!(error = %err, "connection ended with an error");
            }
        });
    }
}

async fn answer(
    pim: Arc<Pim>,
    source_ip: String,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_GATEWAY_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")),
    };
    let event = api_gateway_event(&parts, &body, &source_ip);
    let lambda_request = match lambda_http::request::from_str(&event.to_string()) {
        Ok(request) => request,
        Err(err) => {
            return Ok(plain(StatusCode::BAD_REQUEST, &format!("unreadable request: {err}")));
        }
    };

    let path = parts.uri.path();
    let response = if path.starts_with("/approvals/") || path.starts_with("/reviews/") {
        pim_approval::handle(&pim, lambda_request).await
    } else if path.starts_with("/grants/") && path.ends_with("/revoke") {
        pim_revocation::handle_http(&pim, lambda_request).await
    } else if path == "/requests"
        || path.starts_with("/requests/")
        || path.starts_with("/mfa/")
        || path.starts_with("/grants/")
        || matches!(path, "/grants" | "/eligibility" | "/reports" | "/reviews")
    {
        pim_request::handle(&pim, lambda_request).await
    } else {
        return Ok(plain(StatusCode::NOT_FOUND, "not found"));
    };
    Ok(to_hyper(response))
}

/// The API Gateway HTTP API payload (format 2.0) for one request.
fn api_gateway_event(parts: &http::request::Parts, body: &Bytes, source_ip: &str) -> Value {
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == http::header::COOKIE {
            cookies.extend(value.split(';').map(|c| c.trim().to_string()));
            continue;
        }
        let entry =
            headers.entry(name.as_str().to_string()).or_insert(Value::String(String::new()));
        let joined = match entry.as_str() {
            Some("") | None => value,
            Some(previous) => format!("{previous},{value}"),
        };
        *entry = Value::String(joined);
    }

    let header =
        |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let authorizer = match (header(CALLER_HEADER), header(OIDC_HEADER)) {
        (Some(arn), _) => json!({ "iam": { "userArn": arn, "accountId": "123456789012" } }),
        (None, Some(subject)) => {
            let mut claims: Map<String, Value> = header(OIDC_CLAIMS_HEADER)
                .and_then(|text| serde_json::from_str(&text).ok())
                .unwrap_or_default();
            claims.retain(|_, value| value.is_string());
            claims.insert("sub".into(), Value::String(subject));
            json!({ "jwt": { "claims": claims, "scopes": null } })
        }
        (None, None) => Value::Null,
    };
    let (body_text, encoded) = match std::str::from_utf8(body) {
        Ok(text) => (text.to_string(), false),
        Err(_) => (STANDARD.encode(body), true),
    };
    let now = chrono::Utc::now();
    let mut context = json!({
        "accountId": "123456789012",
        "apiId": "local",
        "domainName": "localhost",
        "domainPrefix": "localhost",
        "http": {
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": header("user-agent").unwrap_or_default(),
        },
        "requestId": uuid::Uuid::new_v4().to_string(),
        "routeKey": "$default",
        "stage": "$default",
        "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
        "timeEpoch": now.timestamp_millis(),
    });
    if !authorizer.is_null() {
        context["authorizer"] = authorizer;
    }
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.uri.path(),
        "rawQueryString": parts.uri.query().unwrap_or(""),
        "cookies": cookies,
        "headers": headers,
        "requestContext": context,
        "body": body_text,
        "isBase64Encoded": encoded,
    })
}

fn to_hyper(response: lambda_http::Response<lambda_http::Body>) -> Response<Full<Bytes>> {
    let (parts, body) = response.into_parts();
    let bytes = match body {
        lambda_http::Body::Empty => Bytes::new(),
        lambda_http::Body::Text(text) => Bytes::from(text),
        lambda_http::Body::Binary(bytes) => Bytes::from(bytes),
        _ => Bytes::new(),
    };
    Response::from_parts(parts, Full::new(bytes))
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text.to_string())));
    *response.status_mut() = status;
    response
}
