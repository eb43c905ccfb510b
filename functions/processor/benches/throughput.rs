//! Processor throughput, CPU and peak memory, printed as figures (no
//! assertions).
//!
//! The real `Processor` with the real `KodeClient` against the in-process
//! fake KODE server (on its own runtime, so that its CPU can be told apart),
//! storing through the local adapters (`DiskBlobs` + `SqliteLedger` in a
//! temp dir). Cases:
//!   (a) one push with many small assets (`BENCH_SMALL_COUNT` x
//!       `BENCH_SMALL_KIB`, default 500 x 16 KiB);
//!   (b) one push with one large generated asset, of `BENCH_LARGE_MIB`
//!       (default 1024) and of a quarter of that: peak RSS must not grow
//!       with size.
//! With `AWS_ENDPOINT_URL` set (an S3 emulator such as moto), the same
//! processor storing with `S3Blobs` (ledger still SQLite):
//!   (c) the reference: a plain multipart upload of the same size from
//!       memory to the same endpoint (8 MiB parts, 4 in flight, no
//!       checksums), then (d) the large asset through the processor, side by
//!       side for `BENCH_ROUNDS` rounds (default 2), with their ratio;
//!   (e) a full SQS batch: 10 order pushes at once, 4 x 32 MiB files each;
//!   (f) 20 order pushes at once of 10 x 64 KiB files each: CPU per file.
//!
//! `BENCH_CASES` picks cases by letter (default `abcdef`), e.g. `f` alone to
//! compare small-file CPU against another build, or `d` alone to profile.
//!
//! Peak RSS is the kernel's high-water mark (`VmHWM`), reset before each case
//! through `/proc/self/clear_refs`; it includes the fake's buffers. "Function
//! CPU" is the process's CPU clock minus the fake's threads' time on CPU,
//! both to the nanosecond.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_kode::{AssetContent, AssetSpec, FakeKode, OrderSpec};
use kode::api::{ApiConfig, Credentials, KodeClient};
use kode::envelope::Envelope;
use kode::model::{OrderId, PushKind};
use kode::process::{Outcome, Processor};
use kode::store::aws::{S3Blobs, UploadBudget};
use kode::store::local::{DiskBlobs, SqliteLedger};
use kode::store::Ledger;
use kode::{Deadline, Secret};
use serde_json::json;

const MIB: u64 = 1024 * 1024;
const CONCURRENCY: usize = 4;

/// Thread name of the fake's runtime (at most 15 bytes: the kernel's `comm`).
const FAKE_THREADS: &str = "fake-kode";

fn main() {
    let fake_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(FAKE_THREADS)
        .enable_all()
        .build()
        .expect("fake's tokio runtime");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let fake = fake_runtime.block_on(FakeKode::start());
    runtime.block_on(run(&fake));
    fake_runtime.block_on(fake.shutdown());
}

async fn run(fake: &FakeKode) {
    let small_count = env_number("BENCH_SMALL_COUNT", 500);
    let small_kib = env_number("BENCH_SMALL_KIB", 16);
    let large_mib = env_number("BENCH_LARGE_MIB", 1024);

    let dir = tempfile::tempdir().expect("temp dir");
    let blobs = DiskBlobs::new(dir.path());
    let ledger = Arc::new(
        SqliteLedger::open(dir.path().join("ledger.sqlite3"))
            .await
            .expect("ledger"),
    );
    let kode = Arc::new(KodeClient::new(api_config(fake)).expect("KODE client"));
    let processor = Processor::new(
        kode.clone(),
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
    if wants('a') {
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
    }

    // (b) one large asset, at two sizes.
    let sizes = if wants('b') {
        vec![(10, large_mib / 4), (20, large_mib)]
    } else {
        Vec::new()
    };
    for (order_id, mib) in sizes {
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

    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(endpoint) => s3_cases(fake, kode, ledger, &endpoint, large_mib).await,
        Err(_) => println!(
            "S3 cases skipped: set AWS_ENDPOINT_URL to an S3 emulator (e.g. moto) to run them"
        ),
    }
}

async fn s3_cases(
    fake: &FakeKode,
    kode: Arc<KodeClient>,
    ledger: Arc<SqliteLedger>,
    endpoint: &str,
    large_mib: u64,
) {
    let rounds = env_number("BENCH_ROUNDS", 2);
    let aws = kode::aws::sdk_config().await;
    let s3 = kode::aws::s3_client(&aws);
    let bucket = format!("bench-{}", std::process::id());
    s3.create_bucket()
        .bucket(&bucket)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuNorth1)
                .build(),
        )
        .send()
        .await
        .expect("create bucket");
    let budget = UploadBudget::new(S3Blobs::DEFAULT_BUDGET_BYTES);
    let blobs = S3Blobs::new(s3.clone(), &bucket)
        .with_budget(budget.clone())
        .expect("default budget");
    let processor = Processor::new(kode, Arc::new(blobs), ledger.clone(), CONCURRENCY);
    println!(
        "S3 cases: S3Blobs -> {endpoint} bucket {bucket}, {} MiB parts, upload budget {} MiB; \
         the machine is shared, so compare figures of one run side by side",
        S3Blobs::DEFAULT_PART_SIZE >> 20,
        budget.total() >> 20,
    );

    // (c) and (d), alternating so that both see the same machine load.
    let rounds = if wants('c') || wants('d') { rounds } else { 0 };
    for round in 0..rounds {
        let order_id = 100 + round;
        let mut reference_rate = f64::NAN;
        if wants('c') {
            Rss::reset();
            let cpu = Cpu::now();
            let started = Instant::now();
            plain_multipart(&s3, &bucket, large_mib * MIB).await;
            let reference = started.elapsed();
            let (reference_cpu, rss) = (cpu.elapsed(), Rss::read());
            empty(&s3, &bucket).await;
            reference_rate = large_mib as f64 / reference.as_secs_f64();
            println!(
            "(c) plain multipart upload of {large_mib} MiB from memory: {:.2} s = {reference_rate:.1} MiB/s; \
             CPU {:.2} s; {rss}",
            reference.as_secs_f64(),
            reference_cpu.function.as_secs_f64(),
        );
        }
        if !wants('d') {
            continue;
        }

        let content = AssetContent::Generated {
            len: large_mib * MIB,
            seed: order_id,
        };
        let mut order = OrderSpec::new(order_id);
        order.sub_orders[0].assets = vec![AssetSpec {
            content: content.clone(),
            ..AssetSpec::ok(&format!("s3-large-{order_id}"), "Stort.pdf", Vec::new())
        }];
        fake.add_order(order);
        budget.reset_peak();
        Rss::reset();
        let cpu = Cpu::now();
        let (elapsed, stored) = push(&processor, order_id).await;
        let (used, rss) = (cpu.elapsed(), Rss::read());
        let verified = ledger_sha256(&ledger, order_id).await == Some(content.sha256_hex());
        empty(&s3, &bucket).await;
        let rate = large_mib as f64 / elapsed.as_secs_f64();
        println!(
            "(d) 1 x {large_mib} MiB through the processor to S3: {stored} asset in {:.2} s = {rate:.1} MiB/s \
             = {:.2} x (c); function CPU {:.2} s ({:.2} s/GiB; fake KODE {:.2} s); {rss}; \
             budget peak {:.0} MiB, part buffers allocated {:.0} MiB in all; sha256 {}",
            elapsed.as_secs_f64(),
            rate / reference_rate,
            used.function.as_secs_f64(),
            used.function.as_secs_f64() * 1024.0 / large_mib as f64,
            used.fake.as_secs_f64(),
            budget.peak() as f64 / MIB as f64,
            budget.part_bytes_allocated() as f64 / MIB as f64,
            if verified { "verified" } else { "MISMATCH" },
        );
    }

    // (e) a full batch: its groups run at once, as in the Lambda.
    if wants('e') {
        budget.reset_peak();
        let run = run_batch(fake, &processor, &s3, &bucket, Batch::FULL_SQS_BATCH).await;
        println!(
            "(e) full batch, 10 pushes x 4 x 32 MiB at once: {} assets in {:.2} s = {:.1} MiB/s; \
             function CPU {:.2} s; {}; budget peak {:.0} of {} MiB",
            run.stored,
            run.elapsed.as_secs_f64(),
            (run.stored as u64 * 32) as f64 / run.elapsed.as_secs_f64(),
            run.cpu.function.as_secs_f64(),
            run.rss,
            budget.peak() as f64 / MIB as f64,
            budget.total() >> 20,
        );
    }

    // (f) many small files.
    if wants('f') {
        let run = run_batch(fake, &processor, &s3, &bucket, Batch::SMALL_FILES).await;
        println!(
            "(f) 20 pushes x 10 x 64 KiB at once: {} assets in {:.2} s; function CPU {:.2} s = \
             {:.2} ms per file (fake KODE {:.2} s); {}",
            run.stored,
            run.elapsed.as_secs_f64(),
            run.cpu.function.as_secs_f64(),
            run.cpu.function.as_secs_f64() * 1000.0 / run.stored.max(1) as f64,
            run.cpu.fake.as_secs_f64(),
            run.rss,
        );
    }
}

/// Orders `orders`, each with `files` generated assets of `len` bytes (ids
/// `<prefix>-<order>-<n>`), pushed at once as the groups of one batch.
struct Batch {
    orders: std::ops::Range<u64>,
    files: u64,
    len: u64,
    prefix: &'static str,
}

impl Batch {
    /// (e): 10 orders (an SQS batch) with 4 x 32 MiB files each.
    const FULL_SQS_BATCH: Batch = Batch {
        orders: 200..210,
        files: 4,
        len: 32 * MIB,
        prefix: "batch",
    };
    /// (f): 20 orders with 10 x 64 KiB files each.
    const SMALL_FILES: Batch = Batch {
        orders: 300..320,
        files: 10,
        len: 64 * 1024,
        prefix: "small",
    };
}

/// What one batch case measured.
struct BatchRun {
    elapsed: Duration,
    stored: usize,
    cpu: CpuUsed,
    rss: Rss,
}

/// Adds the batch's orders to the fake, pushes them all at once, then
/// empties the bucket.
async fn run_batch(
    fake: &FakeKode,
    processor: &Processor,
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    batch: Batch,
) -> BatchRun {
    let orders: Vec<u64> = batch.orders.collect();
    for &order_id in &orders {
        let mut order = OrderSpec::new(order_id);
        order.sub_orders[0].assets = (0..batch.files)
            .map(|i| AssetSpec {
                content: AssetContent::Generated {
                    len: batch.len,
                    seed: order_id * 10 + i,
                },
                ..AssetSpec::ok(
                    &format!("{}-{order_id}-{i}", batch.prefix),
                    "Kart.pdf",
                    Vec::new(),
                )
            })
            .collect();
        fake.add_order(order);
    }
    Rss::reset();
    let cpu = Cpu::now();
    let (elapsed, stored) = push_all(processor, &orders).await;
    let (cpu, rss) = (cpu.elapsed(), Rss::read());
    empty(s3, bucket).await;
    BatchRun {
        elapsed,
        stored,
        cpu,
        rss,
    }
}

/// The reference: what the emulator ingests from a plain client that has
/// the bytes in memory already (one 8 MiB buffer, sent as every part).
async fn plain_multipart(s3: &aws_sdk_s3::Client, bucket: &str, len: u64) {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    use futures_util::StreamExt as _;
    let part_size = 8 * MIB;
    let part = bytes::Bytes::from(vec![0x5a_u8; part_size as usize]);
    let key = "reference/plain-multipart";
    let upload_id = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("create multipart upload")
        .upload_id
        .expect("upload id");
    let numbers = 1..=len.div_ceil(part_size) as i32;
    let parts = futures_util::stream::iter(numbers.map(|number| {
        let request = s3
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .part_number(number)
            .body(part.clone().into());
        async move {
            let output = request
                .customize()
                .config_override(
                    aws_sdk_s3::config::Builder::default().request_checksum_calculation(
                        aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
                    ),
                )
                .disable_payload_signing()
                .send()
                .await
                .expect("upload part");
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(output.e_tag)
                .build()
        }
    }))
    .buffered(4)
    .collect::<Vec<_>>()
    .await;
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .expect("complete multipart upload");
}

/// Deletes every object, so that the emulator's memory holds one case only.
async fn empty(s3: &aws_sdk_s3::Client, bucket: &str) {
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .expect("list objects");
    for object in listed.contents() {
        if let Some(key) = object.key() {
            s3.delete_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .expect("delete object");
        }
    }
}

async fn ledger_sha256(ledger: &SqliteLedger, order: u64) -> Option<String> {
    ledger
        .order_assets(OrderId(order))
        .await
        .expect("ledger")
        .pop()
        .and_then(|record| record.sha256)
}

/// Runs the pushes of `orders` at once, as the groups of one batch; returns
/// the time taken and the number of assets stored.
async fn push_all(processor: &Processor, orders: &[u64]) -> (Duration, usize) {
    let started = Instant::now();
    let stored = futures_util::future::join_all(orders.iter().map(|&o| push(processor, o))).await;
    (started.elapsed(), stored.iter().map(|(_, n)| n).sum())
}

/// CPU time used since `now`: by the whole process but the fake's threads,
/// and by those.
struct Cpu {
    process: Duration,
    fake: Duration,
}

struct CpuUsed {
    function: Duration,
    fake: Duration,
}

impl Cpu {
    fn now() -> Cpu {
        let fake = std::fs::read_dir("/proc/self/task")
            .into_iter()
            .flatten()
            .flatten()
            .filter(|task| {
                std::fs::read_to_string(task.path().join("comm"))
                    .is_ok_and(|comm| comm.trim_end() == FAKE_THREADS)
            })
            .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
            .map(|schedstat| thread_cpu(&schedstat))
            .sum();
        Cpu {
            process: process_cpu(),
            fake,
        }
    }

    fn elapsed(&self) -> CpuUsed {
        let now = Cpu::now();
        let fake = now.fake.saturating_sub(self.fake);
        CpuUsed {
            function: now
                .process
                .saturating_sub(self.process)
                .saturating_sub(fake),
            fake,
        }
    }
}

/// CPU time of the whole process, threads that have ended included, to the
/// nanosecond (`/proc`'s utime and stime count 10 ms ticks: too coarse for
/// a case that takes half a second of CPU).
fn process_cpu() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    assert_eq!(rc, 0, "the process CPU clock is readable");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Time on CPU of one thread: the first field of its `schedstat`, in ns.
/// The fake's threads run for the whole bench, so none ends uncounted.
fn thread_cpu(schedstat: &str) -> Duration {
    let nanos = schedstat
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Duration::from_nanos(nanos)
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

/// Whether `BENCH_CASES` (default: all) names this case.
fn wants(case: char) -> bool {
    std::env::var("BENCH_CASES").map_or(true, |cases| cases.contains(case))
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
