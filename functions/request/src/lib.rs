//! The requester API: `GET /roles` (what the caller may request), `POST /requests`,
//! `GET /requests`, `GET /requests/{id}`, `POST /requests/{id}/cancel` and
//! `POST /requests/{id}/review` (the review of a break-glass activation),
//! `POST /grants/{id}/extend`, one-time code enrolment (`POST /mfa/enrollment` and
//! `POST /mfa/enrollment/confirm`), what is visible (`GET /grants` for live grants,
//! `GET /eligibility` and `GET /reports`) and `POST /reviews` (an access review started on
//! demand). `POST /grants/{id}/revoke` goes to the revocation function, the only one that
//! may delete grant policies. Each route parses, calls one domain operation and maps the
//! result; the caller is always the authenticated principal from API Gateway.

use chrono::{DateTime, Utc};
use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use pim::api::{
    caller_of, json_response, oidc_mfa_of, problem_response, query_of, read_json, text_response,
};
use pim::service::{
    ConfirmEnrollment, EligibilityQuery, Extended, Extension, GrantScope, NewCampaign, NewRequest,
    NewReview, Pim,
};
use pim::{PimError, Result};
use serde_json::json;

/// Answers one API Gateway request.
pub async fn handle(pim: &Pim, request: Request) -> Response<Body> {
    match route(pim, &request).await {
        Ok(response) => response,
        Err(err) => problem_response(&err),
    }
}

async fn route(pim: &Pim, request: &Request) -> Result<Response<Body>> {
    let path = request.uri().path().to_string();
    let segments = api_segments(&path);
    let method = request.method();
    match (method, segments.as_slice()) {
        (&Method::GET, ["roles"]) => {
            let roles = pim.requestable_roles(&caller_of(request)?)?;
            Ok(json_response(200, &json!({ "roles": roles })))
        }
        (&Method::POST, ["requests"]) => {
            let mut input: NewRequest = read_json(request)?;
            let caller = caller_of(request)?;
            input.oidc_mfa = oidc_mfa_of(request, pim.clock.now());
            let created = pim.create_request(&caller, input).await?;
            let mut body = serde_json::to_value(&created.request).expect("request serializes");
            body["undelivered_notifications"] = json!(created.undelivered);
            Ok(json_response(201, &body))
        }
        (&Method::GET, ["requests"]) => {
            let requests = pim.list_requests(&caller_of(request)?).await?;
            Ok(json_response(200, &json!({ "requests": requests })))
        }
        (&Method::GET, ["requests", id]) => {
            let (found, history) = pim.show_request(&caller_of(request)?, id).await?;
            let mut body = serde_json::to_value(&found).expect("request serializes");
            body["history"] = serde_json::to_value(history).expect("records serialize");
            Ok(json_response(200, &body))
        }
        (&Method::POST, ["requests", id, "review"]) => {
            let input: NewReview = read_json(request)?;
            let reviewed = pim.review_break_glass(&caller_of(request)?, id, input).await?;
            Ok(json_response(200, &reviewed))
        }
        (&Method::POST, ["requests", id, "cancel"]) => {
            let cancelled = pim.cancel_request(&caller_of(request)?, id).await?;
            Ok(json_response(200, &cancelled))
        }
        (&Method::POST, ["grants", id, "extend"]) => {
            let mut input: Extension = read_json(request)?;
            input.oidc_mfa = oidc_mfa_of(request, pim.clock.now());
            match pim.extend_grant(&caller_of(request)?, id, input).await? {
                Extended::Now(extended) => Ok(json_response(200, &extended)),
                Extended::Asked(asked) => {
                    let mut body =
                        serde_json::to_value(&asked.request).expect("request serializes");
                    body["undelivered_notifications"] = json!(asked.undelivered);
                    Ok(json_response(202, &body))
                }
            }
        }
        (&Method::POST, ["mfa", "enrollment"]) => {
            let issued = pim.begin_mfa_enrollment(&caller_of(request)?).await?;
            Ok(json_response(201, &issued))
        }
        (&Method::POST, ["mfa", "enrollment", "confirm"]) => {
            let input: ConfirmEnrollment = read_json(request)?;
            pim.confirm_mfa_enrollment(&caller_of(request)?, input).await?;
            Ok(json_response(200, &json!({ "state": "active" })))
        }
        (&Method::GET, ["grants"]) => {
            let query = query_of(request, &["active", "all"])?;
            flag(&query, "active")?;
            let scope = if flag(&query, "all")? { GrantScope::All } else { GrantScope::Own };
            let grants = pim.active_grants(&caller_of(request)?, scope).await?;
            Ok(json_response(200, &json!({ "grants": grants })))
        }
        (&Method::GET, ["eligibility"]) => {
            let query = query_of(request, &["role", "person"])?;
            let asked = EligibilityQuery {
                role: value(&query, "role").map(str::to_string),
                person: value(&query, "person").map(str::to_string),
            };
            let eligibility = pim.eligibility(&caller_of(request)?, asked).await?;
            Ok(json_response(200, &json!({ "eligibility": eligibility })))
        }
        (&Method::GET, ["reports"]) => {
            let query = query_of(request, &["from", "to", "format"])?;
            let csv = match value(&query, "format") {
                None | Some("json") => false,
                Some("csv") => true,
                Some(_) => {
                    return Err(PimError::invalid("invalid_query", "format is json or csv"));
                }
            };
            let (from, to) = (time_param(&query, "from")?, time_param(&query, "to")?);
            let report = pim.report(&caller_of(request)?, from, to).await?;
            if csv {
                let body = pim::service::report::to_csv(&report.grants);
                return Ok(text_response(200, "text/csv; charset=utf-8", body));
            }
            Ok(json_response(200, &report))
        }
        (&Method::POST, ["reviews"]) => {
            let input: NewCampaign = read_json(request)?;
            let campaign = pim.start_review(&caller_of(request)?, input).await?;
            let mut body = serde_json::to_value(&campaign).expect("campaign serializes");
            body["state"] = json!(campaign.state());
            Ok(json_response(201, &body))
        }
        (
            _,
            ["requests" | "mfa" | "grants" | "roles" | "eligibility" | "reports" | "reviews", ..],
        ) => {
            Err(PimError::invalid("method_not_allowed", format!("{method} is not supported here")))
        }
        _ => Err(PimError::not_found("no_such_route", "there is nothing at this path")),
    }
}

/// The value of a query parameter, when given.
fn value<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
}

/// A flag parameter: absent or `false` is off; present bare, or `true`, is on.
fn flag(query: &[(String, String)], name: &str) -> Result<bool> {
    match value(query, name) {
        None | Some("false") => Ok(false),
        Some("" | "true") => Ok(true),
        Some(_) => Err(PimError::invalid("invalid_query", format!("{name} is true or false"))),
    }
}

/// A required RFC 3339 time parameter (`2026-12-01T00:00:00Z`).
fn time_param(query: &[(String, String)], name: &str) -> Result<DateTime<Utc>> {
    let text = value(query, name).ok_or_else(|| {
        PimError::invalid("invalid_query", format!("{name} is required (an RFC 3339 time)"))
    })?;
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| PimError::invalid("invalid_query", format!("{name} is not an RFC 3339 time")))
}

/// The path's segments from `requests` on, so a stage prefix (`/prod/requests`) is ignored.
fn api_segments(path: &str) -> Vec<&str> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.iter().position(|s| {
        matches!(
            *s,
            "requests" | "mfa" | "grants" | "roles" | "eligibility" | "reports" | "reviews"
        )
    }) {
        Some(start) if start <= 1 => segments[start..].to_vec(),
        _ => segments,
    }
}

#[cfg(test)]
mod tests {
    use super::api_segments;

    #[test]
    fn stage_prefixes_are_ignored() {
        assert_eq!(api_segments("/requests/req-1/cancel"), ["requests", "req-1", "cancel"]);
        assert_eq!(api_segments("/prod/requests"), ["requests"]);
        assert_eq!(api_segments("/a/b/requests"), ["a", "b", "requests"]);
    }
}
