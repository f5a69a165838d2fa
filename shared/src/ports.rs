//! The ports: what the domain needs from the outside world, as traits. Each has one adapter
//! for the real AWS service in [`crate::adapters`]; the domain never names an SDK type.
//!
//! Keeping them as traits lets the service be read without AWS in mind and lets the local
//! stack and tests wire the same adapters to the emulator. Every method that changes the
//! outside world is safe to repeat.

use crate::audit::AuditRecord;
use crate::audit::chain::ChainHead;
use crate::error::Result;
use crate::events::LifecycleEvent;
use crate::model::{AccessRequest, ExpiryEvent, RequestTimer};
use crate::service::campaigns::Campaign;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Durable state: requests, their audit records and consumed link ids. Every record it
/// writes is sealed into the one audit chain in the same transaction as the change.
#[async_trait]
pub trait RequestStore: Send + Sync {
    /// Stores a new request with its `request.created` record, in one transaction. Fails
    /// with a conflict if the id exists, and with `too_many_requests` (429) if it would be
    /// its requester's request number `per_hour + 1` in the clock hour of its creation;
    /// the count is part of the same transaction, so racing requests cannot pass it.
    async fn create_request(
        &self,
        request: &AccessRequest,
        record: &AuditRecord,
        per_hour: u32,
    ) -> Result<()>;

    /// The request with this id, read strongly consistently.
    async fn load_request(&self, id: &str) -> Result<Option<AccessRequest>>;

    /// The requests a person made, newest first.
    async fn requests_of(&self, person_id: &str) -> Result<Vec<AccessRequest>>;

    /// The audit records of a request, oldest first.
    async fn history(&self, request_id: &str) -> Result<Vec<AuditRecord>>;

    /// Writes `next` only if the stored request is still at `next.version - 1`, together
    /// with its record and, when given, the consumption of a one-time link id; all or
    /// nothing. A lost race is a conflict: `stale_request`, or `link_already_used` when the
    /// link id was consumed before.
    async fn commit_transition(
        &self,
        next: &AccessRequest,
        record: &AuditRecord,
        consume_link: Option<&str>,
    ) -> Result<()>;

    /// Commits several requests' transitions, each with its record (sealed into the chain
    /// in the order given) and each conditional on its previous version, and the
    /// consumption of a one-time link id, as one all-or-nothing write: an extension's final
    /// approval and the extended grant. Conflicts as for [`RequestStore::commit_transition`].
    async fn commit_transitions(
        &self,
        changes: &[(&AccessRequest, &AuditRecord)],
        consume_link: Option<&str>,
    ) -> Result<()>;

    /// Writes the record of a refusal that changed nothing else, into the chain.
    async fn record_refusal(&self, record: &AuditRecord) -> Result<()>;

    /// Every request whose grant may hold access (approved or active), read strongly
    /// consistently and paged through to the end.
    async fn live_grants(&self) -> Result<Vec<AccessRequest>>;

    /// Writes the record of a finding that belongs to no request transition (an orphan
    /// policy removed, standing access seen), once per `key`: `false` if a finding with this
    /// key was recorded before, so repeated sweeps do not repeat themselves.
    async fn record_finding(&self, key: &str, record: &AuditRecord) -> Result<bool>;

    /// Every request of the table, whatever its state, read strongly consistently and paged
    /// through to the end (the administrators' views and the report).
    async fn all_requests(&self) -> Result<Vec<AccessRequest>>;

    /// The chain's records whose time lies in `[from, to)`, in chain order (the report's
    /// refusals and findings).
    async fn records_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<AuditRecord>>;

    /// Stores a new access-review campaign with its `review.started` record, in one
    /// transaction; a campaign with this id is a conflict (`campaign_exists`).
    async fn create_campaign(&self, campaign: &Campaign, record: &AuditRecord) -> Result<()>;

    /// The campaign with this id, read strongly consistently.
    async fn load_campaign(&self, id: &str) -> Result<Option<Campaign>>;

    /// Writes `next` only if the stored campaign is still at `next.version - 1`, with its
    /// record and, when given, the consumption of a one-time link id; all or nothing
    /// (`stale_campaign`, or `link_already_used`).
    async fn commit_campaign(
        &self,
        next: &Campaign,
        record: &AuditRecord,
        consume_link: Option<&str>,
    ) -> Result<()>;

    /// Every campaign, paged through to the end.
    async fn campaigns(&self) -> Result<Vec<Campaign>>;
}

/// What became of a policy removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// The policy was there and is gone now.
    Deleted,
    /// There was nothing to remove; as good as deleted.
    AlreadyGone,
}

/// An eligible role and the policies it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolePolicies {
    /// The role's name.
    pub role_name: String,
    /// The role's ARN.
    pub role_arn: String,
    /// Names of its inline policies.
    pub inline: Vec<String>,
    /// ARNs of the managed policies attached to it.
    pub attached: Vec<String>,
}

/// Writes and removes grant policies on requesters' IAM roles.
#[async_trait]
pub trait PolicyBinder: Send + Sync {
    /// Puts the inline policy `policy_name` on `role_name` (overwrites the same name).
    async fn put_grant_policy(
        &self,
        role_name: &str,
        policy_name: &str,
        document: &str,
    ) -> Result<()>;

    /// Removes the inline policy; a policy already gone is success.
    async fn delete_grant_policy(&self, role_name: &str, policy_name: &str) -> Result<Removal>;

    /// The document of the inline policy `policy_name` on `role_name` as JSON, or `None`
    /// when the role holds no such policy now.
    async fn inline_policy(&self, role_name: &str, policy_name: &str) -> Result<Option<String>>;

    /// Every role under the IAM path `path_prefix` with its inline and attached policies,
    /// paged through to the end.
    async fn eligible_roles(&self, path_prefix: &str) -> Result<Vec<RolePolicies>>;

    /// Attaches the managed policy `policy_arn` to the role; one already attached is success.
    async fn attach_managed_policy(&self, role_name: &str, policy_arn: &str) -> Result<()>;

    /// Detaches the managed policy from the role; one not attached is success.
    async fn detach_managed_policy(&self, role_name: &str, policy_arn: &str) -> Result<Removal>;

    /// The ARNs of the managed policies attached to the role now.
    async fn attached_policies(&self, role_name: &str) -> Result<Vec<String>>;
}

/// Reads managed policy documents.
#[async_trait]
pub trait ManagedPolicySource: Send + Sync {
    /// The id and JSON document of the policy's default version. A policy that does not
    /// exist is a refusal (`managed_policy_not_found`).
    async fn default_version(&self, policy_arn: &str) -> Result<(String, String)>;
}

/// Who holds a managed policy attached to a role through pim, as stored: the reference count
/// of [`crate::service::attachments`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attachment {
    /// The role's name.
    pub role_name: String,
    /// The managed policy's ARN.
    pub policy_arn: String,
    /// The ids of the grants holding the attachment.
    pub holders: Vec<String>,
    /// Whether pim may have attached the policy and not detached it since.
    pub attached: bool,
    /// A detachment in progress, when there is one.
    pub detaching: Option<DetachLease>,
    /// Moves by one with every write; each write is conditioned on the version it read.
    pub version: u64,
}

/// The marker of a detachment in progress: until it ends, no grant may take the attachment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DetachLease {
    /// The grant (or `sweep`) detaching.
    pub by: String,
    /// When the lease lapses if its holder never clears it.
    pub until: DateTime<Utc>,
}

/// Durable reference counts of managed policies pim attached.
#[async_trait]
pub trait AttachmentLedger: Send + Sync {
    /// The attachment of `policy_arn` to `role_name`, read strongly consistently.
    async fn load_attachment(
        &self,
        role_name: &str,
        policy_arn: &str,
    ) -> Result<Option<Attachment>>;

    /// Stores `next` only if the stored attachment is still at `next.version - 1` (absent
    /// when that is 0); otherwise a conflict (`attachment_changed`).
    async fn save_attachment(&self, next: &Attachment) -> Result<()>;
}

/// Schedules the one-time revocation of each grant.
#[async_trait]
pub trait ExpiryScheduler: Send + Sync {
    /// Creates a one-time schedule `name` that delivers `event` at `at`; an existing
    /// schedule of that name is success.
    async fn schedule_expiry(
        &self,
        name: &str,
        at: DateTime<Utc>,
        event: &ExpiryEvent,
    ) -> Result<()>;

    /// Moves the existing schedule `name` to `at` (an extended grant), or creates it if it
    /// is gone.
    async fn reschedule_expiry(
        &self,
        name: &str,
        at: DateTime<Utc>,
        event: &ExpiryEvent,
    ) -> Result<()>;

    /// Creates a one-time schedule `name` that delivers a pending request's `timer` at `at`;
    /// an existing schedule of that name is success.
    async fn schedule_timer(
        &self,
        name: &str,
        at: DateTime<Utc>,
        timer: &RequestTimer,
    ) -> Result<()>;

    /// Deletes the schedule; one already gone is success.
    async fn cancel_expiry(&self, name: &str) -> Result<()>;

    /// The names of every schedule in the group, paged through to the end.
    async fn scheduled_names(&self) -> Result<std::collections::HashSet<String>>;
}

/// An email with a plain-text and an HTML part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// The recipient's address.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
}

/// Sends email.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends one message.
    async fn send(&self, mail: &Mail) -> Result<()>;
}

/// Computes and checks MACs with a key that never leaves its keeper (KMS).
#[async_trait]
pub trait LinkSigner: Send + Sync {
    /// The id of the key, as bound into tokens.
    fn key_id(&self) -> &str;

    /// The MAC of `message`.
    async fn mac(&self, message: &[u8]) -> Result<Vec<u8>>;

    /// Whether `tag` is the MAC of `message`; an invalid tag is `Ok(false)`.
    async fn verify(&self, message: &[u8], tag: &[u8]) -> Result<bool>;
}

/// The chain of audit records as stored: read in order, and the shipper's cursor.
#[async_trait]
pub trait AuditChain: Send + Sync {
    /// The newest record's sequence and hash, read strongly consistently.
    async fn chain_head(&self) -> Result<ChainHead>;

    /// Up to `limit` records after sequence `after`, in order, as the JSON text stored.
    async fn chain_records(&self, after: u64, limit: usize) -> Result<Vec<String>>;

    /// The sequence up to which records have been shipped (0 when none have).
    async fn shipped_through(&self) -> Result<u64>;

    /// Moves the shipping cursor from `from` to `to`; a cursor that moved meanwhile (another
    /// shipper) is a conflict.
    async fn mark_shipped(&self, from: u64, to: u64) -> Result<()>;
}

/// Where audit records are shipped for review: an append-only stream of JSON lines.
#[async_trait]
pub trait AuditSink: Send + Sync {
    /// Appends `lines`, in order, in one call.
    async fn append(&self, lines: &[String]) -> Result<()>;

    /// Every line of the stream, oldest first.
    async fn read_all(&self) -> Result<Vec<String>>;
}

/// Signs and verifies chain checkpoints with an asymmetric key that never leaves KMS.
#[async_trait]
pub trait CheckpointSigner: Send + Sync {
    /// The id of the signing key, as written into checkpoints.
    fn key_id(&self) -> &str;

    /// The signature of `message`.
    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>>;

    /// Whether `signature` is a signature of `message` by the key `key_id`; a wrong
    /// signature is `Ok(false)`.
    async fn verify(&self, key_id: &str, message: &[u8], signature: &[u8]) -> Result<bool>;
}

/// Encrypts and decrypts small secrets (TOTP secrets) with a key that never leaves its keeper
/// (KMS). The context is bound into the ciphertext: a secret sealed for one person cannot be
/// opened as another's.
#[async_trait]
pub trait SecretKeeper: Send + Sync {
    /// `plaintext` encrypted for `context`.
    async fn seal(&self, plaintext: &[u8], context: &[(&str, &str)]) -> Result<Vec<u8>>;

    /// The plaintext of `sealed`, which must have been sealed for the same `context`.
    async fn open(&self, sealed: &[u8], context: &[(&str, &str)]) -> Result<Vec<u8>>;
}

/// People's TOTP enrolments, and the one-time use of each code's step.
#[async_trait]
pub trait MfaStore: Send + Sync {
    /// The person's enrolment, read strongly consistently.
    async fn enrollment(&self, person: &str) -> Result<Option<crate::mfa::Enrollment>>;

    /// Stores a pending enrolment with its audit record, in one transaction, unless the
    /// person has an active one (a conflict, `mfa_already_enrolled`); a pending one is
    /// replaced.
    async fn begin_enrollment(
        &self,
        enrollment: &crate::mfa::Enrollment,
        record: &AuditRecord,
    ) -> Result<()>;

    /// Stores `confirmed` (the active form of a pending enrolment, its first step
    /// consumed) with its audit record, in one transaction, only if the stored enrolment is
    /// still the pending one issued at `confirmed.created_at`; otherwise a conflict
    /// (`stale_enrollment`).
    async fn confirm_enrollment(
        &self,
        confirmed: &crate::mfa::Enrollment,
        record: &AuditRecord,
    ) -> Result<()>;

    /// Consumes `step` of the person's active enrolment with a conditional write: `false`
    /// when that step or a later one was consumed before (a code used twice, or an older
    /// code after a newer one).
    async fn consume_step(&self, person: &str, step: u64) -> Result<bool>;
}

/// The event bus integrations subscribe to.
#[async_trait]
pub trait EventPublisher: Send + Sync {
    /// Puts `events` on the bus in order (in as many calls as the bus needs). Fails unless
    /// the bus accepted every one; events accepted before a failure may be put again by the
    /// retry, so consumers deduplicate on the record id.
    async fn publish(&self, events: &[LifecycleEvent]) -> Result<()>;
}
