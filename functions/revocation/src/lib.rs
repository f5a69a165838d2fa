//! Time-driven work. Today: ending a grant when its one-time schedule fires. The payload is
//! the schedule's own input, an [`ExpiryEvent`]; delivering it twice changes nothing more.
//!
//! An error returned here makes the scheduler retry the delivery (its retry policy), so
//! only faults that a retry can fix are returned as errors; a payload for a grant that is
//! already over, or unknown, is answered as done.

use pim::model::ExpiryEvent;
use pim::service::{ExpiryOutcome, Pim};
use serde_json::{Value, json};

/// Handles one scheduler delivery.
pub async fn handle(pim: &Pim, event: ExpiryEvent) -> Result<Value, pim::PimError> {
    let outcome = pim.expire_grant(&event).await?;
    Ok(match outcome {
        ExpiryOutcome::Expired { removal } => {
            json!({ "grant_id": event.grant_id, "outcome": "expired", "policy": format!("{removal:?}") })
        }
        ExpiryOutcome::AlreadyEnded(state) => {
            json!({ "grant_id": event.grant_id, "outcome": "already_ended", "state": state.as_str() })
        }
        ExpiryOutcome::UnknownGrant => {
            json!({ "grant_id": event.grant_id, "outcome": "unknown_grant" })
        }
    })
}
