//! `kode sync ORDER_ID`: what the processor does for a push, run by hand
//! for one order (after an outage, a lost push, or to purge an order).

use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use kode::model::{AssetId, OrderId, OrderPush, PushStatus};
use kode::process::{Processor, SyncReport};
use kode::sync::FailedPolicy;
use serde_json::json;

use super::order_view::{failed_place, Places};
use crate::error::CliError;
use crate::output::{self, Table};
use crate::settings::{GlobalArgs, Settings};
use crate::store::{Missing, Store, StoreArgs};

/// Same as one push may take in `kode serve`: an order's downloads included.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

const AFTER_HELP: &str = "\
The order is fetched from KODE and the store brought in line with it, exactly
as the processor does for a push of the given status: new OK files are
downloaded, files KODE marks DELETED are removed, files already stored are
not downloaded again. CANCELLED and REFUNDED delete every file of the order.
A file that failed FAILED_MAX_ATTEMPTS times for good (default 10) is parked:
no longer tried by itself; --retry-failed tries it again.

Examples:
  kode sync 2345678 --data-dir ./kode-data
  kode sync 2345678 --bucket kode-push-assets --table kode-push-ledger
  ASSET_BUCKET=kode-push-assets LEDGER_TABLE=kode-push-ledger kode sync 2345678 --json
  kode sync 2345678 --status CANCELLED --data-dir ./kode-data
  kode sync 2345678 --retry-failed --data-dir ./kode-data";

#[derive(Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct SyncArgs {
    /// The order (collection) id, as sent in pushes
    #[arg(value_name = "ORDER_ID")]
    order: OrderId,
    /// Act as for a push with this status (CANCELLED and REFUNDED delete the order's files)
    #[arg(long, value_enum, ignore_case = true, default_value = "UPDATED")]
    status: Status,
    /// Downloads running at the same time
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..))]
    download_concurrency: u16,
    /// Try parked files again (those that failed FAILED_MAX_ATTEMPTS times)
    #[arg(long)]
    retry_failed: bool,
    /// Print the sync report as JSON
    #[arg(long)]
    json: bool,
    // Last: its help heading applies to what follows.
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
enum Status {
    New,
    Updated,
    Finished,
    Cancelled,
    Refunded,
}

impl Status {
    fn push_status(self) -> PushStatus {
        match self {
            Status::New => PushStatus::New,
            Status::Updated => PushStatus::Updated,
            Status::Finished => PushStatus::Finished,
            Status::Cancelled => PushStatus::Cancelled,
            Status::Refunded => PushStatus::Refunded,
        }
    }
}

pub async fn run(args: SyncArgs, global: &GlobalArgs) -> Result<(), CliError> {
    let settings = Settings::load(global)?;
    let failed = FailedPolicy {
        max_attempts: settings.failed_max_attempts()?,
        retry_parked: args.retry_failed,
    };
    // Neither contacts KODE yet; the client first, so that a configuration
    // error leaves no new data directory behind.
    let kode = settings.client().await?;
    let store = Store::open(&args.store, &settings, Missing::Create)
        .await?
        .ok_or_else(|| {
            CliError::Usage(
                "no store: give --data-dir DIR, or --bucket BUCKET --table TABLE \
                 (or set ASSET_BUCKET and LEDGER_TABLE)"
                    .into(),
            )
        })?;
    let processor = Processor::new(
        Arc::new(kode),
        Arc::clone(&store.blobs),
        Arc::clone(&store.ledger),
        usize::from(args.download_concurrency),
    )
    .with_failed_policy(failed);
    let push = OrderPush {
        order_id: args.order,
        status: args.status.push_status(),
        reference: None,
        technical_reference: None,
    };
    let report = processor
        .sync_order(&push, settings.deadline_or(DEFAULT_TIMEOUT))
        .await?;
    if args.json {
        output::print_json(&report_json(&report))?;
    } else {
        let places = store.asset_places(report.order_id, &failed).await?;
        output::print(&render(&report, &store, &places))?;
    }
    if let Some(missing) = report.missing.as_ref().filter(|m| !m.is_empty()) {
        eprintln!(
            "warning: order {} is FINISHED but {} OK file(s) are not stored: {}",
            report.order_id,
            missing.len(),
            ids(missing)
        );
    }
    let parked = report.failed.iter().filter(|f| f.parked).count();
    if parked > 0 && !args.retry_failed {
        eprintln!(
            "note: {parked} parked file(s) were not tried; `kode sync {} --retry-failed` tries them",
            report.order_id
        );
    }
    Ok(())
}

/// A summary line, then one row per asset touched or skipped; stored files
/// with where they are now.
fn render(report: &SyncReport, store: &Store, places: &Places) -> String {
    let mut out = format!(
        "Order {} synced as {} against {}: {} stored ({} bytes), {} skipped, {} deleted.\n",
        report.order_id,
        report.status,
        store.describe(),
        report.stored.len(),
        report.bytes_stored,
        report.skipped.len(),
        report.deleted.len(),
    );
    if report.purged {
        out.push_str("All files of the order are deleted (purged).\n");
    }
    let groups: [(&str, &[AssetId]); 5] = [
        ("stored", &report.stored),
        ("skipped", &report.skipped),
        ("deleted", &report.deleted),
        ("tombstoned", &report.tombstoned),
        ("refused", &report.refused),
    ];
    if groups.iter().all(|(_, assets)| assets.is_empty()) && report.failed.is_empty() {
        return out;
    }
    let mut table = Table::new(&["ACTION", "ASSET", "STORED"]);
    for (action, assets) in groups {
        for asset in assets {
            let place = match action {
                "stored" => places.get(asset).map_or("-", String::as_str),
                _ => "",
            };
            table.row(vec![action.into(), asset.to_string(), place.into()]);
        }
    }
    for f in &report.failed {
        let action = if f.parked { "parked" } else { "failed" };
        table.row(vec![
            action.into(),
            f.asset_id.to_string(),
            failed_place(f.parked, f.attempts, &f.reason),
        ]);
    }
    out.push('\n');
    out.push_str(&table.render("  "));
    out
}

fn ids(assets: &[AssetId]) -> String {
    assets
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The report, field names in camelCase like the rest of the JSON output.
fn report_json(report: &SyncReport) -> serde_json::Value {
    json!({
        "orderId": report.order_id,
        "status": report.status,
        "purged": report.purged,
        "stored": report.stored,
        "bytesStored": report.bytes_stored,
        "skipped": report.skipped,
        "deleted": report.deleted,
        "tombstoned": report.tombstoned,
        "refused": report.refused,
        "failed": report.failed.iter().map(|f| json!({
            "assetId": f.asset_id,
            "reason": f.reason,
            "attempts": f.attempts,
            "transient": f.transient,
            "parked": f.parked,
        })).collect::<Vec<_>>(),
        "missing": report.missing,
    })
}
