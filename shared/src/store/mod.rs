//! Storage ports and their adapters: `aws` (SQS, S3, DynamoDB) for the
//! Lambdas and `local` (SQLite, files on disk) for `kode serve`.
//!
//! Key layout and ledger records are described in `docs/DESIGN.md`.

use std::sync::Arc;

use async_trait::async_trait;

use crate::events::{Event, EventScope};
use crate::model::{
    AssetFailure, AssetId, AssetRecord, AssetState, FailedAttempt, MessageRecord, ObjectKey,
    ObjectMeta, OrderId, OrderRecord,
};
use crate::stream::{ChunkSource, SourceError};

pub mod aws;
pub mod local;

/// Why a storage operation failed, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Throttling, timeouts, network and 5xx errors of the backing service.
    #[error("storage temporarily unavailable: {0}")]
    Unavailable(String),
    /// Bad configuration, missing bucket/table, access denied, invalid data.
    #[error("storage error: {0}")]
    Permanent(String),
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// What an adapter wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub bytes: u64,
    /// Lower-case hex.
    pub sha256: String,
}

/// Why a `put` failed: the source (download) or the store.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PutError {
    pub fn is_retryable(&self) -> bool {
        match self {
            PutError::Source(e) => e.is_retryable(),
            PutError::Store(e) => e.is_retryable(),
        }
    }
}

/// File storage. A `put` either leaves a complete object under `key` or
/// nothing new: never a partial file under its final name.
#[async_trait]
pub trait Blobs: Send + Sync {
    async fn put(
        &self,
        key: &ObjectKey,
        meta: &ObjectMeta,
        body: &mut dyn ChunkSource,
    ) -> Result<StoredObject, PutError>;

    /// Deleting a missing object is not an error.
    async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError>;
}

/// Result of [`Ledger::record_failed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedOutcome {
    /// The asset is FAILED with `attempts` failed attempts, this one included.
    Recorded { attempts: u32 },
    /// Stored or deleted meanwhile (a concurrent run): nothing written.
    Settled(AssetState),
}

/// The event, if any, that a failed attempt announces, given the failure
/// recorded before it and the attempts counted with it.
pub type FailedAnnouncement = dyn Fn(Option<&AssetFailure>, u32) -> Option<Event> + Send + Sync;

/// Result of a conditional ledger write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    /// The write took effect.
    Recorded,
    /// An equal or newer fact was already there (replay, concurrent run).
    AlreadyRecorded,
    /// Refused: the asset is marked deleted and must not come back.
    AlreadyDeleted,
    /// Refused: the order is purged, so nothing of it is stored again.
    OrderPurged,
}

/// An order the sweep should visit (see `Ledger::open_orders`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOrder {
    pub order_id: OrderId,
    /// When the last sweep message was sent, if ever.
    pub swept_at: Option<String>,
}

/// What one sweep that KODE answered 404 did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepMiss {
    /// Misses in a row, this one included.
    pub misses: u32,
    /// The limit was reached: the order is no longer open.
    pub closed: bool,
}

/// What has been done for each order. Writes are conditional so that a
/// replay or a concurrent run can neither store twice nor resurrect.
#[async_trait]
pub trait Ledger: Send + Sync {
    /// Every asset record of the order (stored, deleted and failed).
    async fn order_assets(&self, order: OrderId) -> Result<Vec<AssetRecord>, StoreError>;

    async fn order(&self, order: OrderId) -> Result<Option<OrderRecord>, StoreError>;

    /// Records a stored asset, unless it is already recorded or deleted or
    /// its order is purged (checked in the same atomic write, so a purge
    /// running at the same time cannot be missed). Replaces a FAILED record.
    async fn record_stored(&self, record: &AssetRecord) -> Result<RecordOutcome, StoreError> {
        self.record_stored_announcing(record, None).await
    }

    /// [`Ledger::record_stored`], remembering `announce` in the same write
    /// when (and only when) the record takes effect.
    async fn record_stored_announcing(
        &self,
        record: &AssetRecord,
        announce: Option<&Event>,
    ) -> Result<RecordOutcome, StoreError>;

    /// Records a failed attempt: creates the FAILED record or counts one
    /// more attempt on it. Never overwrites a STORED or DELETED record.
    async fn record_failed(&self, attempt: &FailedAttempt) -> Result<FailedOutcome, StoreError> {
        self.record_failed_announcing(attempt, Arc::new(|_, _| None))
            .await
    }

    /// [`Ledger::record_failed`], remembering in the same write the event
    /// `announce` makes of the failure recorded before this attempt (`None`
    /// when the asset was not FAILED) and the attempts counted with it.
    async fn record_failed_announcing(
        &self,
        attempt: &FailedAttempt,
        announce: Arc<FailedAnnouncement>,
    ) -> Result<FailedOutcome, StoreError>;

    /// Marks an asset deleted (creating a tombstone if it was never stored;
    /// replacing a FAILED record).
    async fn mark_deleted(
        &self,
        order: OrderId,
        asset: &AssetId,
        at: &str,
    ) -> Result<RecordOutcome, StoreError> {
        self.mark_deleted_announcing(order, asset, at, None).await
    }

    /// [`Ledger::mark_deleted`], remembering `announce` in the same write
    /// when (and only when) a stored asset turns deleted: a tombstone has
    /// nothing to announce.
    async fn mark_deleted_announcing(
        &self,
        order: OrderId,
        asset: &AssetId,
        at: &str,
        announce: Option<&Event>,
    ) -> Result<RecordOutcome, StoreError>;

    /// Creates or updates the order record; set fields overwrite, `None`
    /// fields leave what is stored; `purged_at` and `finished_at` are kept
    /// once set.
    async fn upsert_order(&self, record: &OrderRecord) -> Result<(), StoreError>;

    /// Stores a distributor message once per (`id`, `event_action`).
    async fn record_message(&self, message: &MessageRecord) -> Result<RecordOutcome, StoreError> {
        self.record_message_announcing(message, None).await
    }

    /// [`Ledger::record_message`], remembering `announce` in the same write
    /// when (and only when) the message is new.
    async fn record_message_announcing(
        &self,
        message: &MessageRecord,
        announce: Option<&Event>,
    ) -> Result<RecordOutcome, StoreError>;

    /// Remembers an event to announce whose change is already durable, once
    /// per event id: `AlreadyRecorded` if it was remembered before (for
    /// [`crate::events::EventType::once_per_order`] types, even after it
    /// was sent).
    async fn record_announcement(&self, event: &Event) -> Result<RecordOutcome, StoreError>;

    /// What is still to announce in `scope`, oldest first. An order with
    /// announcements pending is not done: the sweep must keep it open.
    async fn pending_announcements(&self, scope: EventScope) -> Result<Vec<Event>, StoreError>;

    /// Clears an announcement once the bus or the delivery queue took it.
    async fn announcement_sent(&self, event: &Event, at: &str) -> Result<(), StoreError>;

    /// The orders the sweep visits at `now` (RFC 3339), by order id, without
    /// a scan: those whose `sweep_until` is not past and those held open,
    /// never a purged or closed one ("Open orders" in `docs/DESIGN.md`).
    async fn open_orders(&self, now: &str) -> Result<Vec<OpenOrder>, StoreError>;

    /// Keeps the order open for sweeps, whatever its status, until
    /// `release_hold` with the same `reason` (one hold per reason; holding
    /// twice is one hold). For work another part of the system still owes
    /// the order, e.g. a failed file or an event to announce.
    async fn hold_open(&self, order: OrderId, reason: &str) -> Result<(), StoreError>;

    /// Ends the hold `reason`; releasing a hold that is not there is fine.
    async fn release_hold(&self, order: OrderId, reason: &str) -> Result<(), StoreError>;

    /// Records that a sweep message for the order was sent at `at`.
    async fn mark_swept(&self, order: OrderId, at: &str) -> Result<(), StoreError>;

    /// Counts a sweep KODE answered 404; at `max_misses` in a row the order
    /// is closed: no longer open, whatever its status or holds, until a push
    /// sets `sweep_until` again.
    async fn sweep_missed(
        &self,
        order: OrderId,
        max_misses: u32,
        at: &str,
    ) -> Result<SweepMiss, StoreError>;

    /// KODE showed the order to a sweep: misses start again from zero.
    async fn sweep_found(&self, order: OrderId) -> Result<(), StoreError>;
}

/// A message for the FIFO queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub group: String,
    pub dedup_id: String,
    pub body: String,
}

/// The push queue (SQS FIFO; locally SQLite).
#[async_trait]
pub trait Queue: Send + Sync {
    /// Returns only once the message is durably accepted; returns the
    /// queue's message id.
    async fn send(&self, message: &OutgoingMessage) -> Result<String, StoreError>;
}
