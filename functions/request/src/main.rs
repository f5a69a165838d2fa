//! Lambda entry point of the requester API.

use lambda_http::{Error, service_fn};
use pim::service::Pim;

#[tokio::main]
async fn main() -> Result<(), Error> {
    pim::telemetry::init_tracing();
    let pim = Pim::from_env().await?;
    let pim = &pim;
    lambda_http::run(service_fn(move |request| async move {
        Ok::<_, std::convert::Infallible>(pim_request::handle(pim, request).await)
    }))
    .await
}
