//! Ships the audit chain to the audit log group, and the lifecycle events of its records to
//! the event bus. A schedule (every minute) invokes it; the event's content does not
//! matter, each run ships whatever the cursor has not reached.
//!
//! An error makes the invocation fail and the next run start from the same cursor, so
//! nothing is lost; records already appended are appended again, which the verifier
//! counts as redeliveries, and events already put are put again, which consumers
//! deduplicate by record id.

use pim::service::AuditShipper;
use serde_json::{Value, json};

/// Handles one scheduled invocation.
pub async fn handle(shipper: &AuditShipper) -> Result<Value, pim::PimError> {
    let shipped = shipper.ship().await?;
    Ok(json!({ "records": shipped.records, "events": shipped.events, "through": shipped.through }))
}
