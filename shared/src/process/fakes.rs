//! For the orchestration tests: stand-ins for KODE and the event bus, and
//! the real local adapters (SQLite ledger, files on disk) wrapped to read
//! back what a run left and to inject a concurrent run's write.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::OpenFlags;

use super::KodeSource;
use crate::api::ApiError;
use crate::events::{AnnounceError, Announcer};
use crate::events::{Event, EventScope};
use crate::model::{AssetId, Order, OrderId};
use crate::model::{AssetRecord, FailedAttempt, MessageRecord, ObjectKey, ObjectMeta, OrderRecord};
use crate::store::local::{DiskBlobs, SqliteLedger};
use crate::store::{
    Blobs, FailedAnnouncement, FailedOutcome, Ledger, OpenOrder, PutError, RecordOutcome,
    StoreError, StoredObject, SweepMiss,
};
use crate::stream::{ChunkSource, SourceError};
use crate::Deadline;

/// A download body: its chunks, then either its end or a cut-off.
pub struct MemChunks {
    chunks: VecDeque<Bytes>,
    truncated: bool,
    sent: u64,
}

#[async_trait]
impl ChunkSource for MemChunks {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, SourceError> {
        match self.chunks.pop_front() {
            Some(chunk) => {
                self.sent += chunk.len() as u64;
                Ok(Some(chunk))
            }
            None if self.truncated => Err(SourceError::Truncated {
                received: self.sent,
                expected: None,
            }),
            None => Ok(None),
        }
    }

    fn content_type(&self) -> Option<&str> {
        Some("application/pdf")
    }
}

#[derive(Default)]
pub struct FakeKode {
    pub order: Mutex<Option<Order>>,
    /// `get_order` answers this status instead of the order.
    pub order_status: Mutex<Option<u16>>,
    /// Body per download URL.
    pub files: Mutex<HashMap<String, Vec<u8>>>,
    /// URLs whose body breaks off after half.
    pub truncated: Mutex<HashSet<String>>,
    pub downloads: AtomicUsize,
    pub order_gets: AtomicUsize,
}

impl FakeKode {
    pub fn set_order(&self, order: Order) {
        *self.order.lock().unwrap() = Some(order);
    }

    pub fn add_file(&self, url: &str, content: &[u8]) {
        self.files
            .lock()
            .unwrap()
            .insert(url.to_owned(), content.to_vec());
    }

    pub fn downloads(&self) -> usize {
        self.downloads.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl KodeSource for FakeKode {
    async fn get_order(&self, id: OrderId, _deadline: Deadline) -> Result<Order, ApiError> {
        self.order_gets.fetch_add(1, Ordering::SeqCst);
        if let Some(status) = *self.order_status.lock().unwrap() {
            return Err(ApiError::Status {
                status,
                what: format!("order {id}"),
                message: "fake".into(),
                retry_after: None,
            });
        }
        self.order.lock().unwrap().clone().ok_or(ApiError::Status {
            status: 404,
            what: format!("order {id}"),
            message: "no such order".into(),
            retry_after: None,
        })
    }

    async fn download(
        &self,
        url: &str,
        _deadline: Deadline,
    ) -> Result<Box<dyn ChunkSource>, ApiError> {
        self.downloads.fetch_add(1, Ordering::SeqCst);
        let content = self.files.lock().unwrap().get(url).cloned();
        let content = content.ok_or(ApiError::Status {
            status: 404,
            what: url.to_owned(),
            message: "no such file".into(),
            retry_after: None,
        })?;
        let truncated = self.truncated.lock().unwrap().contains(url);
        let shown = if truncated {
            &content[..content.len() / 2]
        } else {
            &content[..]
        };
        Ok(Box::new(MemChunks {
            chunks: shown.chunks(3).map(Bytes::copy_from_slice).collect(),
            truncated,
            sent: 0,
        }))
    }
}

/// A temp directory for a test's ledger and files, removed when dropped;
/// in memory (`/dev/shm`) where there is one. The adapters fsync every
/// write, which on a disk doubled the time of the crate's unit tests, and
/// what these check is what a run leaves, not that it survives a power cut
/// (the adapters' own tests cover that).
pub fn temp_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().unwrap()
}

/// The local file store (files on disk) as the processor uses it, counting
/// the uploads running at the same time and keeping the metadata each was
/// given (S3 writes it beside the object; on disk it lives in the ledger).
pub struct LocalBlobs {
    disk: DiskBlobs,
    metas: Mutex<HashMap<String, ObjectMeta>>,
    in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
}

impl LocalBlobs {
    /// Files under `<dir>/assets/`.
    pub fn new(dir: &Path) -> LocalBlobs {
        LocalBlobs {
            disk: DiskBlobs::new(dir),
            metas: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        }
    }

    /// The file on disk under `key`, if there is one.
    pub fn content(&self, key: &str) -> Option<Vec<u8>> {
        let path = self.disk.path_of(&ObjectKey(key.to_owned())).ok()?;
        std::fs::read(path).ok()
    }

    /// The keys of every file on disk, sorted.
    pub fn keys(&self) -> Vec<String> {
        fn walk(dir: &Path, root: &Path, keys: &mut Vec<String>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, root, keys);
                } else {
                    let relative = path.strip_prefix(root).unwrap();
                    let parts: Vec<_> = relative.iter().map(|p| p.to_string_lossy()).collect();
                    keys.push(parts.join("/"));
                }
            }
        }
        let mut keys = Vec::new();
        walk(self.disk.root(), self.disk.root(), &mut keys);
        keys.sort();
        keys
    }

    /// The metadata of the last upload under `key` that succeeded.
    pub fn meta(&self, key: &str) -> Option<ObjectMeta> {
        self.metas.lock().unwrap().get(key).cloned()
    }
}

#[async_trait]
impl Blobs for LocalBlobs {
    async fn put(
        &self,
        key: &ObjectKey,
        meta: &ObjectMeta,
        body: &mut dyn ChunkSource,
    ) -> Result<StoredObject, PutError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        // Lets the other downloads of the push start before this one ends,
        // so the count shows the processor's limit, not the scheduler's luck.
        tokio::task::yield_now().await;
        let result = self.disk.put(key, meta, body).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if result.is_ok() {
            let mut metas = self.metas.lock().unwrap();
            metas.insert(key.as_str().to_owned(), meta.clone());
        }
        result
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        self.disk.delete(key).await
    }
}

/// The local ledger (SQLite) as the processor uses it, with readers for
/// the tests and one fault to inject.
pub struct LocalLedger {
    sqlite: SqliteLedger,
    path: PathBuf,
    /// Assets another run marks deleted between our read and our write:
    /// marked just before we record them stored.
    pub deleted_concurrently: Mutex<HashSet<AssetId>>,
}

impl LocalLedger {
    /// The ledger in `<dir>/ledger.sqlite`.
    pub async fn open(dir: &Path) -> LocalLedger {
        let path = dir.join("ledger.sqlite");
        LocalLedger {
            sqlite: SqliteLedger::open(&path).await.unwrap(),
            path,
            deleted_concurrently: Mutex::default(),
        }
    }

    pub async fn asset(&self, order: u64, asset: &str) -> Option<AssetRecord> {
        let records = self.sqlite.order_assets(OrderId(order)).await.unwrap();
        records.into_iter().find(|r| r.asset_id.as_str() == asset)
    }

    pub async fn order_record(&self, order: u64) -> Option<OrderRecord> {
        self.sqlite.order(OrderId(order)).await.unwrap()
    }

    /// Every event still to announce, in any scope.
    pub async fn pending(&self) -> Vec<Event> {
        let mut scopes = vec![EventScope::Distributor];
        for order in self.sqlite.orders().await.unwrap() {
            scopes.extend(order.order_id.map(EventScope::Order));
        }
        let mut pending = Vec::new();
        for scope in scopes {
            pending.extend(self.sqlite.pending_announcements(scope).await.unwrap());
        }
        pending
    }

    /// Every distributor message, oldest first.
    pub async fn messages(&self) -> Vec<MessageRecord> {
        self.sqlite.messages().await.unwrap()
    }

    /// The reasons the order is held open for the sweep. The ledger shows
    /// holds only through `open_orders`, which cannot tell them apart (nor
    /// show one on an order open anyway), so they are read from its table.
    pub fn holds(&self, order: u64) -> Vec<String> {
        let conn =
            rusqlite::Connection::open_with_flags(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap();
        let mut stmt = conn
            .prepare("SELECT reason FROM order_holds WHERE order_id = ?1 ORDER BY reason")
            .unwrap();
        let reasons = stmt
            .query_map([i64::try_from(order).unwrap()], |row| row.get(0))
            .unwrap();
        reasons.collect::<Result<_, _>>().unwrap()
    }
}

// `record_stored`, `mark_deleted` and `record_message` are not overridden:
// their defaults come back through the delegates below (and the fault).
#[async_trait]
impl Ledger for LocalLedger {
    async fn order_assets(&self, order: OrderId) -> Result<Vec<AssetRecord>, StoreError> {
        self.sqlite.order_assets(order).await
    }

    async fn order(&self, order: OrderId) -> Result<Option<OrderRecord>, StoreError> {
        self.sqlite.order(order).await
    }

    async fn record_stored_announcing(
        &self,
        record: &AssetRecord,
        announce: Option<&Event>,
    ) -> Result<RecordOutcome, StoreError> {
        let concurrent = self
            .deleted_concurrently
            .lock()
            .unwrap()
            .contains(&record.asset_id);
        if concurrent {
            let at = jiff::Timestamp::now().to_string();
            self.sqlite
                .mark_deleted(record.order_id, &record.asset_id, &at)
                .await?;
        }
        self.sqlite.record_stored_announcing(record, announce).await
    }

    async fn record_failed_announcing(
        &self,
        attempt: &FailedAttempt,
        announce: Arc<FailedAnnouncement>,
    ) -> Result<FailedOutcome, StoreError> {
        self.sqlite
            .record_failed_announcing(attempt, announce)
            .await
    }

    async fn mark_deleted_announcing(
        &self,
        order: OrderId,
        asset: &AssetId,
        at: &str,
        announce: Option<&Event>,
    ) -> Result<RecordOutcome, StoreError> {
        self.sqlite
            .mark_deleted_announcing(order, asset, at, announce)
            .await
    }

    async fn upsert_order(&self, record: &OrderRecord) -> Result<(), StoreError> {
        self.sqlite.upsert_order(record).await
    }

    async fn record_message_announcing(
        &self,
        message: &MessageRecord,
        announce: Option<&Event>,
    ) -> Result<RecordOutcome, StoreError> {
        self.sqlite
            .record_message_announcing(message, announce)
            .await
    }

    async fn record_announcement(&self, event: &Event) -> Result<RecordOutcome, StoreError> {
        self.sqlite.record_announcement(event).await
    }

    async fn pending_announcements(&self, scope: EventScope) -> Result<Vec<Event>, StoreError> {
        self.sqlite.pending_announcements(scope).await
    }

    async fn announcement_sent(&self, event: &Event, at: &str) -> Result<(), StoreError> {
        self.sqlite.announcement_sent(event, at).await
    }

    async fn open_orders(&self, now: &str) -> Result<Vec<OpenOrder>, StoreError> {
        self.sqlite.open_orders(now).await
    }

    async fn hold_open(&self, order: OrderId, reason: &str) -> Result<(), StoreError> {
        self.sqlite.hold_open(order, reason).await
    }

    async fn release_hold(&self, order: OrderId, reason: &str) -> Result<(), StoreError> {
        self.sqlite.release_hold(order, reason).await
    }

    async fn mark_swept(&self, order: OrderId, at: &str) -> Result<(), StoreError> {
        self.sqlite.mark_swept(order, at).await
    }

    async fn sweep_missed(
        &self,
        order: OrderId,
        max_misses: u32,
        at: &str,
    ) -> Result<SweepMiss, StoreError> {
        self.sqlite.sweep_missed(order, max_misses, at).await
    }

    async fn sweep_found(&self, order: OrderId) -> Result<(), StoreError> {
        self.sqlite.sweep_found(order).await
    }
}

/// Takes events like a bus; `refuse` makes the next calls fail.
#[derive(Default)]
pub struct MemAnnouncer {
    pub taken: Mutex<Vec<Event>>,
    /// Calls still to refuse.
    pub refuse: AtomicUsize,
}

impl MemAnnouncer {
    pub fn taken(&self) -> Vec<Event> {
        self.taken.lock().unwrap().clone()
    }
}

#[async_trait]
impl Announcer for MemAnnouncer {
    async fn announce(&self, events: &[Event]) -> Vec<Result<(), AnnounceError>> {
        let refused = self
            .refuse
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if refused {
            let error = AnnounceError::Unavailable("bus throttled".into());
            return events.iter().map(|_| Err(error.clone())).collect();
        }
        self.taken.lock().unwrap().extend_from_slice(events);
        events.iter().map(|_| Ok(())).collect()
    }
}
