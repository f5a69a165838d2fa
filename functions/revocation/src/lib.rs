//! Time-driven work, the only function that removes grant policies. Two kinds of event:
//!
//! - a grant's expiry, delivered by its one-time schedule with the schedule's own input, an
//!   [`ExpiryEvent`] (`"kind": "grant_expiry"`); delivering it twice changes nothing more;
//! - the reconciliation sweep, delivered every few minutes by an EventBridge rule whose
//!   input is `{"kind": "sweep"}` (a bare scheduled event is taken as a sweep too).
//!
//! An error returned here makes the platform retry the delivery (the schedule's retry
//! policy and dead-letter queue; the rule's asynchronous invocation retries), so only
//! faults that a retry can fix are returned as errors; a payload for a grant that is
//! already over, or unknown, is answered as done.

use pim::PimError;
use pim::model::ExpiryEvent;
use pim::service::{ExpiryOutcome, Pim};
use serde_json::{Value, json};

/// Handles one delivery of either kind.
pub async fn handle_event(pim: &Pim, event: Value) -> Result<Value, PimError> {
    let is_sweep = event["kind"] == "sweep" || event["detail-type"] == "Scheduled Event";
    if is_sweep {
        return sweep(pim).await;
    }
    let expiry: ExpiryEvent = serde_json::from_value(event).map_err(|err| {
        PimError::invalid("unknown_event", format!("not an expiry or sweep event: {err}"))
    })?;
    handle(pim, expiry).await
}

/// Runs one sweep; any item it could not repair is an error, so the platform retries and
/// the failure is visible, after everything else was done.
pub async fn sweep(pim: &Pim) -> Result<Value, PimError> {
    let report = pim.sweep().await?;
    if !report.failures.is_empty() {
        return Err(PimError::aws(
            "sweep",
            true,
            format!("the sweep could not repair everything: {}", report.failures.join("; ")),
        ));
    }
    Ok(serde_json::to_value(&report).expect("report serializes"))
}

/// Handles one scheduler delivery.
pub async fn handle(pim: &Pim, event: ExpiryEvent) -> Result<Value, PimError> {
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
