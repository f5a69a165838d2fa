//! Shipping the audit chain to the audit stream (CloudWatch Logs), in order, at least once.
//!
//! The shipper runs on a schedule (every minute) with a reserved concurrency of one. Each
//! run reads the records after its cursor from the table in chain order, appends them with
//! a signed checkpoint of the newest one in one `PutLogEvents` call, then moves the cursor
//! with a conditional write. A run that dies after the append and before the cursor moves
//! ships the same records again next time: the stream may hold a record twice, never lose
//! one, and the verifier treats an identical repeat as a redelivery.
//!
//! Why a cursor over the chain rather than the table's DynamoDB stream: a stream orders
//! changes per item only, while the chain's order spans every item; the cursor reads by
//! sequence, so the order is the chain's by construction, catches up after an outage of any
//! length (a stream keeps 24 hours), and needs no trigger the emulator cannot run, so the
//! whole path is tested end to end. The cost is latency: a record reaches the log group
//! within about a minute of its change.
//!
//! Lifecycle events ride on the same cursor. After a batch is in the log group, the shipper
//! puts one event per transition record of the batch on the event bus ([`crate::events`]),
//! and only then moves the cursor. A bus that refuses any event fails the run: the next run
//! ships the batch again, to the log group and to the bus, so every committed transition
//! reaches the bus at least once, in chain order, and only committed ones ever do.

#[cfg(feature = "events")]
use crate::adapters::{
    AwsClients, CloudWatchAuditSink, DynamoRequestStore, EventBridgePublisher, KmsCheckpointSigner,
};
use crate::audit::AuditRecord;
use crate::audit::chain::{ChainHead, Checkpoint};
use crate::clock::Clock;
#[cfg(feature = "events")]
use crate::config::AuditSettings;
use crate::error::{PimError, Result};
use crate::events::{LifecycleEvent, event_of};
use crate::ports::{AuditChain, AuditSink, CheckpointSigner, EventPublisher};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::sync::Arc;

/// Records per `PutLogEvents` call: well under its 10,000 events and 1 MiB.
const BATCH_RECORDS: usize = 200;

/// Batches per run, so one run stays well inside a Lambda timeout; the next run goes on.
const BATCHES_PER_RUN: usize = 50;

/// Ships the audit chain to the audit stream.
#[derive(Clone)]
pub struct AuditShipper {
    /// The chain as stored.
    pub chain: Arc<dyn AuditChain>,
    /// The audit stream.
    pub sink: Arc<dyn AuditSink>,
    /// The checkpoint key.
    pub signer: Arc<dyn CheckpointSigner>,
    /// The bus of lifecycle events.
    pub events: Arc<dyn EventPublisher>,
    /// The time, for checkpoints.
    pub clock: Arc<dyn Clock>,
}

/// What one run shipped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Shipped {
    /// Records appended to the stream.
    pub records: usize,
    /// Lifecycle events put on the bus.
    pub events: usize,
    /// The sequence the stream now reaches (0 when the chain is empty).
    pub through: u64,
}

#[cfg(feature = "events")]
impl AuditShipper {
    /// Wires the shipper to AWS as `settings` describe; `events` is the EventBridge client,
    /// kept apart from `clients` so that only the shipper builds one.
    pub fn with_aws(
        settings: &AuditSettings,
        clients: &AwsClients,
        events: &aws_sdk_eventbridge::Client,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            chain: Arc::new(DynamoRequestStore::new(clients.dynamodb.clone(), &settings.table)),
            sink: Arc::new(CloudWatchAuditSink::new(clients.logs.clone(), &settings.log_group)),
            signer: Arc::new(KmsCheckpointSigner::new(
                clients.kms.clone(),
                &settings.checkpoint_key_id,
            )),
            events: Arc::new(EventBridgePublisher::new(events.clone(), &settings.event_bus)),
            clock,
        }
    }

    /// Reads the settings and builds the clients: the cold start of the shipper function.
    pub async fn from_env() -> Result<Self> {
        let settings = AuditSettings::from_env()?;
        let config = crate::adapters::lambda_sdk_config()?;
        let clients = AwsClients::new(&config);
        let events = aws_sdk_eventbridge::Client::new(&config);
        Ok(Self::with_aws(&settings, &clients, &events, Arc::new(crate::clock::SystemClock)))
    }
}

impl AuditShipper {
    /// Ships every record not yet shipped, in batches, each followed by its checkpoint, and
    /// puts each batch's lifecycle events on the bus before the cursor moves past it.
    pub async fn ship(&self) -> Result<Shipped> {
        let mut cursor = self.chain.shipped_through().await?;
        let mut shipped = Shipped { records: 0, events: 0, through: cursor };
        for _ in 0..BATCHES_PER_RUN {
            let lines = self.chain.chain_records(cursor, BATCH_RECORDS).await?;
            let Some(last) = lines.last() else { break };
            let head = head_of(last)?;
            // Read before anything is shipped: a record that cannot be read stops the batch.
            let events = events_of(&lines)?;
            let checkpoint = self.checkpoint(&head).await?;
            let mut batch = lines.clone();
            batch.push(serde_json::to_string(&checkpoint).expect("checkpoints serialize"));
            self.sink.append(&batch).await?;
            self.events.publish(&events).await?;
            self.chain.mark_shipped(cursor, head.sequence).await?;
            tracing::info!(
                from = cursor + 1,
                through = head.sequence,
                events = events.len(),
                "audit records shipped"
            );
            shipped.records += lines.len();
            shipped.events += events.len();
            cursor = head.sequence;
            shipped.through = cursor;
        }
        Ok(shipped)
    }

    /// A checkpoint of `head`, signed.
    pub async fn checkpoint(&self, head: &ChainHead) -> Result<Checkpoint> {
        let mut checkpoint = Checkpoint::of(head, self.signer.key_id(), self.clock.now());
        let signature = self.signer.sign(&checkpoint.signed_message()).await?;
        checkpoint.signature = STANDARD.encode(signature);
        Ok(checkpoint)
    }
}

/// The lifecycle events of a batch of stored records, in chain order.
fn events_of(lines: &[String]) -> Result<Vec<LifecycleEvent>> {
    let mut events = Vec::new();
    for line in lines {
        let record: AuditRecord = serde_json::from_str(line).map_err(|err| PimError::Corrupt {
            key: "audit chain".into(),
            reason: format!("a record cannot be read for its event: {err}"),
        })?;
        events.extend(event_of(&record));
    }
    Ok(events)
}

/// The sequence and hash of a stored record's JSON.
fn head_of(line: &str) -> Result<ChainHead> {
    let corrupt = |reason: String| PimError::Corrupt { key: "audit chain".into(), reason };
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|err| corrupt(err.to_string()))?;
    let sequence = value["sequence"].as_u64().ok_or_else(|| corrupt("no sequence".into()))?;
    let hash = value["hash"].as_str().ok_or_else(|| corrupt("no hash".into()))?;
    Ok(ChainHead { sequence, hash: hash.to_string() })
}
