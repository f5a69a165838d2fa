//! What the HTTP functions share: who the caller is, reading bodies, and answering with
//! JSON or an RFC 9457 problem document.

use crate::error::{PimError, Result};
use crate::identity::Principal;
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Bodies larger than this are refused unread.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The media type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The authenticated caller, from the API Gateway authorizer context: the IAM caller ARN,
/// or the OIDC subject when the JWT authorizer is in use. Never from the body or headers.
pub fn caller_of(request: &Request) -> Result<Principal> {
    let authorizer = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.authorizer.as_ref(),
        _ => None,
    };
    let missing =
        || PimError::refused("unauthenticated", "the request carries no authenticated caller");
    let authorizer = authorizer.ok_or_else(missing)?;
    if let Some(arn) = authorizer.iam.as_ref().and_then(|iam| iam.user_arn.as_deref()) {
        return Principal::from_iam_arn(arn);
    }
    if let Some(subject) = authorizer.jwt.as_ref().and_then(|jwt| jwt.claims.get("sub")) {
        return Principal::from_oidc_subject(subject);
    }
    Err(missing())
}

/// Whether the JWT authorizer's claims assert a fresh multi-factor sign-in (`amr` with
/// `mfa`, `auth_time` within [`crate::mfa::OIDC_MFA_FRESHNESS_SECS`] of `now`). Always
/// `false` for IAM callers: IAM authorization carries no such claim.
pub fn oidc_mfa_of(request: &Request, now: chrono::DateTime<chrono::Utc>) -> bool {
    let claims = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => {
            context.authorizer.as_ref().and_then(|a| a.jwt.as_ref()).map(|jwt| &jwt.claims)
        }
        _ => None,
    };
    let Some(claims) = claims else { return false };
    let claim = |name: &str| claims.get(name).map(String::as_str);
    crate::mfa::oidc_mfa_is_fresh(claim("amr"), claim("auth_time"), now)
}

/// Reads a JSON body into `T`: the media type must be JSON, the body at most
/// [`MAX_BODY_BYTES`] of UTF-8, and unknown or duplicate fields are refused by `T`'s
/// derive. Every failure is a 4xx before anything is written.
pub fn read_json<T: DeserializeOwned>(request: &Request) -> Result<T> {
    let media_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| value.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    if media_type.as_deref() != Some("application/json") {
        return Err(PimError::UnsupportedMediaType { expected: "application/json" });
    }
    let bytes = body_bytes(request)?;
    let text = std::str::from_utf8(bytes)
        .map_err(|_| PimError::invalid("malformed_body", "the body is not valid UTF-8"))?;
    serde_json::from_str(text).map_err(|err| {
        let detail: String =
            err.to_string().chars().take(200).flat_map(char::escape_default).collect();
        PimError::invalid("malformed_body", format!("the body is not a valid request: {detail}"))
    })
}

/// The raw body, refused when over [`MAX_BODY_BYTES`].
pub fn body_bytes(request: &Request) -> Result<&[u8]> {
    let bytes: &[u8] = match request.body() {
        Body::Empty => &[],
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(PimError::TooLarge { limit: MAX_BODY_BYTES });
    }
    Ok(bytes)
}

/// A JSON answer with `status`; never cached.
pub fn json_response(status: u16, value: &impl Serialize) -> Response<Body> {
    let body = serde_json::to_string(value).expect("response serializes");
    respond(status, "application/json", body)
}

/// The problem document for `err`. Server-side faults say only that something failed and
/// whether to retry; their cause goes to the log, not to the caller.
pub fn problem_response(err: &PimError) -> Response<Body> {
    let status = err.status();
    let detail = if err.is_refusal() {
        err.to_string()
    } else {
        tracing::error!(error = ?err, "request failed");
        match err {
            PimError::GrantFailed { .. } => err.to_string(),
            _ if err.is_retryable() => "a dependency failed; try again shortly".to_string(),
            _ => "the request could not be completed".to_string(),
        }
    };
    let title =
        StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Error");
    let body = serde_json::json!({
        "type": format!("urn:pim:problem:{}", err.code()),
        "title": title,
        "status": status,
        "code": err.code(),
        "detail": detail,
    });
    let mut response = respond(status, PROBLEM_JSON, body.to_string());
    if let PimError::TooMany { retry_after_secs, .. } = err {
        response
            .headers_mut()
            .insert("retry-after", lambda_http::http::HeaderValue::from(*retry_after_secs));
    }
    response
}

/// The query string's parameters, decoded, each at most once and each one of `known`;
/// anything else (an unknown or repeated parameter, bad encoding, more than 1 KiB) is a
/// 400 `invalid_query`. A parameter without `=` has the empty value.
pub fn query_of(request: &Request, known: &[&str]) -> Result<Vec<(String, String)>> {
    let text = request.uri().query().unwrap_or("");
    parse_query(text, known)
}

/// [`query_of`] on the raw query text.
pub fn parse_query(text: &str, known: &[&str]) -> Result<Vec<(String, String)>> {
    let invalid = |why: String| PimError::invalid("invalid_query", why);
    if text.len() > 1024 {
        return Err(invalid("the query string is longer than 1024 bytes".into()));
    }
    let pairs =
        decode_pairs(text).ok_or_else(|| invalid("the query string is not valid UTF-8".into()))?;
    let mut fields: Vec<(String, String)> = Vec::new();
    for (key, value) in pairs {
        let shown: String = key.chars().take(32).flat_map(char::escape_default).collect();
        if !known.contains(&key.as_str()) {
            return Err(invalid(format!("unknown query parameter '{shown}'")));
        }
        if fields.iter().any(|(k, _)| *k == key) {
            return Err(invalid(format!("query parameter '{shown}' is given twice")));
        }
        if value.chars().any(char::is_control) {
            return Err(invalid(format!("query parameter '{shown}' has control characters")));
        }
        fields.push((key, value));
    }
    Ok(fields)
}

/// The `name=value` pairs of a URL-encoded query string or form, decoded (`+` is a space),
/// in order; a pair without `=` has the empty value. `None` when a decoded part is not
/// UTF-8.
pub fn decode_pairs(text: &str) -> Option<Vec<(String, String)>> {
    let decode = |part: &str| {
        percent_encoding::percent_decode_str(&part.replace('+', " "))
            .decode_utf8()
            .ok()
            .map(|text| text.into_owned())
    };
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((decode(key)?, decode(value)?))
        })
        .collect()
}

/// A text answer of `media_type` with `status`; never cached.
pub fn text_response(status: u16, media_type: &'static str, body: String) -> Response<Body> {
    respond(status, media_type, body)
}

fn respond(status: u16, media_type: &'static str, body: String) -> Response<Body> {
    let mut response = Response::new(Body::Text(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    response
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' => out.push_str(&format!("&#x{:x};", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escaping_neutralises_markup_and_control_characters() {
        assert_eq!(
            escape_html(r#"<script>"x"&'y'</script>"#),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;&lt;/script&gt;"
        );
        assert_eq!(escape_html("a\u{1b}b"), "a&#x1b;b");
    }

    #[test]
    fn problems_carry_code_status_and_type() {
        let response =
            problem_response(&PimError::refused("not_eligible", "alice may not request r"));
        assert_eq!(response.status(), 403);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        let Body::Text(text) = response.body() else { panic!("text body") };
        let json: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(json["code"], "not_eligible");
        assert_eq!(json["type"], "urn:pim:problem:not_eligible");
        assert_eq!(json["detail"], "alice may not request r");
    }

    #[test]
    fn queries_take_known_parameters_once() {
        let parsed = parse_query("active&all=true&role=prod%2Dadmin", &["active", "all", "role"]);
        assert_eq!(
            parsed.unwrap(),
            [
                ("active".to_string(), String::new()),
                ("all".into(), "true".into()),
                ("role".into(), "prod-admin".into())
            ]
        );
        for bad in ["role=a&role=b", "other=1", "role=%FF", "role=a%0Ab"] {
            let err = parse_query(bad, &["role"]).unwrap_err();
            assert_eq!(err.code(), "invalid_query", "{bad}");
        }
        assert!(parse_query(&"a".repeat(1025), &["a"]).is_err());
        assert!(parse_query("", &[]).unwrap().is_empty());
    }

    #[test]
    fn server_faults_hide_their_cause_from_the_caller() {
        let err = PimError::aws("dynamodb:GetItem", true, "secret internal detail");
        let response = problem_response(&err);
        assert_eq!(response.status(), 502);
        let Body::Text(text) = response.body() else { panic!("text body") };
        assert!(!text.contains("secret internal detail"));
    }
}
