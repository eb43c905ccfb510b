//! sweeper Lambda: on its schedule, one message per open order into the push
//! queue (`kode::sweep`). Wiring only: logs, settings, ledger, queue, loop.
//! Any event payload starts a sweep.

use std::process::ExitCode;

use anyhow::Context as _;
use kode::config::env_required;
use kode::metrics::{Metrics, STACK_NAME_ENV};
use kode::store::aws::{DynamoLedger, SqsQueue};
use kode::sweep::Sweep;
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> ExitCode {
    kode::telemetry::init_json_logs();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(action = "startup_failed", error = %format!("{error:#}"), "sweeper cannot start");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let queue_url = env_required("QUEUE_URL")?;
    let table = env_required("LEDGER_TABLE")?;
    let interval = kode::config::sweep_interval_from_env("SWEEP_INTERVAL")?;
    let aws = kode::aws::sdk_config().await;
    let ledger = DynamoLedger::new(aws_sdk_dynamodb::Client::new(&aws), table);
    let queue = SqsQueue::new(&aws, queue_url);
    let sweep = Sweep {
        ledger: &ledger,
        queue: &queue,
        interval,
        metrics: Metrics::for_lambda(std::env::var(STACK_NAME_ENV).ok()),
    };
    lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| async {
        // A failed sweep is an invocation error, so the schedule's retry
        // and the function's error metric see it.
        let summary = sweep
            .run(jiff::Timestamp::now())
            .await
            .map_err(|e| Diagnostic {
                error_type: "SweepError".into(),
                error_message: e.to_string(),
            })?;
        serde_json::to_value(summary).map_err(|e| Diagnostic {
            error_type: "SweepError".into(),
            error_message: e.to_string(),
        })
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
    .context("Lambda runtime")
}
