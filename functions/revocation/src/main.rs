//! Lambda entry point of revocation; the only function that removes grant policies.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use pim::model::ExpiryEvent;
use pim::service::Pim;

#[tokio::main]
async fn main() -> Result<(), Error> {
    pim::telemetry::init_tracing();
    let pim = Pim::from_env().await?;
    let pim = &pim;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ExpiryEvent>| async move {
        pim_revocation::handle(pim, event.payload).await.map_err(Error::from)
    }))
    .await
}
