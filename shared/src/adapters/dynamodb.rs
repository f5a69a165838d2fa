//! [`RequestStore`] on one DynamoDB table.
//!
//! Items (partition key `pk`, sort key `sk`, both strings):
//!
//! | item | pk | sk | notes |
//! |---|---|---|---|
//! | request | `REQ#<id>` | `REQUEST` | `doc` JSON, `version`, `state`; `gsi1pk`/`gsi1sk` index it by requester; `ttl` once closed |
//! | request history | `REQ#<id>` | `AUDIT#<version>` | the sealed record of each transition, for `history` |
//! | chain record | `AUDIT#CHAIN#<sequence / 1000>` | `<sequence>` | every sealed record, refusals included, in chain order |
//! | chain head | `AUDIT#HEAD` | `HEAD` | `sequence` and `hash` of the newest record |
//! | shipping cursor | `AUDIT#SHIPPED` | `CURSOR` | `sequence` shipped so far |
//! | consumed link | `LINK#<link id>` | `LINK` | exists once the link decided something |
//! | request count | `RATE#<person id>` | `HOUR#<hours since the epoch>` | `count` of the person's requests created in that hour; `ttl` a day after it |
//! | finding | `FINDING#<key>` | `FINDING` | a sweep finding outside any request, once per key |
//! | attachment | `ATTACH#<role name>` | `<policy ARN>` | `doc` JSON and `version`: who holds a managed policy pim attached |
//! | review campaign | `CAMPAIGN#<id>` | `CAMPAIGN` | `doc` JSON and `version`: an access review and its decisions |
//! | MFA enrolment | `MFA#<person>` | `MFA` | `secret` (KMS ciphertext), `mfa_state`, `created_at`, `last_step` |
//!
//! [`RequestStore::live_grants`] is a paginated, strongly consistent `Scan` filtered on
//! `state`: it reads (and is billed for) every item of the table, audit records included,
//! once per sweep. That is cheap for thousands of requests a day; a table much larger
//! than that wants a sparse index on live grants instead.
//!
//! Every transition is one `TransactWriteItems`: the request put conditioned on the version
//! it was read at, its history item, the link item conditioned on not existing, the chain
//! record, and the chain head conditioned on the sequence it was read at. Two racing writers
//! cannot both commit, and the chain cannot fork: two records can never claim one sequence.
//!
//! Every record goes through the one head, so every audit write contends with every other.
//! When only the head's condition failed (another record took the sequence meanwhile) the
//! change itself is still valid: the record is sealed again on the new head and the
//! transaction retried, with a short jittered pause. A failed condition on the request or
//! the link is the caller's conflict and is never retried. The cost is throughput: records
//! are appended one at a time, a few dozen per second at most, which is ample for people
//! asking for and approving access, and the price of a single provable order.
//!
//! A store keeps the newest head it has seen (the one its last transaction wrote, or the one
//! a cancelled transaction found) and seals the next record on it without reading the head
//! again; its clones share it. The head put returns the stored head when its condition
//! fails, so a stale cached head costs one cancelled transaction in place of the read it
//! saved, and the record is sealed again on what the table holds: never a broken or forked
//! chain, because the head only moves by that conditional put. Within one invocation that
//! writes twice (a decision, then the grant's activation) the second record needs no read.

use super::aws_error;
use crate::audit::AuditRecord;
use crate::audit::chain::{self, ChainHead};
use crate::error::{PimError, Result};
use crate::mfa::{Enrollment, EnrollmentState};
use crate::model::{AccessRequest, RequestState};
use crate::ports::{Attachment, AttachmentLedger, AuditChain, MfaStore, RequestStore};
use crate::service::campaigns::Campaign;
use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason, Put, TransactWriteItem};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// The index of requests by requester.
pub const REQUESTER_INDEX: &str = "by-requester";

/// How long a closed request stays in the table before TTL may collect it: 400 days, well
/// past any audit review window. TTL never decides access; it only removes old records.
pub const CLOSED_RETENTION_DAYS: i64 = 400;

type Item = HashMap<String, AttributeValue>;

/// The store of requests, audit records and consumed links.
#[derive(Debug, Clone)]
pub struct DynamoRequestStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    scan_page: Option<i32>,
    /// The newest chain head this store has seen committed, shared by its clones.
    known_head: Arc<Mutex<Option<ChainHead>>>,
}

impl DynamoRequestStore {
    /// A store on `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into(), scan_page: None, known_head: Arc::default() }
    }

    /// Reads scans `items` items a page instead of DynamoDB's 1 MB pages: more, smaller
    /// calls. Useful to bound one call's cost, and to exercise paging on small tables.
    pub fn with_scan_page(mut self, items: i32) -> Self {
        self.scan_page = Some(items);
        self
    }

    fn put(&self, item: Item, condition: &str, values: Option<Item>) -> Result<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_values(values)
            .build()
            .map_err(|err| PimError::aws("dynamodb:TransactWriteItems", false, err))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The update that counts one more request of `person` in `hour` (hours since the
    /// epoch), only while fewer than `per_hour` are counted.
    fn count_request(&self, person: &str, hour: i64, per_hour: u32) -> Result<TransactWriteItem> {
        let update = aws_sdk_dynamodb::types::Update::builder()
            .table_name(&self.table)
            .key("pk", s(format!("RATE#{person}")))
            .key("sk", s(format!("HOUR#{hour}")))
            .update_expression("ADD #count :one SET #ttl = :ttl")
            .condition_expression("attribute_not_exists(#count) OR #count < :limit")
            .expression_attribute_names("#count", "count")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":limit", n(per_hour))
            .expression_attribute_values(":ttl", n((hour + 25) * 3600))
            .build()
            .map_err(|err| PimError::aws("dynamodb:TransactWriteItems", false, err))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<(), SdkError<TransactWriteItemsError>> {
        self.client.transact_write_items().set_transact_items(Some(items)).send().await?;
        Ok(())
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn request_key(id: &str) -> String {
    format!("REQ#{id}")
}

/// Whether a request is closed for good (no further transition possible).
fn is_closed(state: RequestState) -> bool {
    matches!(
        state,
        RequestState::Denied
            | RequestState::Cancelled
            | RequestState::Expired
            | RequestState::Failed
            | RequestState::Revoked
            | RequestState::Applied
    )
}

fn request_item(request: &AccessRequest) -> Item {
    let mut item: Item = HashMap::from([
        ("pk".into(), s(request_key(&request.id))),
        ("sk".into(), s("REQUEST")),
        ("doc".into(), s(serde_json::to_string(request).expect("request serializes"))),
        ("version".into(), n(request.version)),
        ("state".into(), s(request.state.as_str())),
        ("requester".into(), s(&request.requester)),
        ("gsi1pk".into(), s(format!("PERSON#{}", request.requester))),
        ("gsi1sk".into(), s(format!("{}#{}", request.created_at.to_rfc3339(), request.id))),
    ]);
    if is_closed(request.state) {
        let ttl = request.updated_at + chrono::Duration::days(CLOSED_RETENTION_DAYS);
        item.insert("ttl".into(), n(ttl.timestamp()));
    }
    item
}

/// The item that keeps a transition's record with its request, for `history`.
fn history_item(record: &AuditRecord, request_id: &str, version: u64) -> Item {
    HashMap::from([
        ("pk".into(), s(request_key(request_id))),
        ("sk".into(), s(format!("AUDIT#{version:010}"))),
        ("doc".into(), s(serde_json::to_string(record).expect("record serializes"))),
        ("sequence".into(), n(record.sequence)),
    ])
}

/// The item of a sealed record in chain order.
fn chain_item(record: &AuditRecord) -> Item {
    HashMap::from([
        ("pk".into(), s(chain_bucket(record.sequence))),
        ("sk".into(), s(chain_sort_key(record.sequence))),
        ("doc".into(), s(serde_json::to_string(record).expect("record serializes"))),
        ("action".into(), s(serde_json::to_value(record.action).unwrap().as_str().unwrap_or(""))),
        ("time".into(), s(record.time.to_rfc3339())),
    ])
}

/// Chain records are spread over partitions of a thousand, so no partition grows forever.
fn chain_bucket(sequence: u64) -> String {
    format!("AUDIT#CHAIN#{:010}", sequence / CHAIN_BUCKET_SIZE)
}

fn chain_sort_key(sequence: u64) -> String {
    format!("{sequence:020}")
}

/// How many records share one chain partition.
const CHAIN_BUCKET_SIZE: u64 = 1000;

/// How many times an audit write is sealed again after losing the chain head to another.
const CHAIN_ATTEMPTS: u32 = 40;

const HEAD_PK: &str = "AUDIT#HEAD";
const CURSOR_PK: &str = "AUDIT#SHIPPED";

/// What an item of a transaction stands for, to read a cancelled transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Request,
    History,
    Link,
    Finding,
    Enrollment,
    Campaign,
    Rate,
    Chain,
}

fn decode<T: serde::de::DeserializeOwned>(item: &Item) -> Result<T> {
    let key = item.get("pk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
    let doc = item
        .get("doc")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| PimError::Corrupt { key: key.clone(), reason: "no doc attribute".into() })?;
    serde_json::from_str(doc).map_err(|err| PimError::Corrupt { key, reason: err.to_string() })
}

/// The reasons of a cancelled transaction, one per item; `None` for other errors.
fn cancellation_reasons(err: &SdkError<TransactWriteItemsError>) -> Option<&[CancellationReason]> {
    if let SdkError::ServiceError(service) = err
        && let TransactWriteItemsError::TransactionCanceledException(cancelled) = service.err()
    {
        return Some(cancelled.cancellation_reasons());
    }
    None
}

/// The chain head an item of the head holds.
fn head_of(item: &Item) -> Result<ChainHead> {
    let hash = item.get("hash").and_then(|v| v.as_s().ok()).cloned().ok_or_else(|| {
        PimError::Corrupt { key: HEAD_PK.into(), reason: "no hash attribute".into() }
    })?;
    Ok(ChainHead { sequence: number_of(item, "chain_sequence")?, hash })
}

/// The conflict a cancelled transaction stands for, or `None` when only the chain lost a
/// race and the change can be sealed again.
fn conflict_of(parts: &[Part], codes: &[String]) -> Option<PimError> {
    let failed = |part: Part| {
        parts.iter().zip(codes).any(|(p, code)| *p == part && code == "ConditionalCheckFailed")
    };
    if failed(Part::Rate) {
        return Some(PimError::TooMany {
            code: "too_many_requests",
            message: "too many requests in this hour; nothing was stored and no mail was sent"
                .into(),
            retry_after_secs: 0,
        });
    }
    if failed(Part::Link) {
        return Some(PimError::conflict(
            "link_already_used",
            "this approval link was already used",
        ));
    }
    if failed(Part::Enrollment) {
        return Some(PimError::conflict(
            "mfa_already_enrolled",
            "an enrolment exists that this change no longer matches: a confirmed one cannot be \
             replaced, and a pending one may have been replaced meanwhile",
        ));
    }
    if failed(Part::Finding) {
        return Some(PimError::conflict("finding_recorded", "this finding is already recorded"));
    }
    if failed(Part::Campaign) {
        return Some(PimError::conflict(
            "stale_campaign",
            "the access review changed while this action was in progress; nothing was written",
        ));
    }
    if failed(Part::Request) || failed(Part::History) {
        return Some(PimError::conflict(
            "stale_request",
            "the request changed while this action was in progress; nothing was written",
        ));
    }
    None
}

impl DynamoRequestStore {
    /// Seals `record` on the current chain head and commits it with the items `state`
    /// builds for the sealed record, in one transaction; seals again when only the head
    /// moved meanwhile.
    async fn append<F>(&self, record: &AuditRecord, state: F) -> Result<()>
    where
        F: Fn(&AuditRecord) -> Result<Vec<(Part, TransactWriteItem)>>,
    {
        self.append_all(std::slice::from_ref(record), |sealed| state(&sealed[0])).await
    }

    /// Seals `records` one after another on the current chain head and commits them with
    /// the items `state` builds for the sealed records, in one transaction; seals again
    /// when only the head moved meanwhile.
    async fn append_all<F>(&self, records: &[AuditRecord], state: F) -> Result<()>
    where
        F: Fn(&[AuditRecord]) -> Result<Vec<(Part, TransactWriteItem)>>,
    {
        for attempt in 0..CHAIN_ATTEMPTS {
            let cached = self.known_head();
            let head = match cached.clone() {
                Some(head) => head,
                None => self.chain_head().await?,
            };
            let mut sealed = Vec::with_capacity(records.len());
            let mut next = head.clone();
            for record in records {
                let (record, moved) = chain::seal(record.clone(), &next);
                sealed.push(record);
                next = moved;
            }
            let mut staged = state(&sealed)?;
            for record in &sealed {
                staged.push((
                    Part::Chain,
                    self.put(chain_item(record), "attribute_not_exists(pk)", None)?,
                ));
            }
            staged.push((Part::Chain, self.head_put(&head, &next)?));
            let (parts, items): (Vec<Part>, Vec<TransactWriteItem>) = staged.into_iter().unzip();

            let err = match self.transact(items).await {
                Ok(()) => {
                    self.learn_head(next);
                    return Ok(());
                }
                Err(err) => err,
            };
            let Some(reasons) = cancellation_reasons(&err) else {
                self.forget_head();
                return Err(aws_error("dynamodb:TransactWriteItems", err));
            };
            let codes: Vec<String> =
                reasons.iter().map(|reason| reason.code().unwrap_or("None").to_string()).collect();
            // The head put is the last item; when its condition failed, its reason carries
            // the stored head. Without one the next attempt reads the head.
            let head_reason = reasons.last();
            if head_reason.and_then(|reason| reason.code()) == Some("ConditionalCheckFailed") {
                match head_reason.and_then(|reason| reason.item()).map(head_of) {
                    Some(Ok(found)) => self.learn_head(found),
                    _ => self.forget_head(),
                }
            }
            if let Some(conflict) = conflict_of(&parts, &codes) {
                return Err(conflict);
            }
            tracing::debug!(
                attempt,
                sequence = next.sequence,
                "audit chain head moved; sealing again"
            );
            // A cached head that turned out stale is no sign of contention: seal again at once.
            if cached.is_some() && attempt == 0 {
                continue;
            }
            let ceiling_ms = 4u64 << attempt.min(5);
            tokio::time::sleep(std::time::Duration::from_millis(rand::random_range(
                1..=ceiling_ms,
            )))
            .await;
        }
        Err(PimError::conflict(
            "audit_chain_busy",
            "too many audit records were being written at once; nothing was written, retry",
        ))
    }

    /// The put that moves the head from `head` to `next`, only if it is still at `head`;
    /// when it is not, the cancelled transaction's reason carries the head stored.
    fn head_put(&self, head: &ChainHead, next: &ChainHead) -> Result<TransactWriteItem> {
        let item = HashMap::from([
            ("pk".into(), s(HEAD_PK)),
            ("sk".into(), s("HEAD")),
            ("chain_sequence".into(), n(next.sequence)),
            ("hash".into(), s(&next.hash)),
        ]);
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let put = if head.sequence == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("chain_sequence = :seq")
                .expression_attribute_values(":seq", n(head.sequence))
        };
        let put =
            put.build().map_err(|err| PimError::aws("dynamodb:TransactWriteItems", false, err))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The newest chain head this store has seen committed, if any.
    fn known_head(&self) -> Option<ChainHead> {
        self.known_head.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Keeps `head` as the one to seal on next, unless a newer one is known already (another
    /// task of the process may have moved the head further meanwhile).
    fn learn_head(&self, head: ChainHead) {
        let mut known = self.known_head.lock().unwrap_or_else(PoisonError::into_inner);
        if known.as_ref().is_none_or(|old| old.sequence < head.sequence) {
            *known = Some(head);
        }
    }

    /// Drops the cached head: the next record is sealed on a head read from the table.
    fn forget_head(&self) {
        *self.known_head.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| aws_error("dynamodb:GetItem", err))?;
        Ok(output.item)
    }
}

fn number_of(item: &Item, name: &str) -> Result<u64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| PimError::Corrupt { key: name.into(), reason: "not a number".into() })
}

#[async_trait]
impl RequestStore for DynamoRequestStore {
    async fn create_request(
        &self,
        request: &AccessRequest,
        record: &AuditRecord,
        per_hour: u32,
    ) -> Result<()> {
        let hour = request.created_at.timestamp().div_euclid(3600);
        let outcome = self
            .append(record, |sealed| {
                let history = history_item(sealed, &request.id, request.version);
                Ok(vec![
                    (
                        Part::Request,
                        self.put(request_item(request), "attribute_not_exists(pk)", None)?,
                    ),
                    (Part::History, self.put(history, "attribute_not_exists(pk)", None)?),
                    (Part::Rate, self.count_request(&request.requester, hour, per_hour)?),
                ])
            })
            .await;
        match outcome {
            Err(PimError::TooMany { code, message, .. }) => {
                let next_hour = (hour + 1) * 3600;
                let retry_after_secs = (next_hour - request.created_at.timestamp()).max(1) as u64;
                Err(PimError::TooMany { code, message, retry_after_secs })
            }
            other => other,
        }
    }

    async fn load_request(&self, id: &str) -> Result<Option<AccessRequest>> {
        // The chain head comes with the request in the same call: whatever the caller does
        // next with the request is usually sealed as a record, and a new process (every
        // function on Lambda, at each invocation that changes something) would otherwise
        // read the head by itself. A head that moves meanwhile costs what a stale cached
        // head costs: one cancelled transaction, never a broken chain.
        let get = |pk: String, sk: &str| {
            let get = aws_sdk_dynamodb::types::Get::builder()
                .table_name(&self.table)
                .key("pk", s(pk))
                .key("sk", s(sk))
                .build()
                .map_err(|err| PimError::aws("dynamodb:TransactGetItems", false, err))?;
            Ok::<_, PimError>(aws_sdk_dynamodb::types::TransactGetItem::builder().get(get).build())
        };
        let output = self
            .client
            .transact_get_items()
            .transact_items(get(request_key(id), "REQUEST")?)
            .transact_items(get(HEAD_PK.to_string(), "HEAD")?)
            .send()
            .await
            .map_err(|err| aws_error("dynamodb:TransactGetItems", err))?;
        let responses = output.responses();
        let item_at = |at: usize| responses.get(at).and_then(|response| response.item());
        match item_at(1) {
            Some(head) => self.learn_head(head_of(head)?),
            None => self.learn_head(ChainHead::genesis()),
        }
        item_at(0).map(decode).transpose()
    }

    async fn requests_of(&self, person_id: &str) -> Result<Vec<AccessRequest>> {
        let items: Vec<Item> = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(REQUESTER_INDEX)
            .key_condition_expression("gsi1pk = :who")
            .expression_attribute_values(":who", s(format!("PERSON#{person_id}")))
            .scan_index_forward(false)
            .into_paginator()
            .items()
            .send()
            .collect::<std::result::Result<_, _>>()
            .await
            .map_err(|err| aws_error("dynamodb:Query", err))?;
        items.iter().map(decode).collect()
    }

    async fn history(&self, request_id: &str) -> Result<Vec<AuditRecord>> {
        let items: Vec<Item> = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :audit)")
            .expression_attribute_values(":pk", s(request_key(request_id)))
            .expression_attribute_values(":audit", s("AUDIT#"))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .collect::<std::result::Result<_, _>>()
            .await
            .map_err(|err| aws_error("dynamodb:Query", err))?;
        items.iter().map(decode).collect()
    }

    async fn commit_transition(
        &self,
        next: &AccessRequest,
        record: &AuditRecord,
        consume_link: Option<&str>,
    ) -> Result<()> {
        self.commit_transitions(&[(next, record)], consume_link).await
    }

    async fn commit_transitions(
        &self,
        changes: &[(&AccessRequest, &AuditRecord)],
        consume_link: Option<&str>,
    ) -> Result<()> {
        let records: Vec<AuditRecord> =
            changes.iter().map(|(_, record)| (*record).clone()).collect();
        self.append_all(&records, |sealed| {
            let mut items = Vec::with_capacity(changes.len() * 2 + 1);
            for ((next, _), sealed) in changes.iter().zip(sealed) {
                let expected = HashMap::from([(":expected".to_string(), n(next.version - 1))]);
                let history = history_item(sealed, &next.id, next.version);
                items.push((
                    Part::Request,
                    self.put(request_item(next), "version = :expected", Some(expected))?,
                ));
                items.push((Part::History, self.put(history, "attribute_not_exists(pk)", None)?));
            }
            if let Some(link_id) = consume_link {
                let first = changes.first().map(|(next, _)| next.id.as_str()).unwrap_or_default();
                let consumed_at = sealed.first().map(|r| r.time.to_rfc3339()).unwrap_or_default();
                let link = link_item(link_id, first, &consumed_at);
                items.push((Part::Link, self.put(link, "attribute_not_exists(pk)", None)?));
            }
            Ok(items)
        })
        .await
    }

    async fn live_grants(&self) -> Result<Vec<AccessRequest>> {
        // `state` is a reserved word of DynamoDB's expressions: it is named `#state`.
        let values = HashMap::from([
            (":request".into(), s("REQUEST")),
            (":active".into(), s(RequestState::Active.as_str())),
            (":approved".into(), s(RequestState::Approved.as_str())),
        ]);
        let filter = "sk = :request AND (#state = :active OR #state = :approved)";
        let items = self.scan_where(filter, values, &[("#state", "state")]).await?;
        items.iter().map(decode).collect()
    }

    async fn record_finding(&self, key: &str, record: &AuditRecord) -> Result<bool> {
        // The finding joins the chain with a marker keyed by what was found, in one
        // transaction: a finding that persists is recorded once however often it is seen.
        let outcome = self
            .append(record, |sealed| {
                let mut marker = chain_item(sealed);
                marker.insert("pk".into(), s(format!("FINDING#{key}")));
                marker.insert("sk".into(), s("FINDING"));
                Ok(vec![(Part::Finding, self.put(marker, "attribute_not_exists(pk)", None)?)])
            })
            .await;
        match outcome {
            Ok(()) => Ok(true),
            Err(PimError::Conflict { code: "finding_recorded", .. }) => Ok(false),
            Err(err) => Err(err),
        }
    }

    async fn record_refusal(&self, record: &AuditRecord) -> Result<()> {
        self.append(record, |_| Ok(vec![])).await
    }

    async fn create_campaign(&self, campaign: &Campaign, record: &AuditRecord) -> Result<()> {
        let outcome = self
            .append(record, |_| {
                let put = self.put(campaign_item(campaign), "attribute_not_exists(pk)", None)?;
                Ok(vec![(Part::Campaign, put)])
            })
            .await;
        match outcome {
            Err(PimError::Conflict { code: "stale_campaign", .. }) => Err(PimError::conflict(
                "campaign_exists",
                format!("campaign {} exists already", campaign.id),
            )),
            other => other,
        }
    }

    async fn load_campaign(&self, id: &str) -> Result<Option<Campaign>> {
        self.get(&format!("CAMPAIGN#{id}"), "CAMPAIGN").await?.as_ref().map(decode).transpose()
    }

    async fn commit_campaign(
        &self,
        next: &Campaign,
        record: &AuditRecord,
        consume_link: Option<&str>,
    ) -> Result<()> {
        self.append(record, |sealed| {
            let expected = HashMap::from([(":expected".to_string(), n(next.version - 1))]);
            let put = self.put(campaign_item(next), "version = :expected", Some(expected))?;
            let mut items = vec![(Part::Campaign, put)];
            if let Some(link_id) = consume_link {
                let link = link_item(link_id, &next.id, &sealed.time.to_rfc3339());
                items.push((Part::Link, self.put(link, "attribute_not_exists(pk)", None)?));
            }
            Ok(items)
        })
        .await
    }

    async fn campaigns(&self) -> Result<Vec<Campaign>> {
        let values =
            HashMap::from([(":campaign".into(), s("CAMPAIGN#")), (":sk".into(), s("CAMPAIGN"))]);
        let items = self.scan_where("begins_with(pk, :campaign) AND sk = :sk", values, &[]).await?;
        items.iter().map(decode).collect()
    }

    async fn all_requests(&self) -> Result<Vec<AccessRequest>> {
        let items = self
            .scan_where("sk = :request", HashMap::from([(":request".into(), s("REQUEST"))]), &[])
            .await?;
        items.iter().map(decode).collect()
    }

    async fn records_between(
        &self,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<AuditRecord>> {
        // Chain items carry their time as RFC 3339 text, which does not compare as text
        // across fractional seconds: the scan takes every chain record and the range is
        // applied to the decoded times.
        let values = HashMap::from([(":chain".into(), s("AUDIT#CHAIN#"))]);
        let items = self.scan_where("begins_with(pk, :chain)", values, &[]).await?;
        let mut records: Vec<AuditRecord> = items
            .iter()
            .map(decode::<AuditRecord>)
            .filter(|record| record.as_ref().map_or(true, |r| from <= r.time && r.time < to))
            .collect::<Result<_>>()?;
        records.sort_by_key(|record| record.sequence);
        Ok(records)
    }
}

fn campaign_item(campaign: &Campaign) -> Item {
    HashMap::from([
        ("pk".into(), s(format!("CAMPAIGN#{}", campaign.id))),
        ("sk".into(), s("CAMPAIGN")),
        ("doc".into(), s(serde_json::to_string(campaign).expect("campaign serializes"))),
        ("version".into(), n(campaign.version)),
    ])
}

fn link_item(link_id: &str, subject: &str, at: &str) -> Item {
    HashMap::from([
        ("pk".into(), s(format!("LINK#{link_id}"))),
        ("sk".into(), s("LINK")),
        ("request_id".into(), s(subject)),
        ("consumed_at".into(), s(at)),
    ])
}

impl DynamoRequestStore {
    /// Every item matching `filter`, from a paginated, strongly consistent `Scan`; `names`
    /// are the expression's attribute name placeholders.
    async fn scan_where(
        &self,
        filter: &str,
        values: Item,
        names: &[(&str, &str)],
    ) -> Result<Vec<Item>> {
        let names: HashMap<String, String> = names
            .iter()
            .map(|(placeholder, name)| (placeholder.to_string(), name.to_string()))
            .collect();
        self.client
            .scan()
            .table_name(&self.table)
            .filter_expression(filter)
            .set_expression_attribute_values(Some(values))
            .set_expression_attribute_names((!names.is_empty()).then_some(names))
            .consistent_read(true)
            .set_limit(self.scan_page)
            .into_paginator()
            .items()
            .send()
            .collect::<std::result::Result<_, _>>()
            .await
            .map_err(|err| aws_error("dynamodb:Scan", err))
    }
}

#[async_trait]
impl AuditChain for DynamoRequestStore {
    async fn chain_head(&self) -> Result<ChainHead> {
        let Some(item) = self.get(HEAD_PK, "HEAD").await? else {
            return Ok(ChainHead::genesis());
        };
        head_of(&item)
    }

    async fn chain_records(&self, after: u64, limit: usize) -> Result<Vec<String>> {
        let head = self.chain_head().await?;
        let mut found = Vec::new();
        let mut bucket = (after + 1) / CHAIN_BUCKET_SIZE;
        while found.len() < limit && bucket <= head.sequence / CHAIN_BUCKET_SIZE {
            let items: Vec<Item> = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk > :after")
                .expression_attribute_values(":pk", s(chain_bucket(bucket * CHAIN_BUCKET_SIZE)))
                .expression_attribute_values(":after", s(chain_sort_key(after)))
                .consistent_read(true)
                .into_paginator()
                .items()
                .send()
                .collect::<std::result::Result<_, _>>()
                .await
                .map_err(|err| aws_error("dynamodb:Query", err))?;
            for item in items.iter().take(limit - found.len()) {
                let doc = item.get("doc").and_then(|v| v.as_s().ok()).ok_or_else(|| {
                    PimError::Corrupt {
                        key: chain_bucket(bucket * CHAIN_BUCKET_SIZE),
                        reason: "no doc".into(),
                    }
                })?;
                found.push(doc.clone());
            }
            bucket += 1;
        }
        Ok(found)
    }

    async fn shipped_through(&self) -> Result<u64> {
        match self.get(CURSOR_PK, "CURSOR").await? {
            Some(item) => number_of(&item, "chain_sequence"),
            None => Ok(0),
        }
    }

    async fn mark_shipped(&self, from: u64, to: u64) -> Result<()> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(CURSOR_PK))
            .item("sk", s("CURSOR"))
            .item("chain_sequence", n(to));
        put = if from == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("chain_sequence = :from")
                .expression_attribute_values(":from", n(from))
        };
        match put.send().await {
            Ok(_) => Ok(()),
            Err(err) if super::error_code(&err) == Some("ConditionalCheckFailedException") => {
                Err(PimError::conflict("shipping_cursor_moved", "another shipper moved the cursor"))
            }
            Err(err) => Err(aws_error("dynamodb:PutItem", err)),
        }
    }
}

fn enrollment_key(person: &str) -> String {
    format!("MFA#{person}")
}

fn enrollment_item(enrollment: &Enrollment) -> Item {
    let state = match enrollment.state {
        EnrollmentState::Pending => "pending",
        EnrollmentState::Active => "active",
    };
    let mut item: Item = HashMap::from([
        ("pk".into(), s(enrollment_key(&enrollment.person))),
        ("sk".into(), s("MFA")),
        ("person".into(), s(&enrollment.person)),
        ("secret".into(), AttributeValue::B(enrollment.sealed_secret.clone().into())),
        ("mfa_state".into(), s(state)),
        ("created_at".into(), s(enrollment.created_at.to_rfc3339())),
    ]);
    if let Some(step) = enrollment.last_step {
        item.insert("last_step".into(), n(step));
    }
    item
}

fn enrollment_of(item: &Item) -> Result<Enrollment> {
    let corrupt = |reason: &str| PimError::Corrupt { key: "MFA".into(), reason: reason.into() };
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let state = match text("mfa_state").as_deref() {
        Some("pending") => EnrollmentState::Pending,
        Some("active") => EnrollmentState::Active,
        _ => return Err(corrupt("unknown mfa_state")),
    };
    Ok(Enrollment {
        person: text("person").ok_or_else(|| corrupt("no person"))?,
        sealed_secret: item
            .get("secret")
            .and_then(|v| v.as_b().ok())
            .map(|blob| blob.as_ref().to_vec())
            .ok_or_else(|| corrupt("no secret"))?,
        state,
        last_step: item
            .contains_key("last_step")
            .then(|| number_of(item, "last_step"))
            .transpose()?,
        created_at: text("created_at")
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
            .ok_or_else(|| corrupt("no created_at"))?,
    })
}

#[async_trait]
impl MfaStore for DynamoRequestStore {
    async fn enrollment(&self, person: &str) -> Result<Option<Enrollment>> {
        self.get(&enrollment_key(person), "MFA").await?.as_ref().map(enrollment_of).transpose()
    }

    async fn begin_enrollment(&self, enrollment: &Enrollment, record: &AuditRecord) -> Result<()> {
        let pending = HashMap::from([(":pending".to_string(), s("pending"))]);
        self.append(record, |_| {
            let condition = "attribute_not_exists(pk) OR mfa_state = :pending";
            let put = self.put(enrollment_item(enrollment), condition, Some(pending.clone()))?;
            Ok(vec![(Part::Enrollment, put)])
        })
        .await
    }

    async fn confirm_enrollment(&self, confirmed: &Enrollment, record: &AuditRecord) -> Result<()> {
        let expected = HashMap::from([
            (":pending".to_string(), s("pending")),
            (":issued".to_string(), s(confirmed.created_at.to_rfc3339())),
        ]);
        let outcome = self
            .append(record, |_| {
                let condition = "mfa_state = :pending AND created_at = :issued";
                let put =
                    self.put(enrollment_item(confirmed), condition, Some(expected.clone()))?;
                Ok(vec![(Part::Enrollment, put)])
            })
            .await;
        match outcome {
            Err(PimError::Conflict { code: "mfa_already_enrolled", .. }) => {
                Err(PimError::conflict(
                    "stale_enrollment",
                    "this enrolment was confirmed or replaced meanwhile; enrol again if needed",
                ))
            }
            other => other,
        }
    }

    async fn consume_step(&self, person: &str, step: u64) -> Result<bool> {
        let outcome = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(enrollment_key(person)))
            .key("sk", s("MFA"))
            .update_expression("SET last_step = :step")
            .condition_expression(
                "mfa_state = :active AND (attribute_not_exists(last_step) OR last_step < :step)",
            )
            .expression_attribute_values(":step", n(step))
            .expression_attribute_values(":active", s("active"))
            .send()
            .await;
        match outcome {
            Ok(_) => Ok(true),
            Err(err) if super::error_code(&err) == Some("ConditionalCheckFailedException") => {
                Ok(false)
            }
            Err(err) => Err(aws_error("dynamodb:UpdateItem", err)),
        }
    }
}

#[async_trait]
impl AttachmentLedger for DynamoRequestStore {
    async fn load_attachment(
        &self,
        role_name: &str,
        policy_arn: &str,
    ) -> Result<Option<Attachment>> {
        let item = self.get(&format!("ATTACH#{role_name}"), policy_arn).await?;
        item.as_ref().map(decode).transpose()
    }

    async fn save_attachment(&self, next: &Attachment) -> Result<()> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("ATTACH#{}", next.role_name)))
            .item("sk", s(&next.policy_arn))
            .item("doc", s(serde_json::to_string(next).expect("attachment serializes")))
            .item("version", n(next.version));
        put = if next.version <= 1 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("version = :expected")
                .expression_attribute_values(":expected", n(next.version - 1))
        };
        match put.send().await {
            Ok(_) => Ok(()),
            Err(err) if super::error_code(&err) == Some("ConditionalCheckFailedException") => {
                Err(PimError::conflict(
                    "attachment_changed",
                    "the attachment changed while this action was in progress",
                ))
            }
            Err(err) => Err(aws_error("dynamodb:PutItem", err)),
        }
    }
}
