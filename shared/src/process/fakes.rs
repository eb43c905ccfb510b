//! In-memory KODE, file store and ledger for the orchestration tests. The
//! ledger follows the conditional-write rules of the real adapters.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::KodeSource;
use crate::api::ApiError;
use crate::events::{AnnounceError, Announcer};
use crate::events::{Event, EventScope};
use crate::model::{
    AssetFailure, AssetRecord, AssetState, FailedAttempt, MessageRecord, ObjectKey, ObjectMeta,
    OrderRecord,
};
use crate::model::{AssetId, Order, OrderId};
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

#[derive(Default)]
pub struct MemBlobs {
    pub objects: Mutex<HashMap<ObjectKey, (ObjectMeta, Vec<u8>)>>,
    in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
}

impl MemBlobs {
    pub fn content(&self, key: &str) -> Option<Vec<u8>> {
        let objects = self.objects.lock().unwrap();
        objects
            .get(&ObjectKey(key.to_owned()))
            .map(|(_, c)| c.clone())
    }

    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .objects
            .lock()
            .unwrap()
            .keys()
            .map(|k| k.0.clone())
            .collect();
        keys.sort();
        keys
    }
}

#[async_trait]
impl Blobs for MemBlobs {
    async fn put(
        &self,
        key: &ObjectKey,
        meta: &ObjectMeta,
        body: &mut dyn ChunkSource,
    ) -> Result<StoredObject, PutError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let mut content = Vec::new();
        let result = loop {
            // Lets other downloads of the push interleave, as real I/O would.
            tokio::task::yield_now().await;
            match body.next_chunk().await {
                Ok(Some(chunk)) => content.extend_from_slice(&chunk),
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        result?;
        let stored = StoredObject {
            bytes: content.len() as u64,
            sha256: hex::encode(Sha256::digest(&content)),
        };
        self.objects
            .lock()
            .unwrap()
            .insert(key.clone(), (meta.clone(), content));
        Ok(stored)
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        self.objects.lock().unwrap().remove(key);
        Ok(())
    }
}

/// An event and, once sent, when.
pub type Announcement = (Event, Option<String>);

#[derive(Default)]
pub struct MemLedger {
    pub assets: Mutex<HashMap<(OrderId, AssetId), AssetRecord>>,
    pub orders: Mutex<HashMap<OrderId, OrderRecord>>,
    pub messages: Mutex<HashMap<(String, String), MessageRecord>>,
    pub holds: Mutex<BTreeSet<(OrderId, String)>>,
    /// Assets another run marks deleted between our read and our write.
    pub deleted_concurrently: Mutex<HashSet<AssetId>>,
    /// Announcements by (order recorded, event id), with when they were
    /// sent (once-per-order events stay after sending).
    pub announcements: Mutex<BTreeMap<(u64, String), Announcement>>,
    recorded: AtomicUsize,
}

impl MemLedger {
    pub fn asset(&self, order: u64, asset: &str) -> Option<AssetRecord> {
        let assets = self.assets.lock().unwrap();
        assets.get(&(OrderId(order), AssetId::from(asset))).cloned()
    }

    pub fn order_record(&self, order: u64) -> Option<OrderRecord> {
        self.orders.lock().unwrap().get(&OrderId(order)).cloned()
    }

    /// Remembers `event` unless its id is known; returns whether it was added.
    fn remember(&self, event: Option<&Event>) -> bool {
        let Some(event) = event else { return false };
        let mut announcements = self.announcements.lock().unwrap();
        if announcements.keys().any(|(_, id)| *id == event.id.0) {
            return false;
        }
        let seq = self.recorded.fetch_add(1, Ordering::SeqCst) as u64;
        announcements.insert((seq, event.id.0.clone()), (event.clone(), None));
        true
    }

    /// Every event still to announce, in any scope.
    pub fn pending(&self) -> Vec<Event> {
        let announcements = self.announcements.lock().unwrap();
        announcements
            .values()
            .filter(|(_, sent)| sent.is_none())
            .map(|(e, _)| e.clone())
            .collect()
    }

    fn tombstone(order: OrderId, asset: &AssetId, at: &str) -> AssetRecord {
        AssetRecord {
            order_id: order,
            asset_id: asset.clone(),
            state: AssetState::Deleted,
            key: None,
            sub_order_id: None,
            order_line_id: None,
            bytes: None,
            sha256: None,
            content_type: None,
            name: None,
            category: None,
            stored_at: None,
            deleted_at: Some(at.to_owned()),
            failure: None,
        }
    }
}

#[async_trait]
impl Ledger for MemLedger {
    async fn order_assets(&self, order: OrderId) -> Result<Vec<AssetRecord>, StoreError> {
        let assets = self.assets.lock().unwrap();
        let mut records: Vec<AssetRecord> = assets
            .values()
            .filter(|r| r.order_id == order)
            .cloned()
            .collect();
        records.sort_by(|a, b| a.asset_id.cmp(&b.asset_id));
        Ok(records)
    }

    async fn order(&self, order: OrderId) -> Result<Option<OrderRecord>, StoreError> {
        Ok(self.orders.lock().unwrap().get(&order).cloned())
    }

    async fn record_stored_announcing(
        &self,
        record: &AssetRecord,
        announce: Option<&Event>,
    ) -> Result<RecordOutcome, StoreError> {
        let mut assets = self.assets.lock().unwrap();
        let id = (record.order_id, record.asset_id.clone());
        if self
            .deleted_concurrently
            .lock()
            .unwrap()
            .contains(&record.asset_id)
        {
            assets.insert(
                id.clone(),
                Self::tombstone(record.order_id, &record.asset_id, "concurrent"),
            );
        }
        let purged = self
            .orders
            .lock()
            .unwrap()
            .get(&record.order_id)
            .is_some_and(|o| o.purged_at.is_some());
        Ok(match assets.get(&id).map(|r| r.state) {
            Some(AssetState::Deleted) => RecordOutcome::AlreadyDeleted,
            Some(AssetState::Stored) => RecordOutcome::AlreadyRecorded,
            None | Some(AssetState::Failed) if purged => RecordOutcome::OrderPurged,
            None | Some(AssetState::Failed) => {
                assets.insert(id, record.clone());
                self.remember(announce);
                RecordOutcome::Recorded
            }
        })
    }

    async fn record_failed_announcing(
        &self,
        attempt: &FailedAttempt,
        announce: Arc<FailedAnnouncement>,
    ) -> Result<FailedOutcome, StoreError> {
        let mut assets = self.assets.lock().unwrap();
        let id = (attempt.order_id, attempt.asset_id.clone());
        let before = match assets.get(&id) {
            Some(record) if record.state != AssetState::Failed => {
                return Ok(FailedOutcome::Settled(record.state))
            }
            Some(record) => record.failure.clone(),
            None => None,
        };
        let attempts = before.as_ref().map_or(0, |f| f.attempts) + 1;
        assets.insert(
            id,
            AssetRecord {
                state: AssetState::Failed,
                deleted_at: None,
                failure: Some(AssetFailure {
                    reason: attempt.reason.clone(),
                    attempts,
                    last_attempt_at: attempt.at.clone(),
                    transient: attempt.transient,
                }),
                ..Self::tombstone(attempt.order_id, &attempt.asset_id, "")
            },
        );
        drop(assets);
        self.remember(announce(before.as_ref(), attempts).as_ref());
        Ok(FailedOutcome::Recorded { attempts })
    }

    async fn mark_deleted_announcing(
        &self,
        order: OrderId,
        asset: &AssetId,
        at: &str,
        announce: Option<&Event>,
    ) -> Result<RecordOutcome, StoreError> {
        let mut assets = self.assets.lock().unwrap();
        Ok(match assets.get_mut(&(order, asset.clone())) {
            Some(r) if r.state == AssetState::Deleted => RecordOutcome::AlreadyRecorded,
            Some(r) => {
                r.state = AssetState::Deleted;
                r.deleted_at = Some(at.to_owned());
                r.failure = None;
                self.remember(announce);
                RecordOutcome::Recorded
            }
            None => {
                assets.insert((order, asset.clone()), Self::tombstone(order, asset, at));
                RecordOutcome::Recorded
            }
        })
    }

    async fn upsert_order(&self, record: &OrderRecord) -> Result<(), StoreError> {
        let order = record
            .order_id
            .ok_or_else(|| StoreError::Permanent("order record without id".into()))?;
        let mut orders = self.orders.lock().unwrap();
        let stored = orders.entry(order).or_default();
        let keep_first = |old: &mut Option<String>, new: &Option<String>| {
            if old.is_none() {
                old.clone_from(new);
            }
        };
        let overwrite = |old: &mut Option<String>, new: &Option<String>| {
            if new.is_some() {
                old.clone_from(new);
            }
        };
        stored.order_id = Some(order);
        overwrite(&mut stored.last_status, &record.last_status);
        overwrite(&mut stored.reference, &record.reference);
        overwrite(&mut stored.technical_reference, &record.technical_reference);
        overwrite(&mut stored.updated_at, &record.updated_at);
        keep_first(&mut stored.finished_at, &record.finished_at);
        keep_first(&mut stored.purged_at, &record.purged_at);
        if record.sweep_until.is_some() {
            stored.sweep_until.clone_from(&record.sweep_until);
            stored.sweep_misses = 0;
            stored.sweep_closed_at = None;
        }
        if stored.purged_at.is_some() {
            stored.sweep_until = None;
        }
        Ok(())
    }

    async fn record_message_announcing(
        &self,
        message: &MessageRecord,
        announce: Option<&Event>,
    ) -> Result<RecordOutcome, StoreError> {
        let mut messages = self.messages.lock().unwrap();
        let key = (message.id.clone(), message.event_action.clone());
        if messages.contains_key(&key) {
            return Ok(RecordOutcome::AlreadyRecorded);
        }
        messages.insert(key, message.clone());
        self.remember(announce);
        Ok(RecordOutcome::Recorded)
    }

    async fn open_orders(&self, now: &str) -> Result<Vec<OpenOrder>, StoreError> {
        let orders = self.orders.lock().unwrap();
        let holds = self.holds.lock().unwrap();
        let mut ids: BTreeSet<OrderId> = orders
            .iter()
            .filter(|(_, o)| o.sweep_until.as_deref().is_some_and(|u| u >= now))
            .map(|(id, _)| *id)
            .collect();
        ids.extend(holds.iter().map(|(id, _)| *id));
        let announcing: BTreeSet<OrderId> = self
            .pending()
            .iter()
            .filter_map(|e| match e.scope() {
                EventScope::Order(id) => Some(id),
                EventScope::Distributor => None,
            })
            .collect();
        ids.extend(announcing.iter().copied());
        Ok(ids
            .into_iter()
            .filter_map(|id| {
                let record = orders.get(&id).cloned().unwrap_or_default();
                let open = record.purged_at.is_none() && record.sweep_closed_at.is_none();
                (open || announcing.contains(&id)).then_some(OpenOrder {
                    order_id: id,
                    swept_at: record.swept_at,
                })
            })
            .collect())
    }

    async fn hold_open(&self, order: OrderId, reason: &str) -> Result<(), StoreError> {
        self.holds
            .lock()
            .unwrap()
            .insert((order, reason.to_owned()));
        Ok(())
    }

    async fn release_hold(&self, order: OrderId, reason: &str) -> Result<(), StoreError> {
        self.holds
            .lock()
            .unwrap()
            .remove(&(order, reason.to_owned()));
        Ok(())
    }

    async fn mark_swept(&self, order: OrderId, at: &str) -> Result<(), StoreError> {
        let mut orders = self.orders.lock().unwrap();
        let stored = orders.entry(order).or_default();
        stored.order_id = Some(order);
        stored.swept_at = Some(at.to_owned());
        Ok(())
    }

    async fn sweep_missed(
        &self,
        order: OrderId,
        max_misses: u32,
        at: &str,
    ) -> Result<SweepMiss, StoreError> {
        let mut orders = self.orders.lock().unwrap();
        let stored = orders.entry(order).or_default();
        stored.order_id = Some(order);
        stored.sweep_misses += 1;
        let closed = stored.sweep_misses >= max_misses;
        if closed {
            stored.sweep_until = None;
            stored.sweep_closed_at.get_or_insert_with(|| at.to_owned());
        }
        Ok(SweepMiss {
            misses: stored.sweep_misses,
            closed,
        })
    }

    async fn sweep_found(&self, order: OrderId) -> Result<(), StoreError> {
        if let Some(stored) = self.orders.lock().unwrap().get_mut(&order) {
            stored.sweep_misses = 0;
        }
        Ok(())
    }

    async fn record_announcement(&self, event: &Event) -> Result<RecordOutcome, StoreError> {
        Ok(if self.remember(Some(event)) {
            RecordOutcome::Recorded
        } else {
            RecordOutcome::AlreadyRecorded
        })
    }

    async fn pending_announcements(&self, scope: EventScope) -> Result<Vec<Event>, StoreError> {
        Ok(self
            .pending()
            .into_iter()
            .filter(|e| e.scope() == scope)
            .collect())
    }

    async fn announcement_sent(&self, event: &Event, at: &str) -> Result<(), StoreError> {
        let mut announcements = self.announcements.lock().unwrap();
        let key = announcements
            .keys()
            .find(|(_, id)| *id == event.id.0)
            .cloned();
        if let Some(key) = key {
            if event.event_type().once_per_order() {
                if let Some(entry) = announcements.get_mut(&key) {
                    entry.1 = Some(at.to_owned());
                }
            } else {
                announcements.remove(&key);
            }
        }
        Ok(())
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
