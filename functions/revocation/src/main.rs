//! Lambda entry point of revocation: grant expiries, request timers, the sweep, and
//! `POST /grants/{id}/revoke`; the only function that removes grant policies.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use pim::service::Pim;

#[tokio::main]
async fn main() -> Result<(), Error> {
    pim::telemetry::init_tracing();
    let pim = Pim::from_env().await?;
    let pim = &pim;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        let payload = event.payload;
        if pim_revocation::is_http_event(&payload) {
            let request = lambda_http::request::from_str(&payload.to_string())?;
            let response = pim_revocation::handle_http(pim, request).await;
            return Ok(pim_revocation::http_answer(response));
        }
        pim_revocation::handle_event(pim, payload).await.map_err(Error::from)
    }))
    .await
}
