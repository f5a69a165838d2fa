//! [`RequestStore`] on one DynamoDB table.
//!
//! Items (partition key `pk`, sort key `sk`, both strings):
//!
//! | item | pk | sk | notes |
//! |---|---|---|---|
//! | request | `REQ#<id>` | `REQUEST` | `doc` JSON, `version`, `state`; `gsi1pk`/`gsi1sk` index it by requester; `ttl` once closed |
//! | audit record | `REQ#<id>` | `AUDIT#<version>` | one per transition, written in the same transaction |
//! | refusal record | `REFUSAL#<date>` | `<time>#<record id>` | refusals that changed nothing else |
//! | consumed link | `LINK#<link id>` | `LINK` | exists once the link decided something |
//! | finding | `FINDING#<key>` | `FINDING` | a sweep finding outside any request, once per key |
//!
//! [`RequestStore::live_grants`] is a paginated, strongly consistent `Scan` filtered on
//! `state`: it reads (and is billed for) every item of the table, audit records included,
//! once per sweep. That is cheap for thousands of requests a day; a table much larger
//! than that wants a sparse index on live grants instead.
//!
//! Every transition is one `TransactWriteItems`: the request put conditioned on the version
//! it was read at, the audit record put conditioned on not existing, and the link item put
//! conditioned on not existing. Two racing writers cannot both commit.

use super::aws_error;
use crate::audit::AuditRecord;
use crate::error::{PimError, Result};
use crate::model::{AccessRequest, RequestState};
use crate::ports::RequestStore;
use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use std::collections::HashMap;

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
}

impl DynamoRequestStore {
    /// A store on `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into(), scan_page: None }
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

fn audit_item(record: &AuditRecord) -> Item {
    let (pk, sk) = match (&record.request_id, record.request_version) {
        (Some(request_id), Some(version)) => {
            (request_key(request_id), format!("AUDIT#{version:010}"))
        }
        _ => (
            format!("REFUSAL#{}", record.time.format("%Y-%m-%d")),
            format!("{}#{}", record.time.to_rfc3339(), record.id),
        ),
    };
    HashMap::from([
        ("pk".into(), s(pk)),
        ("sk".into(), s(sk)),
        ("doc".into(), s(serde_json::to_string(record).expect("record serializes"))),
        ("action".into(), s(serde_json::to_value(record.action).unwrap().as_str().unwrap_or(""))),
        ("time".into(), s(record.time.to_rfc3339())),
    ])
}

fn decode<T: serde::de::DeserializeOwned>(item: &Item) -> Result<T> {
    let key = item.get("pk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
    let doc = item
        .get("doc")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| PimError::Corrupt { key: key.clone(), reason: "no doc attribute".into() })?;
    serde_json::from_str(doc).map_err(|err| PimError::Corrupt { key, reason: err.to_string() })
}

/// Maps a cancelled transaction to the conflict it stands for.
fn conflict_of(err: SdkError<TransactWriteItemsError>, link_index: Option<usize>) -> PimError {
    let cancelled = match &err {
        SdkError::ServiceError(service) => match service.err() {
            TransactWriteItemsError::TransactionCanceledException(cancelled) => Some(cancelled),
            _ => None,
        },
        _ => None,
    };
    if let Some(cancelled) = cancelled {
        let failed = |index: usize| {
            cancelled
                .cancellation_reasons()
                .get(index)
                .and_then(|reason| reason.code())
                .is_some_and(|code| code == "ConditionalCheckFailed")
        };
        if link_index.is_some_and(failed) {
            return PimError::conflict("link_already_used", "this approval link was already used");
        }
        return PimError::conflict(
            "stale_request",
            "the request changed while this action was in progress; nothing was written",
        );
    }
    aws_error("dynamodb:TransactWriteItems", err)
}

#[async_trait]
impl RequestStore for DynamoRequestStore {
    async fn create_request(&self, request: &AccessRequest, record: &AuditRecord) -> Result<()> {
        let items = vec![
            self.put(request_item(request), "attribute_not_exists(pk)", None)?,
            self.put(audit_item(record), "attribute_not_exists(pk)", None)?,
        ];
        self.transact(items).await.map_err(|err| conflict_of(err, None))
    }

    async fn load_request(&self, id: &str) -> Result<Option<AccessRequest>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(request_key(id)))
            .key("sk", s("REQUEST"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| aws_error("dynamodb:GetItem", err))?;
        output.item.as_ref().map(decode).transpose()
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
        let expected = HashMap::from([(":expected".to_string(), n(next.version - 1))]);
        let mut items = vec![
            self.put(request_item(next), "version = :expected", Some(expected))?,
            self.put(audit_item(record), "attribute_not_exists(pk)", None)?,
        ];
        if let Some(link_id) = consume_link {
            let link = HashMap::from([
                ("pk".into(), s(format!("LINK#{link_id}"))),
                ("sk".into(), s("LINK")),
                ("request_id".into(), s(&next.id)),
                ("consumed_at".into(), s(record.time.to_rfc3339())),
            ]);
            items.push(self.put(link, "attribute_not_exists(pk)", None)?);
        }
        let link_index = consume_link.map(|_| 2);
        self.transact(items).await.map_err(|err| conflict_of(err, link_index))
    }

    async fn live_grants(&self) -> Result<Vec<AccessRequest>> {
        let items: Vec<Item> = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("sk = :request AND (#state = :active OR #state = :approved)")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":request", s("REQUEST"))
            .expression_attribute_values(":active", s(RequestState::Active.as_str()))
            .expression_attribute_values(":approved", s(RequestState::Approved.as_str()))
            .consistent_read(true)
            .set_limit(self.scan_page)
            .into_paginator()
            .items()
            .send()
            .collect::<std::result::Result<_, _>>()
            .await
            .map_err(|err| aws_error("dynamodb:Scan", err))?;
        items.iter().map(decode).collect()
    }

    async fn record_finding(&self, key: &str, record: &AuditRecord) -> Result<bool> {
        let mut item = audit_item(record);
        item.insert("pk".into(), s(format!("FINDING#{key}")));
        item.insert("sk".into(), s("FINDING"));
        let outcome = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match outcome {
            Ok(_) => Ok(true),
            Err(err) if super::error_code(&err) == Some("ConditionalCheckFailedException") => {
                Ok(false)
            }
            Err(err) => Err(aws_error("dynamodb:PutItem", err)),
        }
    }

    async fn record_refusal(&self, record: &AuditRecord) -> Result<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(audit_item(record)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|err| aws_error("dynamodb:PutItem", err))?;
        Ok(())
    }
}
