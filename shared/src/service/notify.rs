//! The mail each step sends. Every message has a plain-text and an HTML part, shows times
//! in UTC, and carries nothing secret beyond an approver's own signed link.

use super::Pim;
use crate::api::escape_html;
use crate::catalog::Person;
use crate::duration::format_iso;
use crate::model::{AccessRequest, RequestState};
use crate::ports::Mail;
use crate::render::iam_time;

impl Pim {
    /// The mail asking `approver` to decide `request`, with their link.
    pub(crate) fn approval_mail(
        &self,
        request: &AccessRequest,
        approver: &Person,
        link: &str,
    ) -> Mail {
        let role = self.catalog.role(&request.role).map(|r| r.description.as_str()).unwrap_or("");
        let mut facts = vec![
            ("Requester", request.requester.clone()),
            ("Role", format!("{} ({role})", request.role)),
            ("Lands on", request.target_role_arn.clone()),
            ("Duration", format_iso(request.duration_secs)),
            ("Justification", request.justification.clone()),
            ("Decide before", iam_time(request.pending_until)),
            ("Request", request.id.clone()),
        ];
        if let Some(ticket) = &request.ticket {
            facts.push(("Ticket", ticket.clone()));
        }
        if request.quorum > 1 {
            facts.push(("Approvals needed", request.quorum.to_string()));
        }
        let intro = format!(
            "{} asks for {} for {}.",
            request.requester,
            request.role,
            format_iso(request.duration_secs)
        );
        let note = "Opening the link shows the request; nothing is decided until you press Approve or Deny on that page. The link is yours alone and works once.";
        Mail {
            to: approver.email.clone(),
            subject: format!(
                "[pim] {} requests {} for {}",
                request.requester,
                request.role,
                format_iso(request.duration_secs)
            ),
            text: text_body(&intro, &facts, Some(link), note),
            html: html_body(&intro, &facts, Some(link), note),
        }
    }

    /// The alert every approver of a role gets when someone breaks the glass.
    pub(crate) fn break_glass_mail(&self, request: &AccessRequest, approver: &Person) -> Mail {
        let facts = vec![
            ("Requester", request.requester.clone()),
            ("Role", request.role.clone()),
            ("Lands on", request.target_role_arn.clone()),
            ("Duration", format_iso(request.duration_secs)),
            ("Justification", request.justification.clone()),
            ("Request", request.id.clone()),
        ];
        let intro = format!(
            "{} used break-glass to activate {} without approval.",
            request.requester, request.role
        );
        let note = "Break-glass access is granted at once and must be reviewed after the fact.";
        Mail {
            to: approver.email.clone(),
            subject: format!("[pim] BREAK-GLASS: {} activated {}", request.requester, request.role),
            text: text_body(&intro, &facts, None, note),
            html: html_body(&intro, &facts, None, note),
        }
    }

    /// Tells the requester what became of their request; a failure to send is logged.
    pub(crate) async fn tell_requester(&self, request: &AccessRequest) {
        let Some(requester) = self.catalog.person(&request.requester) else { return };
        let Some(mail) = outcome_mail(request, requester) else { return };
        if let Err(err) = self.mailer.send(&mail).await {
            tracing::error!(request_id = %request.id, error = ?err, "outcome mail not sent");
        }
    }
}

fn outcome_mail(request: &AccessRequest, requester: &Person) -> Option<Mail> {
    let (headline, extra) = match (request.state, &request.grant) {
        (RequestState::Active, Some(grant)) => (
            "approved: access is active",
            vec![
                ("Active from", iam_time(grant.starts_at)),
                ("Active until", iam_time(grant.ends_at)),
            ],
        ),
        (RequestState::Denied, _) => ("denied", vec![]),
        (RequestState::Failed, _) => (
            "approved, but access could not be granted",
            vec![("Reason", request.reason.clone().unwrap_or_default())],
        ),
        _ => return None,
    };
    let mut facts = vec![("Role", request.role.clone()), ("Request", request.id.clone())];
    facts.extend(extra);
    let decided_by: Vec<&str> = request.decisions.iter().map(|d| d.approver.as_str()).collect();
    if !decided_by.is_empty() {
        facts.push(("Decided by", decided_by.join(", ")));
    }
    let intro = format!("Your request for {} was {headline}.", request.role);
    Some(Mail {
        to: requester.email.clone(),
        subject: format!("[pim] {} {headline}", request.role),
        text: text_body(&intro, &facts, None, "All times are UTC."),
        html: html_body(&intro, &facts, None, "All times are UTC."),
    })
}

fn text_body(intro: &str, facts: &[(&str, String)], link: Option<&str>, note: &str) -> String {
    let mut body = format!("{intro}\n\n");
    for (name, value) in facts {
        body.push_str(&format!("{name}: {value}\n"));
    }
    if let Some(link) = link {
        body.push_str(&format!("\nReview and decide: {link}\n"));
    }
    body.push_str(&format!("\n{note}\n"));
    body
}

fn html_body(intro: &str, facts: &[(&str, String)], link: Option<&str>, note: &str) -> String {
    let rows: String = facts
        .iter()
        .map(|(name, value)| {
            format!(
                "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
                escape_html(name),
                escape_html(value)
            )
        })
        .collect();
    let link = link
        .map(|link| format!("<p><a href=\"{0}\">Review and decide</a></p>", escape_html(link)))
        .unwrap_or_default();
    format!(
        "<!doctype html><html><body><p>{}</p><table>{rows}</table>{link}<p>{}</p></body></html>",
        escape_html(intro),
        escape_html(note)
    )
}
