//! The approver's pages behind the signed links.
//!
//! `GET /approvals/{token}` (and `HEAD`) verify the link and show the request with Approve
//! and Deny buttons; they change nothing, because mail scanners open links. The decision is
//! a `POST` of the page's form to the same URL; it must carry the CSRF token the page set
//! (double-submit: a `SameSite=Strict` cookie and a hidden field that must match), come
//! from our own origin when the browser says where it comes from, and be a plain form.
//!
//! `GET /reviews/{token}` and `POST /reviews/{token}` are the access reviewers' pages, with
//! the same link machinery and the same checks: keep or remove one person's eligibility.

mod page;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lambda_http::http::{HeaderMap, HeaderValue, Method, header};
use lambda_http::{Body, Request, Response};
use pim::api::body_bytes;
use pim::model::Verdict;
use pim::service::{Pim, ReviewVerdict};
use pim::{PimError, Result};

/// The CSRF cookie's name.
pub const CSRF_COOKIE: &str = "pim_csrf";

/// Answers one API Gateway request for an approval page.
pub async fn handle(pim: &Pim, request: Request) -> Response<Body> {
    let Some((kind, token)) = token_of(request.uri().path()) else {
        return page::problem(&PimError::not_found(
            "no_such_route",
            "there is nothing at this path",
        ));
    };
    let token = token.to_string();
    match (kind, request.method().clone()) {
        (Link::Approval, Method::GET | Method::HEAD) => show(pim, &token).await,
        (Link::Approval, Method::POST) => decide(pim, &token, &request).await,
        (Link::Review, Method::GET | Method::HEAD) => show_review(pim, &token).await,
        (Link::Review, Method::POST) => decide_review(pim, &token, &request).await,
        _ => page::problem(&PimError::invalid(
            "method_not_allowed",
            "only GET and POST are supported",
        )),
    }
}

/// Which kind of link a path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Approval,
    Review,
}

/// The response with a fresh CSRF cookie set.
fn with_csrf_cookie(pim: &Pim, mut response: Response<Body>, csrf: &str) -> Response<Body> {
    let secure = if pim.public_url.starts_with("https://") { "; Secure" } else { "" };
    let cookie =
        format!("{CSRF_COOKIE}={csrf}; Path=/; HttpOnly; SameSite=Strict; Max-Age=3600{secure}");
    response
        .headers_mut()
        .insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("cookie header"));
    response
}

async fn show_review(pim: &Pim, token: &str) -> Response<Body> {
    match pim.open_review_link(token).await {
        Ok(view) => {
            let csrf = new_csrf_token();
            with_csrf_cookie(pim, page::review(&view, &csrf), &csrf)
        }
        Err(err) => {
            tracing::warn!(code = err.code(), "review link refused on open");
            page::problem(&err)
        }
    }
}

async fn decide_review(pim: &Pim, token: &str, request: &Request) -> Response<Body> {
    let verdict = match check_form(pim, request) {
        Ok((decision, _)) => match decision.as_str() {
            "keep" => ReviewVerdict::Keep,
            "remove" => ReviewVerdict::Remove,
            _ => {
                let refusal =
                    PimError::invalid("malformed_form", "the decision must be keep or remove");
                return page::problem(&pim.refuse_link_use(refusal).await);
            }
        },
        Err(refusal) => return page::problem(&pim.refuse_link_use(refusal).await),
    };
    match pim.decide_review(token, verdict).await {
        Ok((campaign, person)) => page::review_outcome(&campaign, &person),
        Err(err) => page::problem(&err),
    }
}

async fn show(pim: &Pim, token: &str) -> Response<Body> {
    match pim.open_link(token).await {
        Ok(view) => {
            let csrf = new_csrf_token();
            with_csrf_cookie(pim, page::confirmation(&view, &csrf), &csrf)
        }
        Err(err) => {
            tracing::warn!(code = err.code(), "approval link refused on open");
            page::problem(&err)
        }
    }
}

async fn decide(pim: &Pim, token: &str, request: &Request) -> Response<Body> {
    let (verdict, mfa_code) =
        match check_form(pim, request).and_then(|(decision, code)| match decision.as_str() {
            "approve" => Ok((Verdict::Approve, code)),
            "deny" => Ok((Verdict::Deny, code)),
            _ => Err(PimError::invalid("malformed_form", "the decision must be approve or deny")),
        }) {
            Ok(decision) => decision,
            Err(refusal) => return page::problem(&pim.refuse_link_use(refusal).await),
        };
    match pim.decide(token, verdict, mfa_code.as_deref()).await {
        Ok(decided) => page::outcome(&decided),
        Err(err) => page::problem(&err),
    }
}

/// Checks the form's media type, origin and CSRF token, and returns the decision as typed
/// and the one-time code, when one was typed.
fn check_form(pim: &Pim, request: &Request) -> Result<(String, Option<String>)> {
    let headers = request.headers();
    let media_type = header_text(headers, header::CONTENT_TYPE.as_str())
        .map(|value| value.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    if media_type.as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(PimError::UnsupportedMediaType {
            expected: "application/x-www-form-urlencoded",
        });
    }
    let cross_site = || {
        PimError::refused(
            "cross_site_request",
            "the decision must come from the approval page itself",
        )
    };
    let foreign_origin =
        header_text(headers, "origin").is_some_and(|origin| origin != origin_of(&pim.public_url));
    let cross_site_fetch = header_text(headers, "sec-fetch-site")
        .is_some_and(|site| !matches!(site, "same-origin" | "none"));
    if foreign_origin || cross_site_fetch {
        return Err(cross_site());
    }

    let form = parse_form(body_bytes(request)?)?;
    let field =
        |name: &str| form.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
    let cookie = cookie_value(headers, CSRF_COOKIE);
    let csrf_ok = match (field("csrf"), cookie) {
        (Some(sent), Some(expected)) => {
            !expected.is_empty() && constant_time_eq(sent.as_bytes(), expected.as_bytes())
        }
        _ => false,
    };
    if !csrf_ok {
        return Err(PimError::refused(
            "csrf_mismatch",
            "the form's CSRF token is missing or does not match; reload the page",
        ));
    }
    let decision = field("decision").unwrap_or_default().to_string();
    let code = field("mfa_code").map(str::trim).filter(|code| !code.is_empty());
    Ok((decision, code.map(str::to_string)))
}

/// The kind of link and its token from `/approvals/{token}` or `/reviews/{token}` (a stage
/// prefix is allowed before it).
fn token_of(path: &str) -> Option<(Link, &str)> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (kind, token) = match segments.as_slice() {
        [kind, token] | [_, kind, token] => (*kind, *token),
        _ => return None,
    };
    match kind {
        "approvals" => Some((Link::Approval, token)),
        "reviews" => Some((Link::Review, token)),
        _ => None,
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(slash) => &url[..after_scheme + slash],
        None => url,
    }
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Parses `a=b&c=d`; only the two known fields are accepted, each once.
fn parse_form(bytes: &[u8]) -> Result<Vec<(String, String)>> {
    let malformed = || PimError::invalid("malformed_form", "the form could not be read");
    let text = std::str::from_utf8(bytes).map_err(|_| malformed())?;
    let mut fields: Vec<(String, String)> = Vec::new();
    for (key, value) in pim::api::decode_pairs(text).ok_or_else(malformed)? {
        if !matches!(key.as_str(), "csrf" | "decision" | "mfa_code")
            || fields.iter().any(|(k, _)| *k == key)
        {
            return Err(malformed());
        }
        fields.push((key, value));
    }
    Ok(fields)
}

fn new_csrf_token() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_the_approvals_path_only() {
        assert_eq!(token_of("/approvals/abc.def"), Some((Link::Approval, "abc.def")));
        assert_eq!(token_of("/prod/approvals/abc"), Some((Link::Approval, "abc")));
        assert_eq!(token_of("/reviews/abc"), Some((Link::Review, "abc")));
        assert_eq!(token_of("/approvals"), None);
        assert_eq!(token_of("/approvals/a/b"), None);
        assert_eq!(token_of("/requests/abc"), None);
    }

    #[test]
    fn forms_accept_only_the_known_fields_once() {
        let form = parse_form(b"csrf=a%2Bb&decision=approve").unwrap();
        assert_eq!(
            form,
            [("csrf".to_string(), "a+b".to_string()), ("decision".into(), "approve".into())]
        );
        assert!(parse_form(b"csrf=a&csrf=b").is_err());
        assert!(parse_form(b"csrf=a&extra=1").is_err());
        assert!(parse_form(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn origins_and_cookies_are_read_exactly() {
        assert_eq!(origin_of("https://pim.example.com/prod"), "https://pim.example.com");
        assert_eq!(origin_of("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; pim_csrf=xyz; b=2"));
        assert_eq!(cookie_value(&headers, CSRF_COOKIE), Some("xyz"));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
