//! `kode demo`: the whole flow in one command, no account needed. A
//! simulated KODE (the test suite's fake) serves a Meglerpakke order; the
//! same local pipeline as `kode serve` receives its pushes and stores the
//! files under the demo's data directory, where they stay.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use async_trait::async_trait;
use clap::Args;
use fake_kode::{samples, AssetSpec, FakeKode, OrderSpec};
use kode::announce::{AnnounceError, Announcer};
use kode::api::{ApiConfig, Credentials};
use kode::events::Event;
use kode::intake::PushSecret;
use kode::model::OrderId;
use kode::model::{AssetRecord, AssetState};
use kode::store::local::QueueOptions;
use kode::store::Ledger;
use kode::sync::FailedPolicy;
use kode::Secret;
use serde_json::json;
use url::Url;

use crate::error::CliError;
use crate::pipeline::{Notify, Pipeline, PipelineConfig};

/// The first demo order; later runs on the same directory count up, so each
/// run shows the whole flow and earlier files stay.
const FIRST_ORDER_ID: u64 = 2_345_678;
/// How long one push may take to be processed before the demo gives up.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);
const DRAIN_POLL: Duration = Duration::from_millis(25);

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where the demo keeps its queue, ledger and files (they stay there)
    #[arg(long, value_name = "DIR", default_value = "./kode-demo")]
    pub data_dir: PathBuf,
}

pub async fn run(args: DemoArgs) -> Result<(), CliError> {
    demo(args).await.map_err(CliError::Other)
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let fake = FakeKode::start().await;
    let token = uuid::Uuid::new_v4().simple().to_string();
    let events = Arc::new(EventLog::default());
    let pipeline = start_pipeline(&fake, args.data_dir, &token, events.clone()).await?;

    let orders_before = pipeline.ledger().orders().await?.len();
    let order_id = FIRST_ORDER_ID + u64::try_from(orders_before)?;
    let mut order = samples::meglerpakke_order(order_id);
    let late = hold_back_last_lines(&mut order, 2);
    // The second file at sub-order level gets withdrawn (tests rely on it).
    let withdrawn = order
        .sub_orders
        .first()
        .and_then(|s| s.assets.get(1))
        .cloned()
        .ok_or_else(|| anyhow!("the sample order has fewer files than the demo needs"))?;
    fake.add_order(order.clone());

    println!("kode demo: the whole push flow on this machine, against a simulated KODE");
    println!("  simulated KODE   {}", fake.base_url());
    println!(
        "  kode pipeline    {} (the same code as `kode serve` and the Lambdas)",
        pipeline.push_url()
    );
    println!("  data directory   {}", pipeline.data_dir().display());
    println!(
        "  order            {order_id} {:?}: a Meglerpakke in municipality 9999 Infoland",
        order.reference
    );
    println!();

    let mut demo = Demo {
        fake: &fake,
        pipeline: &pipeline,
        callback: format!("{}?token={token}", pipeline.push_url()),
        order,
        totals: Totals::default(),
        events,
    };
    demo.push(
        1,
        "NEW",
        "KODE confirms the order; files delivered so far are fetched",
    )
    .await?;
    for (sub_order, line, asset) in late {
        fake.add_asset(order_id, sub_order, Some(line), asset);
    }
    demo.push(2, "UPDATED", "two more files have arrived")
        .await?;
    fake.set_order_status(order_id, "FINISHED");
    demo.push(
        3,
        "FINISHED",
        "the order is done; the pipeline checks nothing is missing",
    )
    .await?;
    fake.set_asset_status(&withdrawn.id, "DELETED");
    demo.push(
        4,
        "UPDATED",
        &format!("the municipality withdrew {:?}", withdrawn.filename),
    )
    .await?;

    let totals = demo.totals;
    let files = demo.stored_files().await?;
    pipeline.shutdown(Duration::from_secs(5)).await;
    fake.shutdown().await;
    summary(&totals, &files, &order_dir_of(&files));
    Ok(())
}

async fn start_pipeline(
    fake: &FakeKode,
    data_dir: PathBuf,
    token: &str,
    events: Arc<EventLog>,
) -> anyhow::Result<Pipeline> {
    let credentials = fake.credentials();
    let api = ApiConfig::new(
        Url::parse(&fake.base_url())?,
        Credentials {
            client_id: credentials.client_id,
            client_secret: Secret::new(credentials.client_secret),
            username: credentials.username,
            password: Secret::new(credentials.password),
        },
    );
    let pipeline = Pipeline::start(PipelineConfig {
        data_dir,
        listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        push_secret: PushSecret::new(Secret::new(token))?,
        api,
        download_concurrency: 4,
        workers: 2,
        queue: QueueOptions {
            max_attempts: 3,
            base_backoff: Duration::from_millis(200),
            ..QueueOptions::default()
        },
        message_timeout: Duration::from_secs(60),
        failed: FailedPolicy::default(),
        // The demo pushes everything it shows.
        sweep_interval: None,
        sweep_policy: kode::sync::SweepPolicy::default(),
        notify: Notify::To(events),
    })
    .await?;
    Ok(pipeline)
}

/// Takes the files of the last `lines` order lines out of the order, so
/// that they can "arrive" later: `(sub-order, line, asset)`.
fn hold_back_last_lines(order: &mut OrderSpec, lines: usize) -> Vec<(u64, u64, AssetSpec)> {
    let mut late = Vec::new();
    for sub_order in &mut order.sub_orders {
        let count = sub_order.lines.len();
        for line in sub_order.lines.iter_mut().skip(count.saturating_sub(lines)) {
            for asset in std::mem::take(&mut line.assets) {
                late.push((sub_order.id, line.id, asset));
            }
        }
    }
    late
}

#[derive(Default, Clone, Copy)]
struct Totals {
    pushes: u32,
    stored: u64,
    stored_bytes: u64,
    deleted: u64,
}

struct Demo<'a> {
    fake: &'a FakeKode,
    pipeline: &'a Pipeline,
    callback: String,
    order: OrderSpec,
    totals: Totals,
    events: Arc<EventLog>,
}

/// Takes the events `kode serve --notify-url` would POST, to show them.
#[derive(Default)]
struct EventLog {
    events: Mutex<Vec<Event>>,
}

impl EventLog {
    /// The events taken since the last call.
    fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[async_trait]
impl Announcer for EventLog {
    async fn announce(&self, events: &[Event]) -> Vec<Result<(), AnnounceError>> {
        let mut log = self.events.lock().unwrap_or_else(|e| e.into_inner());
        log.extend_from_slice(events);
        events.iter().map(|_| Ok(())).collect()
    }
}

impl Demo<'_> {
    /// Sends one push the way KODE does, waits until the pipeline has
    /// processed it and shows what changed on disk.
    async fn push(&mut self, step: u32, status: &str, why: &str) -> anyhow::Result<()> {
        let order_id = OrderId(self.order.id);
        let before = self.assets(order_id).await?;
        let dead_before = self.pipeline.queue().dead_letters().await?.len();
        println!("{step}. KODE pushes {status}: {why}");

        let body = json!({
            "orderCollectionId": self.order.id,
            "reference": self.order.reference,
            "status": status,
            "technicalReference": self.order.technical_reference,
        });
        let started = Instant::now();
        let (code, answer) = self
            .fake
            .push(&self.callback, &body)
            .await
            .map_err(|e| anyhow!(e))?;
        if code != 200 {
            return Err(anyhow!("the pipeline answered {code}: {answer}"));
        }
        self.totals.pushes += 1;
        println!("   POST /push -> {code} {answer}");
        self.wait_until_processed(dead_before).await?;

        let after = self.assets(order_id).await?;
        let mut changes = 0;
        for record in after.values() {
            let was = before.get(&record.asset_id.0).map(|r| r.state);
            match (was, record.state) {
                (None | Some(AssetState::Deleted | AssetState::Failed), AssetState::Stored) => {
                    let bytes = record.bytes.unwrap_or_default();
                    self.totals.stored += 1;
                    self.totals.stored_bytes += bytes;
                    println!(
                        "   + stored  {} ({})",
                        self.path_of(record),
                        human_bytes(bytes)
                    );
                    changes += 1;
                }
                (Some(AssetState::Stored), AssetState::Deleted) => {
                    self.totals.deleted += 1;
                    println!("   - deleted {}", self.path_of(record));
                    changes += 1;
                }
                _ => {}
            }
        }
        if changes == 0 {
            println!("   nothing to download or delete: every file is already in place");
        }
        for event in self.events.take() {
            println!("   event {:<15} {}", event.event_type().name(), event.id);
        }
        println!("   processed in {} ms", started.elapsed().as_millis());
        println!();
        Ok(())
    }

    async fn wait_until_processed(&self, dead_before: usize) -> anyhow::Result<()> {
        let queue = self.pipeline.queue();
        let give_up = Instant::now() + DRAIN_TIMEOUT;
        while queue.backlog().await? > 0 {
            if Instant::now() > give_up {
                return Err(anyhow!(
                    "the push was not processed within {} s",
                    DRAIN_TIMEOUT.as_secs()
                ));
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
        let dead = queue.dead_letters().await?;
        if let Some(letter) = dead.get(dead_before..).and_then(<[_]>::first) {
            return Err(anyhow!("the push failed: {}", letter.last_error));
        }
        Ok(())
    }

    async fn assets(&self, order: OrderId) -> anyhow::Result<HashMap<String, AssetRecord>> {
        let records = self.pipeline.ledger().order_assets(order).await?;
        Ok(records
            .into_iter()
            .map(|r| (r.asset_id.0.clone(), r))
            .collect())
    }

    fn path_of(&self, record: &AssetRecord) -> String {
        record
            .key
            .as_ref()
            .and_then(|key| self.pipeline.blobs().path_of(key).ok())
            .map_or_else(|| record.asset_id.0.clone(), |p| p.display().to_string())
    }

    /// The files of this order now on disk.
    async fn stored_files(&self) -> anyhow::Result<Vec<(String, u64)>> {
        let records = self.assets(OrderId(self.order.id)).await?;
        let mut files: Vec<(String, u64)> = records
            .values()
            .filter(|r| r.state == AssetState::Stored)
            .map(|r| (self.path_of(r), r.bytes.unwrap_or_default()))
            .collect();
        files.sort();
        for (path, _) in &files {
            std::fs::metadata(path).with_context(|| format!("{path} is missing"))?;
        }
        Ok(files)
    }
}

fn order_dir_of(files: &[(String, u64)]) -> String {
    files
        .first()
        .and_then(|(path, _)| {
            let path = std::path::Path::new(path);
            path.parent()?.parent().map(|p| p.display().to_string())
        })
        .unwrap_or_default()
}

fn summary(totals: &Totals, files: &[(String, u64)], order_dir: &str) {
    let on_disk: u64 = files.iter().map(|(_, bytes)| bytes).sum();
    println!("Summary");
    println!("  pushes accepted  {}", totals.pushes);
    println!(
        "  files stored     {} ({})",
        totals.stored,
        human_bytes(totals.stored_bytes)
    );
    println!("  files deleted    {}", totals.deleted);
    println!(
        "  now on disk      {} files, {} in {order_dir}",
        files.len(),
        human_bytes(on_disk)
    );
    for (path, _) in files {
        println!("                   {path}");
    }
    println!();
    println!(
        "The files stay there. To receive real pushes from KODE, run `kode serve` (see README);"
    );
    println!("with --notify-url it POSTs each event shown above to your system, signed.");
}

fn human_bytes(bytes: u64) -> String {
    if bytes < 1024 {
        format!("{bytes} B")
    } else {
        // Display only: rounding is fine.
        #[allow(clippy::cast_precision_loss)]
        let kib = bytes as f64 / 1024.0;
        if kib < 1024.0 {
            format!("{kib:.1} KiB")
        } else {
            format!("{:.1} MiB", kib / 1024.0)
        }
    }
}
