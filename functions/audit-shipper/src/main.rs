//! Lambda entry point of the audit shipper; the only function that writes the audit log
//! group, signs checkpoints and puts lifecycle events on the event bus.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use pim::service::AuditShipper;

#[tokio::main]
async fn main() -> Result<(), Error> {
    pim::telemetry::init_tracing();
    let shipper = AuditShipper::from_env().await?;
    let shipper = &shipper;
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<serde_json::Value>| async move {
        pim_audit_shipper::handle(shipper).await.map_err(Error::from)
    }))
    .await
}
