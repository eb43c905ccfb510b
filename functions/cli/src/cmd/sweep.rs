//! `kode sweep`: one sweep now, beside a running `kode serve` (local) or the
//! sweeper Lambda (AWS): a queue message per open order, which the
//! processor takes like a push of the order's last recorded status.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use kode::metrics::Metrics;
use kode::store::aws::{DynamoLedger, SqsQueue};
use kode::store::local::{QueueOptions, SqliteLedger, SqliteQueue};
use kode::store::{Ledger, Queue};
use kode::sweep::{Sweep, SweepError, SweepSummary};

use crate::error::CliError;
use crate::output;
use crate::pipeline::LocalStore;
use crate::settings::{GlobalArgs, Settings};

const AFTER_HELP: &str = "\
Open orders: not FINISHED, CANCELLED or REFUNDED; FINISHED for SWEEP_FINISHED_DAYS
(14) after; held open by other work; placed with `kode order create --data-dir`
or `--table`. Never a purged order, nor one KODE stopped knowing.

Local: the messages go into DIR/queue.sqlite; a running `kode serve` on DIR takes
them within a second. AWS: into the FIFO queue the processor reads.

Examples:
  kode sweep --data-dir ./kode-data --dry-run
  kode sweep --data-dir ./kode-data
  kode sweep --table kode-push-ledger --queue-url https://sqs.eu-north-1.amazonaws.com/123456789012/kode-push.fifo";

#[derive(Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct SweepArgs {
    /// Local: the data directory of `kode serve`
    #[arg(long, value_name = "DIR", conflicts_with_all = ["table", "queue_url"])]
    data_dir: Option<PathBuf>,
    /// AWS: the ledger table; needs --queue-url
    #[arg(long, value_name = "TABLE", requires = "queue_url")]
    table: Option<String>,
    /// AWS: the processor's FIFO queue; needs --table
    #[arg(long, value_name = "URL", requires = "table")]
    queue_url: Option<String>,
    /// List the orders a sweep would enqueue; send nothing
    #[arg(long)]
    dry_run: bool,
}

pub async fn run(args: SweepArgs, global: &GlobalArgs) -> Result<(), CliError> {
    if let Some(dir) = &args.data_dir {
        let (ledger, queue) = open_local(dir).await?;
        let place = format!("{}", dir.display());
        return sweep(&ledger, &queue, args.dry_run, &place).await;
    }
    let (Some(table), Some(queue_url)) = (&args.table, &args.queue_url) else {
        return Err(CliError::Usage(
            "no store: give --data-dir DIR, or --table TABLE --queue-url URL".into(),
        ));
    };
    let settings = Settings::load(global)?;
    let aws = settings.aws().await;
    let ledger = DynamoLedger::new(aws_sdk_dynamodb::Client::new(aws), table.clone());
    let queue = SqsQueue::new(aws, queue_url.clone());
    sweep(&ledger, &queue, args.dry_run, queue_url).await
}

/// Opens an existing data directory only: a typo must not create an empty
/// one and report "no open orders". Neither database is locked beyond one
/// write, so a running `kode serve` goes on undisturbed.
async fn open_local(dir: &Path) -> Result<(SqliteLedger, SqliteQueue), CliError> {
    let ledger_file = dir.join(LocalStore::LEDGER_FILE);
    let queue_file = dir.join("queue.sqlite");
    for file in [&ledger_file, &queue_file] {
        if !file.is_file() {
            return Err(CliError::invalid(
                "--data-dir",
                format!(
                    "{} does not exist (is {} the data directory of `kode serve`?)",
                    file.display(),
                    dir.display()
                ),
            ));
        }
    }
    let ledger = SqliteLedger::open(&ledger_file).await?;
    let queue = SqliteQueue::open(&queue_file, QueueOptions::default()).await?;
    Ok((ledger, queue))
}

async fn sweep(
    ledger: &dyn Ledger,
    queue: &dyn Queue,
    dry_run: bool,
    place: &str,
) -> Result<(), CliError> {
    let sweep = Sweep {
        ledger,
        queue,
        // Asked for now: every open order, however recently swept.
        interval: Duration::ZERO,
        metrics: Metrics::Off,
    };
    let now = jiff::Timestamp::now();
    if dry_run {
        let plan = sweep.plan(now).await.map_err(sweep_error)?;
        output::print(&describe(&plan, "would be swept"))?;
        return Ok(());
    }
    let summary = sweep.run(now).await.map_err(sweep_error)?;
    output::print(&format!(
        "{}A message for each is in {place}; the processor (or a running `kode serve`) syncs them.",
        describe(&summary, "enqueued for a sweep")
    ))?;
    Ok(())
}

fn describe(summary: &SweepSummary, what: &str) -> String {
    let mut out = format!("{} open order(s) {what}", summary.enqueued.len());
    if summary.enqueued.is_empty() {
        out.push_str(".\n");
        return out;
    }
    out.push_str(":\n");
    for order in &summary.enqueued {
        out.push_str(&format!("  {order}\n"));
    }
    out
}

fn sweep_error(e: SweepError) -> CliError {
    match e {
        SweepError::List(e) => CliError::Store(e),
        e => CliError::Other(e.into()),
    }
}
