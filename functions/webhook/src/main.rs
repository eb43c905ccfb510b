//! Wiring only: logs, AWS config, queue, secret, runtime loop.

use std::process::ExitCode;
use std::sync::Arc;

use kode::intake::{Intake, PushSecret};
use kode::metrics::{Metrics, STACK_NAME_ENV};
use kode::store::aws::SqsQueue;
use lambda_runtime::service_fn;

#[tokio::main]
async fn main() -> ExitCode {
    kode::telemetry::init_json_logs();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "webhook cannot start");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let queue_url = webhook::queue_url(std::env::var("QUEUE_URL").ok())?;
    let sdk = kode::aws::sdk_config().await;
    let secret = PushSecret::from_env(&sdk).await?;
    let queue = SqsQueue::new(&sdk, queue_url);
    let metrics = Metrics::for_lambda(std::env::var(STACK_NAME_ENV).ok());
    let intake = Intake::new(Arc::new(queue), secret).with_metrics(metrics);
    lambda_runtime::run(service_fn(|event| webhook::handle(&intake, event)))
        .await
        .map_err(|e| anyhow::anyhow!(e))
}
