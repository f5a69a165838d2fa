//! Lambda entry point of the approval pages; the function that grants access.

use lambda_http::{Error, service_fn};
use pim::service::Pim;

#[tokio::main]
async fn main() -> Result<(), Error> {
    pim::telemetry::init_tracing();
    let pim = Pim::from_env().await?;
    let pim = &pim;
    lambda_http::run(service_fn(move |request| async move {
        Ok::<_, std::convert::Infallible>(pim_approval::handle(pim, request).await)
    }))
    .await
}
