//! Lambda entry point of revocation: grant expiries and the sweep; the only function that
//! removes grant policies.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use pim::service::Pim;

#[tokio::main]
async fn main() -> Result<(), Error> {
    pim::telemetry::init_tracing();
    let pim = Pim::from_env().await?;
    let pim = &pim;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        pim_revocation::handle_event(pim, event.payload).await.map_err(Error::from)
    }))
    .await
}
