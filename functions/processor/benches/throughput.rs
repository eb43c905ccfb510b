//! Processor throughput and peak memory, printed as figures (no assertions).
//!
//! The real `Processor` with the real `KodeClient` against the in-process
//! fake KODE server, storing through the local adapters (`DiskBlobs` +
//! `SqliteLedger` in a temp dir), so that an in-memory S3 emulator does not
//! dominate the measurement. Cases:
//!   (a) one push with many small assets (`BENCH_SMALL_COUNT` x
//!       `BENCH_SMALL_KIB`, default 500 x 16 KiB);
//!   (b) one push with one large generated asset, of `BENCH_LARGE_MIB`
//!       (default 1024) and of a quarter of that: peak RSS must not grow
//!       with size.
//!
//! Peak RSS is the kernel's high-water mark (`VmHWM`), reset before each case
//! through `/proc/self/clear_refs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_kode::{AssetContent, AssetSpec, FakeKode, OrderSpec};
use kode::api::{ApiConfig, Credentials, KodeClient};
use kode::model::{OrderId, PushKind};
use kode::process::{Envelope, Outcome, Processor};
use kode::store::local::{DiskBlobs, SqliteLedger};
use kode::store::Ledger;
use kode::{Deadline, Secret};
use serde_json::json;

const MIB: u64 = 1024 * 1024;
const CONCURRENCY: usize = 4;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run());
}

async fn run() {
    let small_count = env_number("BENCH_SMALL_COUNT", 500);
    let small_kib = env_number("BENCH_SMALL_KIB", 16);
    let large_mib = env_number("BENCH_LARGE_MIB", 1024);

    let fake = FakeKode::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let blobs = DiskBlobs::new(dir.path());
    let ledger = Arc::new(
        SqliteLedger::open(dir.path().join("ledger.sqlite3"))
            .await
            .expect("ledger"),
    );
    let kode = KodeClient::new(api_config(&fake)).expect("KODE client");
    let processor = Processor::new(
        Arc::new(kode),
        Arc::new(blobs.clone()),
        ledger.clone(),
        CONCURRENCY,
    );
    println!(
        "processor benchmark: KodeClient -> fake KODE (in process), DiskBlobs + SqliteLedger \
         in {}, DOWNLOAD_CONCURRENCY={CONCURRENCY}",
        dir.path().display()
    );
    println!("baseline: {}", Rss::read());

    // (a) many small assets in one push.
    let mut order = OrderSpec::new(1);
    order.sub_orders[0].assets = (0..small_count)
        .map(|i| AssetSpec {
            content: AssetContent::Generated {
                len: small_kib * 1024,
                seed: i,
            },
            ..AssetSpec::ok(&format!("small-{i}"), &format!("Kart {i}.pdf"), Vec::new())
        })
        .collect();
    fake.add_order(order);
    Rss::reset();
    let (elapsed, stored) = push(&processor, 1).await;
    let rss = Rss::read();
    let bytes = small_count * small_kib * 1024;
    println!(
        "(a) {small_count} x {small_kib} KiB: {stored} assets in {:.2} s = {:.0} assets/s, {:.1} MiB/s; {rss}",
        elapsed.as_secs_f64(),
        stored as f64 / elapsed.as_secs_f64(),
        bytes as f64 / MIB as f64 / elapsed.as_secs_f64(),
    );

    // (b) one large asset, at two sizes.
    for (order_id, mib) in [(10, large_mib / 4), (20, large_mib)] {
        let content = AssetContent::Generated {
            len: mib * MIB,
            seed: order_id,
        };
        let mut order = OrderSpec::new(order_id);
        order.sub_orders[0].assets = vec![AssetSpec {
            content: content.clone(),
            ..AssetSpec::ok(&format!("large-{order_id}"), "Stort.pdf", Vec::new())
        }];
        fake.add_order(order);
        Rss::reset();
        let (elapsed, stored) = push(&processor, order_id).await;
        let rss = Rss::read();
        let record = ledger
            .order_assets(OrderId(order_id))
            .await
            .expect("ledger")
            .pop()
            .expect("a ledger entry");
        let verified = record.sha256.as_deref() == Some(content.sha256_hex().as_str());
        println!(
            "(b) 1 x {mib} MiB: {stored} asset in {:.2} s = {:.1} MiB/s; {rss}; sha256 {}",
            elapsed.as_secs_f64(),
            mib as f64 / elapsed.as_secs_f64(),
            if verified { "verified" } else { "MISMATCH" },
        );
        // Keep the temp dir's disk use to one large file at a time.
        if let Some(key) = record.key {
            let _ = std::fs::remove_file(blobs.path_of(&key).expect("path"));
        }
    }
    fake.shutdown().await;
}

/// Runs one NEW push for `order` through the processor; returns the time
/// taken and the number of assets stored.
async fn push(processor: &Processor, order: u64) -> (Duration, usize) {
    let envelope = Envelope::new(
        PushKind::Order,
        jiff::Timestamp::now().to_string(),
        json!({"orderCollectionId": order, "status": "NEW"}),
    );
    let body = serde_json::to_string(&envelope).expect("envelope");
    let started = Instant::now();
    let outcome = processor
        .handle_envelope(&body, Deadline::after(Duration::from_secs(900)))
        .await
        .expect("push processed");
    let elapsed = started.elapsed();
    match outcome {
        Outcome::Order(report) => (elapsed, report.stored.len()),
        Outcome::Message(_) | Outcome::Sweep(_) => unreachable!("an order push"),
    }
}

/// Resident memory from `/proc/self/status`, in MiB.
struct Rss {
    current: f64,
    peak: f64,
}

impl Rss {
    fn read() -> Rss {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                .map_or(f64::NAN, |kib| kib / 1024.0)
        };
        Rss {
            current: field("VmRSS:"),
            peak: field("VmHWM:"),
        }
    }

    /// Resets the high-water mark to the current RSS (Linux 4.0+).
    fn reset() {
        if std::fs::write("/proc/self/clear_refs", "5").is_err() {
            println!("note: could not reset VmHWM; peaks are cumulative");
        }
    }
}

impl std::fmt::Display for Rss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "peak RSS {:.1} MiB (now {:.1} MiB)",
            self.peak, self.current
        )
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn api_config(fake: &FakeKode) -> ApiConfig {
    let c = fake.credentials();
    let credentials = Credentials {
        client_id: c.client_id,
        client_secret: Secret::new(c.client_secret),
        username: c.username,
        password: Secret::new(c.password),
    };
    let url = url::Url::parse(&fake.base_url()).expect("fake base URL");
    ApiConfig::new(url, credentials)
}
