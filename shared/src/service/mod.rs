//! The domain operations, one per use case. The functions call exactly one of these per
//! event; everything between the API and the ports happens here.
//!
//! - [`requests`]: create, show, list and cancel requests (the requester's API).
//! - [`roles`]: the roles a caller may request, with their terms.
//! - [`approvals`]: open an approval link and record a decision.
//! - [`reviews`]: the after-the-fact review of a break-glass activation.
//! - [`grants`]: put a grant's policy and schedule in place, and end it at expiry.
//! - [`holders`]: after activation: relinquish, revoke (administrators), extend.
//! - [`timers`]: a pending request's reminder and deadline.
//! - [`mfa`]: enrol a one-time code app, and check the codes policy asks for.
//! - [`attachments`]: managed policies attached as they are, reference-counted per role.
//! - [`sweep`]: reconcile the store with IAM and the scheduler, and report standing access.
//! - [`visibility`]: who holds what now (the active-grants view), and who may request what.
//! - [`alerts`]: usage alerts (frequent activation, unused eligibility), raised hourly.
//! - [`campaigns`]: access reviews: campaigns, reviewers' decisions, the proposed change.
//! - [`report`]: the auditors' report of grants in a time range, as JSON or CSV.
//! - [`notify`]: the mail each step sends.
//! - [`shipping`]: the audit chain to the audit stream, with signed checkpoints.
//!
//! Side effects in IAM and the scheduler happen only after the transition that calls for
//! them has committed, and each is safe to repeat.

pub mod alerts;
pub mod approvals;
pub mod attachments;
pub mod campaigns;
pub mod grants;
pub mod holders;
pub mod mfa;
pub mod notify;
pub mod report;
pub mod requests;
pub mod reviews;
pub mod roles;
pub mod shipping;
pub mod sweep;
pub mod timers;
pub mod visibility;

use crate::adapters::{
    AwsClients, DynamoRequestStore, EventBridgeExpiryScheduler, IamInlinePolicyBinder,
    IamManagedPolicySource, KmsLinkSigner, KmsSecretKeeper, SesMailer,
};
use crate::audit::{Actor, AuditAction, AuditRecord, Outcome, Source};
use crate::backoff::Backoff;
use crate::catalog::Catalog;
use crate::clock::Clock;
use crate::config::Settings;
use crate::error::PimError;
use crate::managed::ManagedPolicies;
use crate::metrics::{EmfStdout, Metric, MetricSink, Unit};
use crate::ports::{
    AttachmentLedger, ExpiryScheduler, LinkSigner, Mailer, MfaStore, PolicyBinder, RequestStore,
    SecretKeeper,
};
use std::sync::Arc;

pub use approvals::LinkView;
pub use campaigns::{NewCampaign, ReviewVerdict};
pub use grants::ExpiryOutcome;
pub use holders::{Extended, Extension, Revocation};
pub use mfa::{ConfirmEnrollment, NewEnrollment};
pub use report::Report;
pub use requests::{Created, NewRequest};
pub use reviews::NewReview;
pub use roles::RoleOffer;
pub use shipping::{AuditShipper, Shipped};
pub use sweep::SweepReport;
pub use timers::TimerOutcome;
pub use visibility::{EligibilityQuery, GrantScope};

/// The domain with its ports wired; built once per process.
#[derive(Clone)]
pub struct Pim {
    /// The policy document in force.
    pub catalog: Arc<Catalog>,
    /// Requests, audit records, consumed links.
    pub store: Arc<dyn RequestStore>,
    /// Grant policies on IAM roles, and managed policies attached to them.
    pub binder: Arc<dyn PolicyBinder>,
    /// Managed policy documents, read from IAM on first use.
    pub managed: Arc<ManagedPolicies>,
    /// Who holds each managed policy pim attached.
    pub ledger: Arc<dyn AttachmentLedger>,
    /// Expiry schedules.
    pub scheduler: Arc<dyn ExpiryScheduler>,
    /// Outgoing mail.
    pub mailer: Arc<dyn Mailer>,
    /// Link MACs.
    pub signer: Arc<dyn LinkSigner>,
    /// TOTP enrolments and consumed code steps.
    pub mfa: Arc<dyn MfaStore>,
    /// Encrypts TOTP secrets; `None` when MFA is not set up (see [`Settings::mfa_key_id`]).
    pub secrets: Option<Arc<dyn SecretKeeper>>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Base URL of the API, for links.
    pub public_url: String,
    /// Operational metrics.
    pub metrics: Arc<dyn MetricSink>,
    /// How patiently revocation retries IAM.
    pub backoff: Backoff,
    /// IAM path of the roles grants land on, which the sweep inspects.
    pub eligible_role_path: String,
}

impl Pim {
    /// Reads the settings and the policy document, builds the AWS clients and wires them:
    /// the cold start of every function. Fails naming the first missing or bad setting.
    pub async fn from_env() -> crate::Result<Self> {
        let settings = Settings::from_env()?;
        let catalog = Catalog::from_file(&settings.policy_file)?;
        let config = crate::adapters::lambda_sdk_config()?;
        let clients = AwsClients::new(&config);
        Ok(Self::with_aws(&settings, catalog, &clients, Arc::new(crate::clock::SystemClock)))
    }

    /// Records a refusal made at the edge (a malformed form, a failed CSRF or origin check)
    /// of a decision through a link, and hands it back.
    pub async fn refuse_link_use(&self, refusal: PimError) -> PimError {
        let subject = RefusalSubject::default();
        self.refuse(
            AuditAction::DecisionRefused,
            Actor::anonymous(),
            Source::Link,
            subject,
            refusal,
        )
        .await
    }

    /// Wires the AWS adapters described by `settings`.
    pub fn with_aws(
        settings: &Settings,
        catalog: Catalog,
        clients: &AwsClients,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let store = Arc::new(DynamoRequestStore::new(clients.dynamodb.clone(), &settings.table));
        Self {
            catalog: Arc::new(catalog),
            store: store.clone(),
            // The same store: MFA writes seal on the chain head the other writes keep.
            mfa: Arc::new(store.as_ref().clone()),
            secrets: settings.mfa_key_id.as_ref().map(|key| {
                Arc::new(KmsSecretKeeper::new(clients.kms.clone(), key)) as Arc<dyn SecretKeeper>
            }),
            binder: Arc::new(IamInlinePolicyBinder::new(clients.iam.clone())),
            managed: Arc::new(ManagedPolicies::new(Arc::new(IamManagedPolicySource::new(
                clients.iam.clone(),
            )))),
            ledger: store,
            scheduler: Arc::new(EventBridgeExpiryScheduler::new(
                clients.scheduler.clone(),
                &settings.schedule_group,
                &settings.revocation_arn,
                &settings.scheduler_role_arn,
                &settings.schedule_dlq_arn,
            )),
            mailer: Arc::new(SesMailer::new(clients.ses.clone(), &settings.sender)),
            signer: Arc::new(KmsLinkSigner::new(clients.kms.clone(), &settings.link_key_id)),
            clock,
            public_url: settings.public_url.clone(),
            metrics: Arc::new(EmfStdout::new(function_name())),
            backoff: Backoff::REVOCATION,
            eligible_role_path: settings.eligible_role_path.clone(),
        }
    }

    /// Records one observation now.
    fn observe(&self, name: &'static str, value: f64, unit: Unit) {
        self.metrics.emit(Metric { name, value, unit }, self.clock.now());
    }

    /// Records a refusal that changes nothing else, then hands the refusal back.
    ///
    /// A refusal that cannot be recorded is still a refusal: the caller gets it, and the
    /// failure to record is logged for a human.
    async fn refuse(
        &self,
        action: AuditAction,
        actor: Actor,
        source: Source,
        subject: RefusalSubject<'_>,
        refusal: PimError,
    ) -> PimError {
        let mut record =
            AuditRecord::new(action, Outcome::Refused, actor, source, self.clock.now())
                .because(refusal.code(), &refusal.to_string());
        record.request_id = subject.request_id.map(Into::into);
        record.role = subject.role.map(Into::into);
        if let Err(err) = self.store.record_refusal(&record).await {
            tracing::error!(error = ?err, code = refusal.code(), "refusal could not be recorded");
        }
        tracing::warn!(code = refusal.code(), request_id = subject.request_id, "refused");
        refusal
    }
}

/// The function's name for metrics: Lambda's own, or the process name elsewhere.
fn function_name() -> String {
    std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "local".into())
}

/// What a refusal was about, as far as it is known.
#[derive(Debug, Default, Clone, Copy)]
struct RefusalSubject<'a> {
    request_id: Option<&'a str>,
    role: Option<&'a str>,
}
