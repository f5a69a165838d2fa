//! A stand-in for API Gateway on loopback. Each HTTP request becomes the same payload
//! (format 2.0) API Gateway hands a Lambda function, and is answered by the function's own
//! handler: `/requests…`, `/mfa/…`, `/grants`, `/grants/{id}/extend`, `/eligibility` and
//! `/reports` and `POST /reviews` by the request function, `/reviews/{token}` by the approval
//! function,
//! `/grants/{id}/revoke` by the revocation function, `/approvals/…` by the approval
//! function.
//!
//! Authentication, as chosen by [`Authentication`]:
//!
//! - [`Authentication::SigV4`] (the local stack's mode): like API Gateway's IAM authorizer,
//!   every API call must carry a valid SigV4 signature made with one of the stack's local
//!   keys ([`crate::auth`]); the key's principal becomes the caller's ARN. Unsigned or
//!   badly signed calls are answered 403 with a problem document that says what is wrong,
//!   and reach no function. The approval pages (`/approvals/…`) need no signature, as in
//!   the template: the signed link is their credential.
//! - [`Authentication::TrustedHeaders`], for tests of the functions only: the caller is
//!   taken from the `X-Pim-Caller` header (or an OIDC subject from `X-Pim-Oidc-Subject`,
//!   with further claims such as `amr` and `auth_time` as a JSON object of strings in
//!   `X-Pim-Oidc-Claims`) without any check, so anyone who reaches the port is anyone.
//!
//! Either way it listens on loopback only. The functions never read those headers
//! themselves; in SigV4 mode the gateway ignores them.

use crate::auth::KeyRing;
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

/// How the gateway learns who is calling.
#[derive(Debug, Clone)]
pub enum Authentication {
    /// Verify SigV4 signatures made with these keys, as API Gateway's IAM authorizer does.
    SigV4(Arc<KeyRing>),
    /// Believe the `X-Pim-Caller` and `X-Pim-Oidc-*` headers: for tests of the functions,
    /// never for a stack people use.
    TrustedHeaders,
}

/// The caller as the authorizer would describe it.
enum Caller {
    Iam(String),
    Oidc(Value),
    Anonymous,
}

/// Serves the API on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, pim: Arc<Pim>, authentication: Authentication) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else { continue };
        let pim = pim.clone();
        let authentication = authentication.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                answer(pim.clone(), authentication.clone(), peer.ip().to_string(), request)
            });
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
    authentication: Authentication,
    source_ip: String,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_GATEWAY_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")),
    };
    let caller = match caller_of(&authentication, &parts, &body) {
        Ok(caller) => caller,
        Err(refusal) => return Ok(refusal),
    };
    let event = api_gateway_event(&parts, &body, &source_ip, caller);
    let lambda_request = match lambda_http::request::from_str(&event.to_string()) {
        Ok(request) => request,
        Err(err) => {
            return Ok(plain(StatusCode::BAD_REQUEST, &format!("unreadable request: {err}")));
        }
    };

    let path = parts.uri.path();
    let response = if is_public_page(path) {
        pim_approval::handle(&pim, lambda_request).await
    } else if path.starts_with("/grants/") && path.ends_with("/revoke") {
        pim_revocation::handle_http(&pim, lambda_request).await
    } else if path == "/requests"
        || path == "/roles"
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

/// The approval and review pages (`/approvals/{token}`, `/reviews/{token}`): public, as
/// in the template (authorization `NONE`), because the signed token in the path is their
/// authentication; served by the approval function. Their paths are never logged.
fn is_public_page(path: &str) -> bool {
    path.starts_with("/approvals/") || path.starts_with("/reviews/")
}

/// Who is calling, or the 403 that refuses the call. The approval and review pages are
/// public.
#[allow(clippy::result_large_err)]
fn caller_of(
    authentication: &Authentication,
    parts: &http::request::Parts,
    body: &[u8],
) -> Result<Caller, Response<Full<Bytes>>> {
    let header =
        |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    match authentication {
        _ if is_public_page(parts.uri.path()) => Ok(Caller::Anonymous),
        Authentication::SigV4(keys) => match keys.verify(parts, body, chrono::Utc::now()) {
            Ok(key) => Ok(Caller::Iam(key.principal.clone())),
            Err(rejection) => {
                tracing::warn!(
                    code = rejection.code,
                    path = parts.uri.path(),
                    "call refused by the gateway"
                );
                let problem = json!({
                    "type": format!("urn:pim:problem:{}", rejection.code),
                    "title": "Forbidden",
                    "status": 403,
                    "code": rejection.code,
                    "detail": rejection.message,
                });
                let mut response = Response::new(Full::new(Bytes::from(problem.to_string())));
                *response.status_mut() = StatusCode::FORBIDDEN;
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/problem+json"),
                );
                Err(response)
            }
        },
        Authentication::TrustedHeaders => Ok(match (header(CALLER_HEADER), header(OIDC_HEADER)) {
            (Some(arn), _) => Caller::Iam(arn),
            (None, Some(subject)) => {
                let mut claims: Map<String, Value> = header(OIDC_CLAIMS_HEADER)
                    .and_then(|text| serde_json::from_str(&text).ok())
                    .unwrap_or_default();
                claims.retain(|_, value| value.is_string());
                claims.insert("sub".into(), Value::String(subject));
                Caller::Oidc(Value::Object(claims))
            }
            (None, None) => Caller::Anonymous,
        }),
    }
}

/// The API Gateway HTTP API payload (format 2.0) for one request.
fn api_gateway_event(
    parts: &http::request::Parts,
    body: &Bytes,
    source_ip: &str,
    caller: Caller,
) -> Value {
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
    let authorizer = match caller {
        Caller::Iam(arn) => json!({ "iam": { "userArn": arn, "accountId": "123456789012" } }),
        Caller::Oidc(claims) => json!({ "jwt": { "claims": claims, "scopes": null } }),
        Caller::Anonymous => Value::Null,
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
