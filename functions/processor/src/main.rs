//! processor Lambda entry point: wiring only; the logic is in `lib.rs` and
//! `kode::process`. Everything is built once per cold start and shared by
//! every invocation.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kode::announce::EventBridgeAnnouncer;
use kode::api::KodeClient;
use kode::config::{
    env_failed_max_attempts, env_required, env_u64, env_usize, kode_api_config_from_env,
    ConfigError,
};
use kode::metrics::{Metrics, STACK_NAME_ENV};
use kode::process::{Announcing, Processor};
use kode::store::aws::{DynamoLedger, S3Blobs, UploadBudget};
use kode::sync::FailedPolicy;
use processor::{Backoff, Redelivery, SqsVisibility, DEFAULT_DEADLINE_MARGIN};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    kode::telemetry::init_json_logs();
    let (processor, redelivery, margin) = match build().await {
        Ok(built) => built,
        Err(e) => {
            // One line naming the setting; the Lambda init then fails visibly
            // instead of taking messages it cannot process.
            tracing::error!(
                action = "startup_failed",
                error = format!("{e:#}"),
                "processor cannot start"
            );
            std::process::exit(1);
        }
    };
    processor::run(Arc::new(processor), redelivery, margin).await
}

async fn build() -> anyhow::Result<(Processor, Redelivery, Duration)> {
    // Plain settings first: a typo is reported without touching AWS.
    let bucket = env_required("ASSET_BUCKET")?;
    let table = env_required("LEDGER_TABLE")?;
    let queue_url = env_required("QUEUE_URL")?;
    let concurrency = env_usize("DOWNLOAD_CONCURRENCY", 4)?;
    if concurrency == 0 {
        return Err(ConfigError::Invalid {
            name: "DOWNLOAD_CONCURRENCY".into(),
            reason: "must be at least 1".into(),
        }
        .into());
    }
    let failed = FailedPolicy {
        max_attempts: env_failed_max_attempts()?,
        retry_parked: false,
    };
    let sweep = kode::config::sweep_policy_from_env()?;
    let margin = Duration::from_secs(env_u64(
        "PROCESSOR_DEADLINE_MARGIN_SECS",
        DEFAULT_DEADLINE_MARGIN.as_secs(),
    )?);
    // One budget for every upload of the process (all groups of a batch).
    let budget_mib = env_u64("UPLOAD_MEMORY_MIB", S3Blobs::DEFAULT_BUDGET_BYTES >> 20)?;
    let budget = UploadBudget::new(budget_mib.saturating_mul(1 << 20));

    let aws = kode::aws::sdk_config().await;
    let blobs = S3Blobs::new(kode::aws::s3_client(&aws), bucket.clone())
        .with_budget(budget)
        .context("UPLOAD_MEMORY_MIB")?;
    let queue = SqsVisibility::new(aws_sdk_sqs::Client::new(&aws), queue_url);
    // The backoff never exceeds what Lambda would have let a record wait.
    let cap = queue
        .queue_timeout()
        .await
        .context("reading the visibility timeout of QUEUE_URL")?;
    let redelivery = Redelivery::new(Backoff::new(cap), Arc::new(queue));
    let kode =
        KodeClient::new(kode_api_config_from_env(Some(&aws)).await?).context("KODE client")?;
    let ledger = DynamoLedger::new(aws_sdk_dynamodb::Client::new(&aws), table);
    let processor = Processor::new(
        Arc::new(kode),
        Arc::new(blobs),
        Arc::new(ledger),
        concurrency,
    )
    .with_metrics(Metrics::for_lambda(std::env::var(STACK_NAME_ENV).ok()))
    .with_failed_policy(failed)
    .with_sweep_policy(sweep);
    let processor = match std::env::var("EVENT_BUS_NAME") {
        Ok(bus) if !bus.trim().is_empty() => processor.with_announcing(Announcing {
            announcer: Arc::new(EventBridgeAnnouncer::from_config(&aws, bus.trim())),
            bucket: Some(bucket),
        }),
        _ => {
            tracing::info!(
                action = "events_off",
                "EVENT_BUS_NAME is not set: no downstream events are sent"
            );
            processor
        }
    };
    Ok((processor, redelivery, margin))
}
