//! Two runs of one order at once (the Lambda and `kode sync`, or a
//! redelivered batch) on the real adapters: SQLite + disk as `kode serve`
//! and `kode sync` use them, and DynamoDB + S3 on moto. Each run has its own
//! adapter instances on the same storage; a `Blobs` wrapper stops one run at
//! a chosen step until the other has gone on, so the interleaving is forced.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use fake_kode::{AssetSpec, Endpoint, FakeKode, OrderSpec};
use kode::api::{ApiError, KodeClient};
use kode::model::{AssetState, ObjectKey, ObjectMeta};
use kode::model::{Order, OrderId, OrderPush, PushStatus};
use kode::process::{KodeSource, Processor, SyncReport};
use kode::store::aws::{DynamoLedger, S3Blobs};
use kode::store::local::{DiskBlobs, SqliteLedger};
use kode::store::{Blobs, Ledger, PutError, StoreError, StoredObject};
use kode::stream::{ChunkSource, SourceError};
use kode::Deadline;
use tokio::sync::Notify;

use super::harness::{api_config, Env};
use super::stored::content;
use crate::support;

/// Where a run stops, and the signals to meet it there.
#[derive(Default)]
struct Gate {
    reached: Notify,
    release: Notify,
}

impl Gate {
    async fn pause(&self) {
        self.reached.notify_one();
        self.release.notified().await;
    }

    async fn reached(&self) {
        tokio::time::timeout(Duration::from_secs(30), self.reached.notified())
            .await
            .expect("the paused run reached its step");
    }

    fn open(&self) {
        self.release.notify_one();
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The download has started; nothing is written yet.
    BeforePut,
    /// The file is under its key; the ledger does not know it yet.
    AfterPut,
    /// The key was deleted once; the ledger is not marked yet.
    AfterFirstDelete,
}

/// The real file store, stopping once at `step`.
struct PausingBlobs {
    inner: Arc<dyn Blobs>,
    step: Step,
    gate: Arc<Gate>,
    armed: AtomicBool,
}

impl PausingBlobs {
    fn around(inner: Arc<dyn Blobs>, step: Step, gate: Arc<Gate>) -> Arc<dyn Blobs> {
        Arc::new(PausingBlobs {
            inner,
            step,
            gate,
            armed: AtomicBool::new(true),
        })
    }

    async fn maybe_pause(&self, at: Step) {
        if self.step == at && self.armed.swap(false, Ordering::SeqCst) {
            self.gate.pause().await;
        }
    }
}

#[async_trait]
impl Blobs for PausingBlobs {
    async fn put(
        &self,
        key: &ObjectKey,
        meta: &ObjectMeta,
        body: &mut dyn ChunkSource,
    ) -> Result<StoredObject, PutError> {
        self.maybe_pause(Step::BeforePut).await;
        let stored = self.inner.put(key, meta, body).await;
        self.maybe_pause(Step::AfterPut).await;
        stored
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        let deleted = self.inner.delete(key).await;
        self.maybe_pause(Step::AfterFirstDelete).await;
        deleted
    }
}

/// KODE, except that every download breaks off after its first chunk.
struct BreakingKode(KodeClient);

struct BrokenBody {
    inner: Box<dyn ChunkSource>,
    sent: u64,
}

#[async_trait]
impl ChunkSource for BrokenBody {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, SourceError> {
        if self.sent > 0 {
            return Err(SourceError::Truncated {
                received: self.sent,
                expected: None,
            });
        }
        let chunk = self.inner.next_chunk().await?;
        self.sent += chunk.as_ref().map_or(1, |c| c.len() as u64);
        Ok(chunk)
    }
}

#[async_trait]
impl KodeSource for BreakingKode {
    async fn get_order(&self, id: OrderId, deadline: Deadline) -> Result<Order, ApiError> {
        KodeSource::get_order(&self.0, id, deadline).await
    }

    async fn download(
        &self,
        url: &str,
        deadline: Deadline,
    ) -> Result<Box<dyn ChunkSource>, ApiError> {
        let inner = KodeSource::download(&self.0, url, deadline).await?;
        Ok(Box::new(BrokenBody { inner, sent: 0 }))
    }
}

/// The storage both runs share.
enum Place {
    Local {
        dir: tempfile::TempDir,
        fake: FakeKode,
    },
    Aws(Box<Env>),
}

impl Place {
    async fn local() -> Place {
        Place::Local {
            dir: tempfile::tempdir().expect("temp dir"),
            fake: FakeKode::start().await,
        }
    }

    async fn aws() -> Place {
        Place::Aws(Box::new(Env::start().await))
    }

    fn fake(&self) -> &FakeKode {
        match self {
            Place::Local { fake, .. } => fake,
            Place::Aws(env) => &env.fake,
        }
    }

    /// Adapters of their own on the shared storage, as a second process
    /// would open them.
    async fn open(&self) -> (Arc<dyn Blobs>, Arc<dyn Ledger>) {
        match self {
            Place::Local { dir, .. } => (
                Arc::new(DiskBlobs::new(dir.path())),
                Arc::new(
                    SqliteLedger::open(dir.path().join("ledger.sqlite"))
                        .await
                        .expect("open ledger"),
                ),
            ),
            Place::Aws(env) => (
                Arc::new(S3Blobs::new(env.s3.clone(), &env.bucket)),
                Arc::new(DynamoLedger::new(env.ddb.clone(), env.ledger.table())),
            ),
        }
    }

    /// Whether the shared storage holds a file under `key`.
    async fn holds(&self, key: &ObjectKey) -> bool {
        match self {
            Place::Local { dir, .. } => dir.path().join("assets").join(key.as_str()).is_file(),
            Place::Aws(env) => support::object_exists(&env.s3, &env.bucket, key.as_str()).await,
        }
    }

    fn client(&self) -> KodeClient {
        KodeClient::new(api_config(self.fake())).expect("KODE client")
    }

    /// A run whose file store stops at `step`, if given.
    async fn run(
        &self,
        kode: Arc<dyn KodeSource>,
        pause: Option<(Step, &Arc<Gate>)>,
    ) -> Arc<Processor> {
        let (blobs, ledger) = self.open().await;
        let blobs = match pause {
            Some((step, gate)) => PausingBlobs::around(blobs, step, Arc::clone(gate)),
            None => blobs,
        };
        Arc::new(Processor::new(kode, blobs, ledger, 4))
    }

    async fn cleanup(self) {
        match self {
            Place::Local { dir, fake } => {
                fake.shutdown().await;
                drop(dir);
            }
            Place::Aws(env) => env.cleanup().await,
        }
    }
}

fn order_with(id: u64, asset: &AssetSpec) -> OrderSpec {
    let mut order = OrderSpec::new(id);
    order.sub_orders[0].assets = vec![asset.clone()];
    order
}

fn key(order: u64, asset: &AssetSpec) -> ObjectKey {
    ObjectKey(format!("orders/{order}/{}/{}", asset.id, asset.filename))
}

fn sync(
    run: &Arc<Processor>,
    order: u64,
    status: &str,
    time: Duration,
) -> tokio::task::JoinHandle<Result<SyncReport, kode::process::ProcessError>> {
    let run = Arc::clone(run);
    let push = OrderPush {
        order_id: OrderId(order),
        status: PushStatus::parse(status),
        reference: None,
        technical_reference: None,
    };
    tokio::spawn(async move { run.sync_order(&push, Deadline::after(time)).await })
}

const TIME: Duration = Duration::from_secs(60);

/// A deletes; B uploads and records the file between A's first delete and
/// A's mark. Without a second delete the file would stay behind a DELETED
/// entry.
async fn deletion_racing_a_download(place: Place, order: u64) {
    let asset = AssetSpec::ok("race-del", "Kart.pdf", content(40_000, 31));
    place.fake().add_order(order_with(order, &asset));
    let downloading = Arc::new(Gate::default());
    let deleting = Arc::new(Gate::default());

    let b = place
        .run(
            Arc::new(place.client()),
            Some((Step::BeforePut, &downloading)),
        )
        .await;
    let b_run = sync(&b, order, "UPDATED", TIME);
    downloading.reached().await;

    place.fake().set_asset_status(&asset.id, "DELETED");
    let a = place
        .run(
            Arc::new(place.client()),
            Some((Step::AfterFirstDelete, &deleting)),
        )
        .await;
    let a_run = sync(&a, order, "UPDATED", TIME);
    deleting.reached().await;

    downloading.open();
    let b_report = b_run.await.unwrap().expect("B stores the file");
    assert_eq!(b_report.stored.len(), 1, "{b_report:?}");
    deleting.open();
    let a_report = a_run.await.unwrap().expect("A deletes it");
    assert_eq!(a_report.tombstoned.len(), 1, "{a_report:?}");

    let (_, ledger) = place.open().await;
    assert!(
        !place.holds(&key(order, &asset)).await,
        "file left behind a DELETED entry"
    );
    let records = ledger.order_assets(OrderId(order)).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].state, AssetState::Deleted);
    place.cleanup().await;
}

/// B has uploaded a file; A purges the order without KODE (it no longer
/// shows the order) before B records it. The record is refused and B
/// removes its file.
async fn purge_racing_a_download(place: Place, order: u64) {
    let asset = AssetSpec::ok("race-purge", "Plan.pdf", content(40_000, 32));
    place.fake().add_order(order_with(order, &asset));
    let uploaded = Arc::new(Gate::default());

    let b = place
        .run(Arc::new(place.client()), Some((Step::AfterPut, &uploaded)))
        .await;
    let b_run = sync(&b, order, "UPDATED", TIME);
    uploaded.reached().await;

    place.fake().fail_next(Endpoint::GetOrder, 1, 404);
    let a = place.run(Arc::new(place.client()), None).await;
    let a_report = sync(&a, order, "CANCELLED", TIME)
        .await
        .unwrap()
        .expect("A purges from the ledger");
    assert!(
        a_report.purged && a_report.deleted.is_empty(),
        "{a_report:?}"
    );

    uploaded.open();
    let b_report = b_run.await.unwrap().expect("B finishes");
    assert_eq!(b_report.refused.len(), 1, "{b_report:?}");
    assert!(b_report.stored.is_empty());

    let (_, ledger) = place.open().await;
    assert!(
        !place.holds(&key(order, &asset)).await,
        "file of a purged order"
    );
    let records = ledger.order_assets(OrderId(order)).await.unwrap();
    assert!(
        records.iter().all(|r| r.state != AssetState::Stored),
        "{records:?}"
    );
    let purged = ledger.order(OrderId(order)).await.unwrap().unwrap();
    assert!(purged.purged_at.is_some());
    place.cleanup().await;
}

/// A's download breaks off after B stored and recorded the same file: A's
/// failure leaves B's file and entry alone, and A's push does not fail.
async fn failed_download_beside_a_stored_one(place: Place, order: u64) {
    let asset = AssetSpec::ok("race-fail", "Tegning.pdf", content(300_000, 33));
    place.fake().add_order(order_with(order, &asset));
    let downloading = Arc::new(Gate::default());

    let a = place
        .run(
            Arc::new(BreakingKode(place.client())),
            Some((Step::BeforePut, &downloading)),
        )
        .await;
    let a_run = sync(&a, order, "UPDATED", TIME);
    downloading.reached().await;

    let b = place.run(Arc::new(place.client()), None).await;
    let b_report = sync(&b, order, "UPDATED", TIME)
        .await
        .unwrap()
        .expect("B stores the file");
    assert_eq!(b_report.stored.len(), 1);

    downloading.open();
    let a_report = a_run.await.unwrap().expect("A's failure is moot");
    assert_eq!(a_report.skipped.len(), 1, "{a_report:?}");
    assert!(a_report.failed.is_empty(), "{a_report:?}");

    let (_, ledger) = place.open().await;
    assert!(
        place.holds(&key(order, &asset)).await,
        "B's file was removed"
    );
    let records = ledger.order_assets(OrderId(order)).await.unwrap();
    assert_eq!(records[0].state, AssetState::Stored);
    assert_eq!(records[0].bytes, Some(300_000));
    place.cleanup().await;
}

#[tokio::test]
async fn local_deletion_racing_a_download_leaves_no_file() {
    deletion_racing_a_download(Place::local().await, 7301).await;
}

#[tokio::test]
async fn aws_deletion_racing_a_download_leaves_no_file() {
    deletion_racing_a_download(Place::aws().await, 7303).await;
}

#[tokio::test]
async fn local_purge_racing_a_download_stores_nothing() {
    purge_racing_a_download(Place::local().await, 7305).await;
}

#[tokio::test]
async fn aws_purge_racing_a_download_stores_nothing() {
    purge_racing_a_download(Place::aws().await, 7307).await;
}

#[tokio::test]
async fn local_failed_download_never_removes_the_other_runs_file() {
    failed_download_beside_a_stored_one(Place::local().await, 7309).await;
}

#[tokio::test]
async fn aws_failed_download_never_removes_the_other_runs_file() {
    failed_download_beside_a_stored_one(Place::aws().await, 7311).await;
}
