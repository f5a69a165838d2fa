//! [`EventPublisher`] on one EventBridge bus, with `PutEvents`.
//!
//! `PutEvents` takes at most ten entries a call and answers per entry: a call can succeed
//! while some of its entries failed. Every entry's result is checked, and one failed entry
//! fails the whole publication, so the audit shipper does not move its cursor and the next
//! run puts the batch again. Entries go out in chain order, call after call; EventBridge
//! does not promise to deliver them to targets in that order, which is why each event
//! carries its chain `sequence`.

use super::aws_error;
use crate::error::{PimError, Result};
use crate::events::{EVENT_SOURCE, LifecycleEvent};
use crate::ports::EventPublisher;
use async_trait::async_trait;
use aws_sdk_eventbridge::primitives::DateTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

/// Entries per `PutEvents` call: the API's limit.
pub const ENTRIES_PER_CALL: usize = 10;

/// Puts lifecycle events on one bus.
#[derive(Debug, Clone)]
pub struct EventBridgePublisher {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridgePublisher {
    /// A publisher to the bus named `bus` (a name or an ARN).
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> Self {
        Self { client, bus: bus.into() }
    }

    fn entry(&self, event: &LifecycleEvent) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(EVENT_SOURCE)
            .detail_type(event.detail_type)
            .detail(event.detail.to_string())
            .time(DateTime::from_secs(event.time.timestamp()))
            .build()
    }

    async fn put(&self, events: &[LifecycleEvent]) -> Result<()> {
        let entries = events.iter().map(|event| self.entry(event)).collect();
        let output = self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|err| aws_error("events:PutEvents", err))?;
        if output.failed_entry_count() == 0 {
            return Ok(());
        }
        // The records, not the events' text: a failed entry's detail stays out of the logs.
        let failed: Vec<String> = output
            .entries()
            .iter()
            .zip(events)
            .filter_map(|(result, event)| {
                result.error_code().map(|code| format!("{} ({code})", event.record_id))
            })
            .collect();
        tracing::warn!(failed = output.failed_entry_count(), records = ?failed,
            "the bus refused lifecycle events");
        Err(PimError::aws(
            "events:PutEvents",
            true,
            format!(
                "the bus refused {} of {} events: {}",
                output.failed_entry_count(),
                events.len(),
                failed.join(", ")
            ),
        ))
    }
}

#[async_trait]
impl EventPublisher for EventBridgePublisher {
    async fn publish(&self, events: &[LifecycleEvent]) -> Result<()> {
        for chunk in events.chunks(ENTRIES_PER_CALL) {
            self.put(chunk).await?;
        }
        Ok(())
    }
}
