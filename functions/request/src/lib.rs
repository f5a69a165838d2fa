//! The requester API: `GET /roles` (what the caller may request), `POST /requests`,
//! `GET /requests`, `GET /requests/{id}`,
//! `POST /requests/{id}/cancel` and `POST /requests/{id}/review` (the review of a
//! break-glass activation), `POST /grants/{id}/extend`, and one-time code enrolment:
//! `POST /mfa/enrollment` and `POST /mfa/enrollment/confirm`. (`POST /grants/{id}/revoke`
//! goes to the revocation function, the only one that may delete grant policies.) Each route parses, calls one domain operation and maps the
//! result; the caller is always the authenticated principal from API Gateway.

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use pim::api::{caller_of, json_response, oidc_mfa_of, problem_response, read_json};
use pim::service::{ConfirmEnrollment, Extension, NewRequest, NewReview, Pim};
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
            let extended = pim.extend_grant(&caller_of(request)?, id, input).await?;
            Ok(json_response(200, &extended))
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
        (_, ["requests" | "mfa" | "grants" | "roles", ..]) => {
            Err(PimError::invalid("method_not_allowed", format!("{method} is not supported here")))
        }
        _ => Err(PimError::not_found("no_such_route", "there is nothing at this path")),
    }
}

/// The path's segments from `requests` on, so a stage prefix (`/prod/requests`) is ignored.
fn api_segments(path: &str) -> Vec<&str> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.iter().position(|s| matches!(*s, "requests" | "mfa" | "grants" | "roles")) {
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
