//! Access reviews. A campaign asks a role's reviewers (the role's `review.reviewers` in the
//! policy) to keep or remove each person eligible for it. Each reviewer gets one mail with
//! a signed link per person (the approval links' token, KMS MAC and one-time link id); the
//! link opens a page that changes nothing, and the decision is a POST from it with the
//! approval pages' CSRF and origin checks. The first reviewer to decide about a person
//! decides; nobody decides about themselves.
//!
//! Every decision is a conditional write of the campaign with its audit record
//! (`review.decided`) and the link's consumption, in one transaction. Once everyone is
//! decided the campaign completes (`review.completed`): the people to remove are proposed as
//! a change to the policy document, a unified diff that adds them to the role's `deny` list
//! (see [`crate::catalog::diff`]), recorded and mailed to the administrators, because the
//! policy in git stays the source of truth. A campaign still undecided at its deadline is
//! reported once (`review.overdue`) to its reviewers and the administrators.
//!
//! Campaigns start on demand (`POST /reviews`, administrators) or on the role's schedule
//! (`review.every`): the hourly oversight starts one campaign per period, periods counted
//! from the Unix epoch, with an id derived from the role and the period so that repeated
//! runs start it once.

use super::{Pim, RefusalSubject};
use crate::audit::{Actor, AuditAction, AuditRecord, Outcome, Source};
use crate::catalog::diff::{deny_people, unified_diff};
use crate::catalog::{CatalogRole, Person};
use crate::error::{PimError, Result};
use crate::identity::Principal;
use crate::model::new_id;
use crate::ports::Mail;
use crate::render::iam_time;
use crate::token::{self, LinkClaims, TOKEN_VERSION};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// A reviewer's answer about one person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewVerdict {
    /// The person keeps their eligibility.
    Keep,
    /// The person should lose it: proposed as a change to the policy.
    Remove,
}

impl ReviewVerdict {
    /// The verdict's name as pages, records and mail show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Keep => "keep",
            Self::Remove => "remove",
        }
    }
}

/// One person under review, and the decision about them once made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewItem {
    /// The person's id.
    pub person: String,
    /// The decision, once a reviewer made it.
    #[serde(default)]
    pub decision: Option<ReviewDecision>,
}

/// A recorded decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewDecision {
    /// Keep or remove.
    pub verdict: ReviewVerdict,
    /// The reviewer's person id.
    pub reviewer: String,
    /// When it was committed.
    pub at: DateTime<Utc>,
}

/// An access-review campaign of one role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Campaign {
    /// `rev-…`.
    pub id: String,
    /// The catalog role reviewed.
    pub role: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Decisions are accepted until this time; links expire with it.
    pub deadline: DateTime<Utc>,
    /// `schedule`, or the administrator who started it.
    pub started_by: String,
    /// Who may decide.
    pub reviewers: Vec<String>,
    /// Everyone eligible for the role when it started.
    pub items: Vec<ReviewItem>,
    /// When it completed (every person decided).
    #[serde(default)]
    pub completed_at: Option<DateTime<Utc>>,
    /// The proposed change to the policy document, once completed (empty: nothing to remove).
    #[serde(default)]
    pub policy_diff: Option<String>,
    /// When it was reported overdue (its deadline passed with people undecided).
    #[serde(default)]
    pub overdue_at: Option<DateTime<Utc>>,
    /// Moves by one with every write; each write is conditioned on the version it read.
    pub version: u64,
}

impl Campaign {
    /// `open`, `completed` or `overdue`.
    pub fn state(&self) -> &'static str {
        match (self.completed_at, self.overdue_at) {
            (Some(_), _) => "completed",
            (None, Some(_)) => "overdue",
            (None, None) => "open",
        }
    }

    /// The people nobody has decided about yet.
    pub fn undecided(&self) -> Vec<String> {
        self.items.iter().filter(|i| i.decision.is_none()).map(|i| i.person.clone()).collect()
    }

    /// The people decided `verdict`.
    pub fn decided(&self, verdict: ReviewVerdict) -> Vec<String> {
        let matches = |i: &&ReviewItem| i.decision.as_ref().is_some_and(|d| d.verdict == verdict);
        self.items.iter().filter(matches).map(|i| i.person.clone()).collect()
    }

    fn next(&self) -> Self {
        Self { version: self.version + 1, ..self.clone() }
    }
}

/// The body of `POST /reviews`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    /// The catalog role to review.
    pub role: String,
}

/// What a review link shows: the campaign, the reviewer and the person.
#[derive(Debug, Clone)]
pub struct ReviewLinkView {
    /// The verified claims.
    pub claims: LinkClaims,
    /// The campaign as stored now.
    pub campaign: Campaign,
    /// The reviewer the link was sent to.
    pub reviewer: Person,
    /// The person the link decides about.
    pub person: String,
}

/// What the hourly oversight did to campaigns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CampaignsChecked {
    /// Campaigns started on their role's schedule.
    pub started: Vec<String>,
    /// Campaigns completed (every person decided, the completion not yet recorded).
    pub completed: Vec<String>,
    /// Campaigns reported overdue.
    pub overdue: Vec<String>,
}

impl Pim {
    /// Starts a campaign of `input.role` now; administrators only.
    pub async fn start_review(&self, caller: &Principal, input: NewCampaign) -> Result<Campaign> {
        let person = self.known_person(caller)?;
        self.require_administrator(caller, person, "access reviews").await?;
        let role = self.reviewed_role(&input.role)?;
        let campaign = self.begin_campaign(role, new_id("rev"), &person.id).await?;
        Ok(campaign)
    }

    fn reviewed_role(&self, name: &str) -> Result<&CatalogRole> {
        let role = self.catalog.role(name).ok_or_else(|| {
            PimError::not_found(
                "unknown_role",
                format!("{} is not a role of the catalog", super::visibility::shown(name)),
            )
        })?;
        if role.review.is_none() {
            return Err(PimError::conflict(
                "no_review_policy",
                format!("{} names no reviewers in the policy", role.name),
            ));
        }
        Ok(role)
    }

    /// Stores a new campaign of `role` with id `id` and mails its reviewers; a campaign
    /// with this id already stored is a conflict (`campaign_exists`).
    async fn begin_campaign(
        &self,
        role: &CatalogRole,
        id: String,
        started_by: &str,
    ) -> Result<Campaign> {
        let review = role.review.as_ref().expect("a reviewed role");
        let now = self.clock.now();
        let items: Vec<ReviewItem> = self
            .catalog
            .people()
            .iter()
            .filter(|p| super::visibility::eligibility_of(role, p).is_some())
            .map(|p| ReviewItem { person: p.id.clone(), decision: None })
            .collect();
        let campaign = Campaign {
            id,
            role: role.name.clone(),
            started_at: now,
            deadline: now + Duration::seconds(review.deadline_secs as i64),
            started_by: started_by.into(),
            reviewers: review.reviewers.iter().cloned().collect(),
            items,
            completed_at: None,
            policy_diff: None,
            overdue_at: None,
            version: 1,
        };

        // Links are signed before anything is stored, so a KMS failure leaves nothing behind.
        let mut mails = Vec::new();
        for reviewer in campaign.reviewers.iter().filter_map(|id| self.catalog.person(id)) {
            let mut links = Vec::new();
            for item in campaign.items.iter().filter(|i| i.person != reviewer.id) {
                links.push((
                    item.person.clone(),
                    self.sign_review_link(&campaign, reviewer, &item.person).await?,
                ));
            }
            mails.push(self.review_mail(&campaign, reviewer, &links));
        }
        let actor = if started_by == "schedule" {
            Actor::system("schedule")
        } else {
            Actor::person(started_by, None)
        };
        let record = campaign_record(AuditAction::ReviewStarted, actor, &campaign, now)
            .with("people", campaign.items.iter().map(|i| i.person.clone()).collect::<Vec<_>>())
            .with("reviewers", campaign.reviewers.clone())
            .with("deadline", iam_time(campaign.deadline));
        self.store.create_campaign(&campaign, &record).await?;
        tracing::info!(campaign = %campaign.id, role = %campaign.role,
            people = campaign.items.len(), "access review started");
        for mail in mails {
            if let Err(err) = self.mailer.send(&mail).await {
                tracing::error!(campaign = %campaign.id, to = %mail.to, error = ?err,
                    "review mail not sent");
            }
        }
        if campaign.items.is_empty() {
            return self.complete_campaign(campaign).await;
        }
        Ok(campaign)
    }

    async fn sign_review_link(
        &self,
        campaign: &Campaign,
        reviewer: &Person,
        person: &str,
    ) -> Result<String> {
        let claims = LinkClaims {
            v: TOKEN_VERSION,
            kid: self.signer.key_id().to_string(),
            rid: campaign.id.clone(),
            apr: reviewer.id.clone(),
            lid: new_id("link"),
            exp: campaign.deadline.timestamp(),
            sub: Some(person.to_string()),
        };
        let token = token::issue(self.signer.as_ref(), &claims).await?;
        Ok(format!("{}/reviews/{token}", self.public_url))
    }

    /// Verifies a review link and reads its campaign. Writes nothing, whatever the outcome.
    pub async fn open_review_link(&self, token: &str) -> Result<ReviewLinkView> {
        self.read_review_link(token).await.map_err(|(err, _)| err)
    }

    async fn read_review_link(
        &self,
        token: &str,
    ) -> Result<ReviewLinkView, (PimError, Option<LinkClaims>)> {
        let claims = token::verify(self.signer.as_ref(), token, self.clock.now())
            .await
            .map_err(|err| (err, None))?;
        let refuse = |err: PimError| (err, Some(claims.clone()));
        let invalid = || PimError::refused("invalid_link", "this review link is not valid");
        let Some(person) = claims.sub.clone() else { return Err(refuse(invalid())) };
        if !claims.rid.starts_with("rev-") {
            return Err(refuse(invalid()));
        }
        let campaign = match self.store.load_campaign(&claims.rid).await {
            Ok(Some(campaign)) => campaign,
            Ok(None) => return Err(refuse(invalid())),
            Err(fault) => return Err(refuse(fault)),
        };
        let Some(reviewer) = self.catalog.person(&claims.apr).cloned() else {
            return Err(refuse(invalid()));
        };
        if !campaign.reviewers.contains(&reviewer.id)
            || !campaign.items.iter().any(|i| i.person == person)
        {
            return Err(refuse(invalid()));
        }
        if reviewer.id == person {
            return Err(refuse(PimError::refused(
                "self_review",
                "nobody reviews their own eligibility",
            )));
        }
        Ok(ReviewLinkView { claims, campaign, reviewer, person })
    }

    /// Records a reviewer's decision through a link; completes the campaign when it was the
    /// last one. Returns the campaign and the person decided about.
    pub async fn decide_review(
        &self,
        token: &str,
        verdict: ReviewVerdict,
    ) -> Result<(Campaign, String)> {
        let view = match self.read_review_link(token).await {
            Ok(view) => view,
            Err((refusal, claims)) if refusal.is_refusal() => {
                let actor =
                    claims.as_ref().map_or_else(Actor::anonymous, |c| Actor::person(&c.apr, None));
                return Err(self.refuse_review(actor, None, refusal).await);
            }
            Err((fault, _)) => return Err(fault),
        };
        let ReviewLinkView { claims, campaign, reviewer, person } = view;
        let actor = Actor::person(&reviewer.id, None);
        let role = self.catalog.role(&campaign.role);
        let still_reviewer = role
            .and_then(|r| r.review.as_ref())
            .is_some_and(|review| review.reviewers.contains(&reviewer.id));
        if !still_reviewer {
            let refusal = PimError::refused(
                "not_a_reviewer",
                "the policy no longer names you as a reviewer of this role",
            );
            return Err(self.refuse_review(actor, Some(&campaign), refusal).await);
        }
        if campaign.completed_at.is_some() {
            let refusal = PimError::conflict("review_closed", "this access review is complete");
            return Err(self.refuse_review(actor, Some(&campaign), refusal).await);
        }
        let item = campaign.items.iter().find(|i| i.person == person).expect("checked");
        if let Some(decision) = &item.decision {
            let refusal = PimError::conflict(
                "already_decided",
                format!("{} already decided about {person}", decision.reviewer),
            );
            return Err(self.refuse_review(actor, Some(&campaign), refusal).await);
        }

        let now = self.clock.now();
        let mut next = campaign.next();
        for item in next.items.iter_mut().filter(|i| i.person == person) {
            item.decision =
                Some(ReviewDecision { verdict, reviewer: reviewer.id.clone(), at: now });
        }
        let record = campaign_record(AuditAction::ReviewDecided, actor.clone(), &next, now)
            .with("person", person.clone())
            .with("decision", verdict.as_str())
            .with("link_id", claims.lid.clone());
        if let Err(err) = self.store.commit_campaign(&next, &record, Some(&claims.lid)).await {
            if err.is_refusal() {
                return Err(self.refuse_review(actor, Some(&campaign), err).await);
            }
            return Err(err);
        }
        tracing::info!(campaign = %next.id, reviewer = %reviewer.id, person = %person,
            decision = verdict.as_str(), "review decision recorded");
        if next.undecided().is_empty() {
            return Ok((self.complete_campaign(next).await?, person));
        }
        Ok((next, person))
    }

    /// Records the completion of a campaign whose people are all decided, with the change
    /// to the policy it proposes, and mails that change to the administrators.
    async fn complete_campaign(&self, campaign: Campaign) -> Result<Campaign> {
        let now = self.clock.now();
        let removed = campaign.decided(ReviewVerdict::Remove);
        let source = &self.catalog.source;
        let diff = if removed.is_empty() || source.is_empty() {
            String::new()
        } else {
            let after = deny_people(source, &campaign.role, &removed)?;
            unified_diff(source, &after, "policy.yaml")
        };
        let mut next = campaign.next();
        next.completed_at = Some(now);
        next.policy_diff = Some(diff.clone());
        let record =
            campaign_record(AuditAction::ReviewCompleted, Actor::system("review"), &next, now)
                .with("kept", next.decided(ReviewVerdict::Keep))
                .with("removed", removed.clone())
                .with("policy_diff", diff.clone());
        self.store.commit_campaign(&next, &record, None).await?;
        tracing::info!(campaign = %next.id, removed = removed.len(), "access review completed");
        let administrators: Vec<&Person> =
            self.catalog.people().iter().filter(|p| self.catalog.is_administrator(&p.id)).collect();
        for admin in administrators {
            let mail = completion_mail(&next, admin, &removed, &diff);
            if let Err(err) = self.mailer.send(&mail).await {
                tracing::error!(campaign = %next.id, error = ?err,
                    "review completion mail not sent");
            }
        }
        Ok(next)
    }

    /// The oversight's part for reviews: starts the campaigns due on their role's schedule,
    /// completes campaigns whose completion was not recorded, and reports those past their
    /// deadline with people undecided, once.
    pub async fn check_reviews(&self) -> Result<CampaignsChecked> {
        let now = self.clock.now();
        let mut checked = CampaignsChecked::default();
        for role in self.catalog.roles() {
            let Some(every) = role.review.as_ref().and_then(|r| r.every_secs) else { continue };
            let period = now.timestamp().max(0) as u64 / every.max(1);
            let id = format!("rev-{}-{period}", role.name);
            if self.store.load_campaign(&id).await?.is_some() {
                continue;
            }
            match self.begin_campaign(role, id.clone(), "schedule").await {
                Ok(_) => checked.started.push(id),
                Err(PimError::Conflict { code: "campaign_exists", .. }) => {}
                Err(err) => return Err(err),
            }
        }
        for campaign in self.store.campaigns().await? {
            if campaign.completed_at.is_some() {
                continue;
            }
            if campaign.undecided().is_empty() {
                checked.completed.push(campaign.id.clone());
                self.complete_campaign(campaign).await?;
            } else if now >= campaign.deadline && campaign.overdue_at.is_none() {
                checked.overdue.push(campaign.id.clone());
                self.report_overdue(campaign, now).await?;
            }
        }
        Ok(checked)
    }

    async fn report_overdue(&self, campaign: Campaign, now: DateTime<Utc>) -> Result<()> {
        let mut next = campaign.next();
        next.overdue_at = Some(now);
        let undecided = next.undecided();
        let record =
            campaign_record(AuditAction::ReviewOverdue, Actor::system("review"), &next, now)
                .with("undecided", undecided.clone())
                .with("deadline", iam_time(next.deadline))
                .with("severity", "medium");
        self.store.commit_campaign(&next, &record, None).await?;
        tracing::warn!(campaign = %next.id, undecided = undecided.len(), "access review overdue");
        let mut told: Vec<&str> = next.reviewers.iter().map(String::as_str).collect();
        told.extend(
            self.catalog
                .people()
                .iter()
                .filter(|p| self.catalog.is_administrator(&p.id))
                .map(|p| p.id.as_str()),
        );
        told.sort_unstable();
        told.dedup();
        for person in told.iter().filter_map(|id| self.catalog.person(id)) {
            let mail = overdue_mail(&next, person, &undecided);
            if let Err(err) = self.mailer.send(&mail).await {
                tracing::error!(campaign = %next.id, error = ?err, "overdue mail not sent");
            }
        }
        Ok(())
    }

    async fn refuse_review(
        &self,
        actor: Actor,
        campaign: Option<&Campaign>,
        refusal: PimError,
    ) -> PimError {
        let subject = RefusalSubject { request_id: None, role: campaign.map(|c| c.role.as_str()) };
        self.refuse(AuditAction::ReviewDecisionRefused, actor, Source::Link, subject, refusal).await
    }

    fn review_mail(
        &self,
        campaign: &Campaign,
        reviewer: &Person,
        links: &[(String, String)],
    ) -> Mail {
        let subject = format!("[pim] Access review of {}: {} people", campaign.role, links.len());
        let mut text = format!(
            "Please review who may request {}. For each person, open the link and choose \
             keep or remove. Decide by {} (UTC).\n\nCampaign {}\n\n",
            campaign.role,
            iam_time(campaign.deadline),
            campaign.id
        );
        let mut html = format!(
            "<p>Please review who may request <strong>{}</strong>. For each person, open the \
             link and choose keep or remove. Decide by {} (UTC).</p><p>Campaign {}</p><ul>",
            crate::api::escape_html(&campaign.role),
            iam_time(campaign.deadline),
            crate::api::escape_html(&campaign.id)
        );
        for (person, link) in links {
            text.push_str(&format!("{person}: {link}\n"));
            html.push_str(&format!(
                "<li>{}: <a href=\"{}\">review</a></li>",
                crate::api::escape_html(person),
                crate::api::escape_html(link)
            ));
        }
        html.push_str("</ul>");
        Mail { to: reviewer.email.clone(), subject, text, html }
    }
}

fn campaign_record(
    action: AuditAction,
    actor: Actor,
    campaign: &Campaign,
    at: DateTime<Utc>,
) -> AuditRecord {
    let source = match actor.kind.as_str() {
        "system" => Source::Schedule,
        _ if action == AuditAction::ReviewDecided => Source::Link,
        _ => Source::Api,
    };
    let mut record = AuditRecord::new(action, Outcome::Success, actor, source, at)
        .with("campaign_id", campaign.id.clone());
    record.role = Some(campaign.role.clone());
    record
}

fn completion_mail(campaign: &Campaign, to: &Person, removed: &[String], diff: &str) -> Mail {
    let subject = format!("[pim] Access review of {} complete", campaign.role);
    let change = if removed.is_empty() {
        "Everyone keeps their eligibility; the policy needs no change.".to_string()
    } else {
        format!(
            "Reviewers removed {}. Apply this change to the policy document in git and deploy \
             it:\n\n{diff}",
            removed.join(", ")
        )
    };
    let text = format!("Campaign {} of {} is complete.\n\n{change}\n", campaign.id, campaign.role);
    let html = format!("<pre>{}</pre>", crate::api::escape_html(&text));
    Mail { to: to.email.clone(), subject, text, html }
}

fn overdue_mail(campaign: &Campaign, to: &Person, undecided: &[String]) -> Mail {
    let subject = format!("[pim] Access review of {} is overdue", campaign.role);
    let text = format!(
        "Campaign {} of {} passed its deadline ({} UTC) with no decision about: {}.\n",
        campaign.id,
        campaign.role,
        iam_time(campaign.deadline),
        undecided.join(", ")
    );
    let html = format!("<p>{}</p>", crate::api::escape_html(&text));
    Mail { to: to.email.clone(), subject, text, html }
}
