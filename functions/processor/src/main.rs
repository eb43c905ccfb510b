//! processor Lambda entry point: wiring only; the logic is in `lib.rs` and
//! `kode::process`.
//!
//! Not wired yet on this branch, because the pieces land from other
//! branches. Once they are merged, `main` becomes:
//!   1. `let aws = kode::aws::sdk_config().await;` (clients built once)
//!   2. `KodeClient::new(kode::config::kode_api_config_from_env(Some(&aws)).await?)`,
//!      given a `kode::process::KodeSource` impl;
//!   3. the S3 `Blobs` adapter on `ASSET_BUCKET`, the DynamoDB `Ledger`
//!      adapter on `LEDGER_TABLE` (`kode::store::aws`);
//!   4. `Processor::new(kode, blobs, ledger, env_usize("DOWNLOAD_CONCURRENCY", 4)?)
//!      .with_metrics(Metrics::Emf)`;
//!   5. margin = `env_u64("PROCESSOR_DEADLINE_MARGIN_SECS", 5)` seconds;
//!   6. `processor::run(Arc::new(processor), margin).await`.
//!
//! A missing setting must stop start-up with one line naming it.

use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    // Fails loudly rather than pretending to process: see the module docs.
    Err("processor is not wired yet: KODE client and AWS adapters pending".into())
}
