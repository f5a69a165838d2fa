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

use crate::adapters::{AwsClients, CloudWatchAuditSink, DynamoRequestStore, KmsCheckpointSigner};
use crate::audit::chain::{ChainHead, Checkpoint};
use crate::clock::Clock;
use crate::config::AuditSettings;
use crate::error::{PimError, Result};
use crate::ports::{AuditChain, AuditSink, CheckpointSigner};
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
    /// The time, for checkpoints.
    pub clock: Arc<dyn Clock>,
}

/// What one run shipped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Shipped {
    /// Records appended to the stream.
    pub records: usize,
    /// The sequence the stream now reaches (0 when the chain is empty).
    pub through: u64,
}

impl AuditShipper {
    /// Wires the shipper to AWS as `settings` describe.
    pub fn with_aws(settings: &AuditSettings, clients: &AwsClients, clock: Arc<dyn Clock>) -> Self {
        Self {
            chain: Arc::new(DynamoRequestStore::new(clients.dynamodb.clone(), &settings.table)),
            sink: Arc::new(CloudWatchAuditSink::new(clients.logs.clone(), &settings.log_group)),
            signer: Arc::new(KmsCheckpointSigner::new(
                clients.kms.clone(),
                &settings.checkpoint_key_id,
            )),
            clock,
        }
    }

    /// Reads the settings and builds the clients: the cold start of the shipper function.
    pub async fn from_env() -> Result<Self> {
        let settings = AuditSettings::from_env()?;
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let clients = AwsClients::new(&config);
        Ok(Self::with_aws(&settings, &clients, Arc::new(crate::clock::SystemClock)))
    }

    /// Ships every record not yet shipped, in batches, each followed by its checkpoint.
    pub async fn ship(&self) -> Result<Shipped> {
        let mut cursor = self.chain.shipped_through().await?;
        let mut shipped = 0;
        for _ in 0..BATCHES_PER_RUN {
            let lines = self.chain.chain_records(cursor, BATCH_RECORDS).await?;
            let Some(last) = lines.last() else { break };
            let head = head_of(last)?;
            let checkpoint = self.checkpoint(&head).await?;
            let mut batch = lines.clone();
            batch.push(serde_json::to_string(&checkpoint).expect("checkpoints serialize"));
            self.sink.append(&batch).await?;
            self.chain.mark_shipped(cursor, head.sequence).await?;
            tracing::info!(from = cursor + 1, through = head.sequence, "audit records shipped");
            shipped += lines.len();
            cursor = head.sequence;
        }
        Ok(Shipped { records: shipped, through: cursor })
    }

    /// A checkpoint of `head`, signed.
    pub async fn checkpoint(&self, head: &ChainHead) -> Result<Checkpoint> {
        let mut checkpoint = Checkpoint::of(head, self.signer.key_id(), self.clock.now());
        let signature = self.signer.sign(&checkpoint.signed_message()).await?;
        checkpoint.signature = STANDARD.encode(signature);
        Ok(checkpoint)
    }
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
