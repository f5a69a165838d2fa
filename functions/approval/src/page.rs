//! The HTML of the approval pages. Every page is served with `no-store`, no referrer, and a
//! content security policy that allows no script and no framing; the only thing a page can
//! do is submit its own form to its own origin.

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use pim::PimError;
use pim::api::escape_html;
use pim::duration::format_iso;
use pim::model::{AccessRequest, RequestState};
use pim::render::iam_time;
use pim::service::LinkView;
use pim::service::campaigns::{Campaign, ReviewLinkView};

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:42rem;margin:2rem auto;\
                     padding:0 1rem;color:#1b1b1b}th{text-align:left;padding-right:1rem;\
                     vertical-align:top}button{font-size:1rem;padding:.5rem 1.25rem;margin-right:1rem}";

/// The confirmation page of a valid link: the request, and the decision form while it is
/// still pending.
pub fn confirmation(view: &LinkView, csrf: &str) -> Response<Body> {
    let request = &view.request;
    let (title, asks) = match &request.extends {
        None => ("Access request", "asks for"),
        Some(_) => ("Extension request", "asks for more time on their grant of"),
    };
    let mut body = format!(
        "<h1>{title}</h1><p>{} {asks} <strong>{}</strong>.</p>{}",
        escape_html(&request.requester),
        escape_html(&request.role),
        facts_table(request)
    );
    if request.state == RequestState::Pending {
        // The policy asks approvers for a second factor: a code field, empty, never prefilled.
        let code_field = if request.approver_mfa {
            "<p><label>One-time code from your app (needed to approve): \
             <input name=\"mfa_code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" \
             pattern=\"[0-9]{6}\" maxlength=\"6\"></label></p>"
        } else {
            ""
        };
        body.push_str(&format!(
            "<p>Deciding as <strong>{}</strong>.</p>\
             <form method=\"post\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">{code_field}\
             <button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button>\
             <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\
             </form>",
            escape_html(&view.approver.id),
            escape_html(csrf)
        ));
    } else {
        body.push_str(&format!(
            "<p>This request is <strong>{}</strong>; there is nothing left to decide.</p>",
            request.state.as_str()
        ));
    }
    html(StatusCode::OK, "Access request", &body)
}

/// The page after a decision.
pub fn outcome(request: &AccessRequest) -> Response<Body> {
    let headline = match (request.state, &request.grant) {
        (RequestState::Active, Some(grant)) => {
            format!("Approved. Access is active until {} UTC.", iam_time(grant.ends_at))
        }
        (RequestState::Denied, _) => "Denied. The requester has been told.".to_string(),
        (RequestState::Applied, _) => match &request.extends {
            Some(asked) => format!(
                "Approved. Grant {} now lasts until {} UTC.",
                asked.grant_id,
                iam_time(asked.extend_to)
            ),
            None => "Approved.".to_string(),
        },
        (RequestState::Pending, _) => format!(
            "Your approval is recorded. {} of {} approvals so far.",
            request.approvals(),
            request.quorum
        ),
        (state, _) => format!("The request is now {}.", state.as_str()),
    };
    let body = format!("<h1>{}</h1>{}", escape_html(&headline), facts_table(request));
    html(StatusCode::OK, "Decision recorded", &body)
}

/// The confirmation page of a valid review link: the person, the role, and the keep or
/// remove form while nobody has decided about them.
pub fn review(view: &ReviewLinkView, csrf: &str) -> Response<Body> {
    let campaign = &view.campaign;
    let mut body = format!(
        "<h1>Access review</h1><p>May <strong>{}</strong> keep the right to request \
         <strong>{}</strong>?</p>{}",
        escape_html(&view.person),
        escape_html(&campaign.role),
        review_table(campaign, &view.person)
    );
    let decided =
        campaign.items.iter().find(|i| i.person == view.person).and_then(|i| i.decision.as_ref());
    match decided {
        None if campaign.completed_at.is_none() => body.push_str(&format!(
            "<p>Deciding as <strong>{}</strong>.</p>\
             <form method=\"post\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\" name=\"decision\" value=\"keep\">Keep</button>\
             <button type=\"submit\" name=\"decision\" value=\"remove\">Remove</button>\
             </form>",
            escape_html(&view.reviewer.id),
            escape_html(csrf)
        )),
        _ => body.push_str("<p>There is nothing left to decide about this person.</p>"),
    }
    html(StatusCode::OK, "Access review", &body)
}

/// The page after a review decision.
pub fn review_outcome(campaign: &Campaign, person: &str) -> Response<Body> {
    let headline = match campaign.completed_at {
        Some(_) => "Decision recorded. The review is complete.".to_string(),
        None => format!("Decision recorded. {} people left to decide.", campaign.undecided().len()),
    };
    let body = format!("<h1>{}</h1>{}", escape_html(&headline), review_table(campaign, person));
    html(StatusCode::OK, "Decision recorded", &body)
}

fn review_table(campaign: &Campaign, person: &str) -> String {
    let decision = campaign
        .items
        .iter()
        .find(|i| i.person == person)
        .and_then(|i| i.decision.as_ref())
        .map(|d| format!("{} by {} at {} UTC", d.verdict.as_str(), d.reviewer, iam_time(d.at)))
        .unwrap_or_else(|| "not decided".into());
    let rows = [
        ("Campaign", campaign.id.clone()),
        ("Role", campaign.role.clone()),
        ("Person", person.to_string()),
        ("Decide before", format!("{} UTC", iam_time(campaign.deadline))),
        ("Decision", decision),
    ];
    html_table(&rows)
}

/// The page for a refusal or failure, with the status and stable code of the error.
pub fn problem(err: &PimError) -> Response<Body> {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let detail = if err.is_refusal() || matches!(err, PimError::GrantFailed { .. }) {
        err.to_string()
    } else {
        tracing::error!(error = ?err, "approval page failed");
        "Something failed on our side; nothing was decided. Try again shortly.".to_string()
    };
    let body = format!(
        "<h1>Not possible</h1><p>{}</p><p><small>code: <code data-code=\"{code}\">{code}</code></small></p>",
        escape_html(&detail),
        code = err.code()
    );
    html(status, "Not possible", &body)
}

fn facts_table(request: &AccessRequest) -> String {
    let mut rows = vec![
        ("Request", request.id.clone()),
        ("Requester", request.requester.clone()),
        ("Role", request.role.clone()),
        ("Lands on", request.target_role_arn.clone()),
        ("Duration", format_iso(request.duration_secs)),
        ("Justification", request.justification.clone()),
    ];
    if let Some(asked) = &request.extends {
        rows.extend([
            ("Extends grant", asked.grant_id.clone()),
            ("Now ends at", format!("{} UTC", iam_time(asked.ends_at))),
            ("Would end at", format!("{} UTC", iam_time(asked.extend_to))),
        ]);
    }
    rows.extend([
        ("Requested at", format!("{} UTC", iam_time(request.created_at))),
        ("Decide before", format!("{} UTC", iam_time(request.pending_until))),
        ("State", request.state.as_str().to_string()),
    ]);
    for decision in &request.decisions {
        rows.push((
            "Decided",
            format!(
                "{} ({:?}) at {} UTC",
                decision.approver,
                decision.verdict,
                iam_time(decision.at)
            ),
        ));
    }
    html_table(&rows)
}

fn html(status: StatusCode, title: &str, body: &str) -> Response<Body> {
    let document = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{} · pim</title>\
         <style>{STYLE}</style></head><body>{body}</body></html>",
        escape_html(title)
    );
    let mut response = Response::new(Body::Text(document));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// Rows of name and value as an HTML table, both escaped.
fn html_table<N: AsRef<str>>(rows: &[(N, String)]) -> String {
    let cells: String = rows
        .iter()
        .map(|(name, value)| {
            format!(
                "<tr><th>{}</th><td>{}</td></tr>",
                escape_html(name.as_ref()),
                escape_html(value)
            )
        })
        .collect();
    format!("<table>{cells}</table>")
}
