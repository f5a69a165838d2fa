//! The mail each step sends. Every message has a plain-text and an HTML part, shows the
//! request's facts (requester, role, justification, ticket, duration) and its times in UTC
//! and in the policy document's time zone, and carries nothing secret beyond an approver's
//! own signed link.

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
        let mut facts = self.request_facts(request);
        facts.push(("Decide before", self.when(request.pending_until)));
        if request.quorum > 1 {
            facts.push(("Approvals needed", request.quorum.to_string()));
        }
        if let Some(asked) = &request.extends {
            let intro = format!(
                "{} asks to extend their grant of {} by {}, until {}.",
                request.requester,
                request.role,
                format_iso(request.duration_secs),
                iam_time(asked.extend_to)
            );
            let note = "Opening the link shows the extension; nothing is decided until you press Approve or Deny on that page. The link is yours alone and works once. Times are UTC, with the policy's time zone beside them.";
            return Mail {
                to: approver.email.clone(),
                subject: format!(
                    "[pim] {} asks to extend {} by {}",
                    request.requester,
                    request.role,
                    format_iso(request.duration_secs)
                ),
                text: text_body(&intro, &facts, Some(link), note),
                html: html_body(&intro, &facts, Some(link), note),
            };
        }
        let intro = format!(
            "{} asks for {} for {}.",
            request.requester,
            request.role,
            format_iso(request.duration_secs)
        );
        let note = "Opening the link shows the request; nothing is decided until you press Approve or Deny on that page. The link is yours alone and works once. Times are UTC, with the policy's time zone beside them.";
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
        let facts = self.request_facts(request);
        let intro = format!(
            "{} used break-glass to activate {} without approval.",
            request.requester, request.role
        );
        let note = "Break-glass access is granted at once and must be reviewed after the fact. Times are UTC, with the policy's time zone beside them.";
        Mail {
            to: approver.email.clone(),
            subject: format!("[pim] BREAK-GLASS: {} activated {}", request.requester, request.role),
            text: text_body(&intro, &facts, None, note),
            html: html_body(&intro, &facts, None, note),
        }
    }

    /// The reminder to `approver`, who has not decided yet, with a new link of theirs.
    pub(crate) fn reminder_mail(
        &self,
        request: &AccessRequest,
        approver: &Person,
        link: &str,
    ) -> Mail {
        let mut mail = self.approval_mail(request, approver, link);
        mail.subject = format!("[pim] Reminder: {}", mail.subject.trim_start_matches("[pim] "));
        mail
    }

    /// Tells the requester what became of their request; a failure to send is logged.
    pub(crate) async fn tell_requester(&self, request: &AccessRequest) {
        let Some(requester) = self.catalog.person(&request.requester) else { return };
        let Some(mail) = self.outcome_mail(request, requester) else { return };
        self.send_to_requester(request, &mail).await;
    }

    /// Tells the holder their grant now lasts longer.
    pub(crate) async fn tell_extended(&self, request: &AccessRequest) {
        let Some(grant) = &request.grant else { return };
        let intro = format!("Your grant of {} was extended.", request.role);
        let subject = format!("[pim] {} extended until {}", request.role, iam_time(grant.ends_at));
        self.tell_holder(request, intro, subject, ("Active until", grant.ends_at), "").await;
    }

    /// Warns the holder that their grant ends soon.
    pub(crate) async fn tell_ending_soon(&self, request: &AccessRequest) {
        let Some(grant) = &request.grant else { return };
        let intro = format!("Your grant of {} ends soon.", request.role);
        let subject = format!("[pim] {} ends at {}", request.role, iam_time(grant.ends_at));
        let hint = "Ask for more time with POST /grants/{id}/extend where the policy allows it. ";
        self.tell_holder(request, intro, subject, ("Access ends at", grant.ends_at), hint).await;
    }

    /// A mail to the holder of a grant: the request's facts and one time.
    async fn tell_holder(
        &self,
        request: &AccessRequest,
        intro: String,
        subject: String,
        (label, at): (&'static str, chrono::DateTime<chrono::Utc>),
        hint: &str,
    ) {
        let Some(requester) = self.catalog.person(&request.requester) else { return };
        let mut facts = self.request_facts(request);
        facts.push((label, self.when(at)));
        let note = format!("{hint}Times are UTC, with the policy's time zone beside them.");
        let mail = Mail {
            to: requester.email.clone(),
            subject,
            text: text_body(&intro, &facts, None, &note),
            html: html_body(&intro, &facts, None, &note),
        };
        self.send_to_requester(request, &mail).await;
    }

    async fn send_to_requester(&self, request: &AccessRequest, mail: &Mail) {
        if let Err(err) = self.mailer.send(mail).await {
            tracing::error!(request_id = %request.id, error = ?err, "outcome mail not sent");
        }
    }

    /// The facts every mail about a request shows.
    fn request_facts(&self, request: &AccessRequest) -> Vec<(&'static str, String)> {
        let role = self.catalog.role(&request.role).map(|r| r.description.as_str()).unwrap_or("");
        let mut facts = vec![
            ("Requester", request.requester.clone()),
            ("Role", format!("{} ({role})", request.role)),
            ("Lands on", request.target_role_arn.clone()),
            ("Duration", format_iso(request.duration_secs)),
            ("Justification", request.justification.clone()),
        ];
        if let Some(ticket) = &request.ticket {
            facts.push(("Ticket", ticket.clone()));
        }
        if let Some(asked) = &request.extends {
            facts.push(("Extends grant", asked.grant_id.clone()));
            facts.push(("Grant now ends at", self.when(asked.ends_at)));
            facts.push(("Would end at", self.when(asked.extend_to)));
        }
        facts.push(("Requested at", self.when(request.created_at)));
        facts.push(("Request", request.id.clone()));
        facts
    }

    /// A time as mail shows it: UTC, and the policy document's zone beside it.
    pub(crate) fn when(&self, at: chrono::DateTime<chrono::Utc>) -> String {
        let zone = self.catalog.time_zone;
        if zone == chrono_tz::UTC {
            return iam_time(at);
        }
        let local = at.with_timezone(&zone).format("%Y-%m-%d %H:%M:%S %Z");
        format!("{} ({local}, {})", iam_time(at), zone.name())
    }

    fn outcome_mail(&self, request: &AccessRequest, requester: &Person) -> Option<Mail> {
        let (headline, extra) = match (request.state, &request.grant) {
            (RequestState::Active, Some(grant)) => (
                "approved: access is active",
                vec![
                    ("Active from", self.when(grant.starts_at)),
                    ("Active until", self.when(grant.ends_at)),
                ],
            ),
            (RequestState::Denied, _) => ("denied", vec![]),
            (RequestState::Expired, None) => (
                "not decided in time and has expired",
                vec![("Decision was due by", self.when(request.pending_until))],
            ),
            (RequestState::Revoked, Some(grant)) => (
                "revoked: access has ended",
                vec![
                    ("Was active until", self.when(grant.ends_at)),
                    ("Reason", request.reason.clone().unwrap_or_default()),
                ],
            ),
            (RequestState::Failed, _) => (
                "approved, but access could not be granted",
                vec![("Reason", request.reason.clone().unwrap_or_default())],
            ),
            _ => return None,
        };
        let mut facts = self.request_facts(request);
        facts.extend(extra);
        let decided_by: Vec<&str> = request.decisions.iter().map(|d| d.approver.as_str()).collect();
        if !decided_by.is_empty() {
            facts.push(("Decided by", decided_by.join(", ")));
        }
        let intro = match request.extends {
            None => format!("Your request for {} was {headline}.", request.role),
            Some(_) => format!("Your extension request for {} was {headline}.", request.role),
        };
        let note = "Times are UTC, with the policy's time zone beside them.";
        Some(Mail {
            to: requester.email.clone(),
            subject: format!("[pim] {} {headline}", request.role),
            text: text_body(&intro, &facts, None, note),
            html: html_body(&intro, &facts, None, note),
        })
    }
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
