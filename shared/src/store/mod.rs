//! Storage ports and their adapters: `aws` (SQS, S3, DynamoDB) for the
//! Lambdas and `local` (SQLite, files on disk) for `kode serve`.
//!
//! Key layout and ledger records are described in `docs/DESIGN.md`.

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::api::ApiError;
use crate::events::{Event, EventScope};
use crate::model::{AssetId, OrderId, OrderLineId, SubOrderId};

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

/// The object key `orders/{orderId}/{assetId}/{safe filename}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ObjectKey(pub String);

impl ObjectKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What is stored beside the content (S3 user metadata; locally the ledger).
/// The SHA-256 is only known once the body has been read, so adapters add it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub order_id: OrderId,
    pub sub_order_id: SubOrderId,
    pub order_line_id: Option<OrderLineId>,
    pub asset_id: AssetId,
    pub product_category: Option<String>,
    pub original_name: String,
    pub content_type: Option<String>,
}

/// A stream of body chunks. Implemented by the KODE download, which checks
/// length, size cap and completeness and fails instead of ending early.
#[async_trait]
pub trait ChunkSource: Send {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, ApiError>;

    /// The announced content type, if any (never trusted for anything but
    /// metadata).
    fn content_type(&self) -> Option<&str> {
        None
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
    Source(#[from] ApiError),
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

    async fn exists(&self, key: &ObjectKey) -> Result<bool, StoreError>;
}

/// State of one asset in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AssetState {
    Stored,
    Deleted,
}

/// `ORDER#<id>` / `ASSET#<assetId>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetRecord {
    pub order_id: OrderId,
    pub asset_id: AssetId,
    pub state: AssetState,
    /// Absent for a tombstone of an asset that was never stored.
    pub key: Option<ObjectKey>,
    pub sub_order_id: Option<SubOrderId>,
    pub order_line_id: Option<OrderLineId>,
    pub bytes: Option<u64>,
    pub sha256: Option<String>,
    pub content_type: Option<String>,
    pub name: Option<String>,
    pub category: Option<String>,
    /// RFC 3339.
    pub stored_at: Option<String>,
    pub deleted_at: Option<String>,
}

/// Result of a conditional ledger write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    /// The write took effect.
    Recorded,
    /// An equal or newer fact was already there (replay, concurrent run).
    AlreadyRecorded,
    /// Refused: the asset is marked deleted and must not come back.
    AlreadyDeleted,
}

/// `ORDER#<id>` / `ORDER`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OrderRecord {
    pub order_id: Option<OrderId>,
    pub last_status: Option<String>,
    pub reference: Option<String>,
    pub technical_reference: Option<String>,
    /// RFC 3339 times.
    pub finished_at: Option<String>,
    pub purged_at: Option<String>,
    pub updated_at: Option<String>,
}

/// `DISTMSG#<id>` / `<eventAction>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub id: String,
    pub event_action: String,
    pub message_type: String,
    pub message: String,
    pub municipality_name: Option<String>,
    pub municipality_number: Option<String>,
    pub organization_code: Option<String>,
    pub date_created: Option<String>,
    pub received_at: String,
}

/// What has been done for each order. Writes are conditional so that a
/// replay or a concurrent run can neither store twice nor resurrect.
#[async_trait]
pub trait Ledger: Send + Sync {
    /// Every asset record of the order (stored and deleted).
    async fn order_assets(&self, order: OrderId) -> Result<Vec<AssetRecord>, StoreError>;

    async fn order(&self, order: OrderId) -> Result<Option<OrderRecord>, StoreError>;

    /// Records a stored asset, unless it is already recorded or deleted.
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

    /// Marks an asset deleted (creating a tombstone if it was never stored).
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
