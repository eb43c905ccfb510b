//! Storage ports and their adapters: `aws` (SQS, S3, DynamoDB) for the
//! Lambdas and `local` (SQLite, files on disk) for `kode serve`.
//!
//! Key layout and ledger records are described in `docs/DESIGN.md`.

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::api::ApiError;
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
    /// Not stored: every attempt so far failed (see [`AssetFailure`]). Tried
    /// again on later pushes; a success or a deletion replaces it.
    Failed,
}

/// Why a FAILED asset is not stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetFailure {
    /// The last attempt's error.
    pub reason: String,
    /// Failed attempts so far (at least 1).
    pub attempts: u32,
    /// RFC 3339.
    pub last_attempt_at: String,
    /// The last attempt failed for a reason that may pass (5xx, timeout,
    /// 429): such an asset is retried with its push and never parked.
    pub transient: bool,
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
    /// Set when `state` is `Failed`, absent otherwise.
    pub failure: Option<AssetFailure>,
}

/// One failed attempt to store an asset, as [`Ledger::record_failed`]
/// writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedAttempt {
    pub order_id: OrderId,
    pub asset_id: AssetId,
    pub reason: String,
    /// RFC 3339.
    pub at: String,
    pub transient: bool,
}

/// Result of [`Ledger::record_failed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedOutcome {
    /// The asset is FAILED with `attempts` failed attempts, this one included.
    Recorded { attempts: u32 },
    /// Stored or deleted meanwhile (a concurrent run): nothing written.
    Settled(AssetState),
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
    /// Refused: the order is purged, so nothing of it is stored again.
    OrderPurged,
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
    /// Every asset record of the order (stored, deleted and failed).
    async fn order_assets(&self, order: OrderId) -> Result<Vec<AssetRecord>, StoreError>;

    async fn order(&self, order: OrderId) -> Result<Option<OrderRecord>, StoreError>;

    /// Records a stored asset, unless it is already recorded or deleted or
    /// its order is purged (checked in the same atomic write, so a purge
    /// running at the same time cannot be missed). Replaces a FAILED record.
    async fn record_stored(&self, record: &AssetRecord) -> Result<RecordOutcome, StoreError>;

    /// Records a failed attempt: creates the FAILED record or counts one
    /// more attempt on it. Never overwrites a STORED or DELETED record.
    async fn record_failed(&self, attempt: &FailedAttempt) -> Result<FailedOutcome, StoreError>;

    /// Marks an asset deleted (creating a tombstone if it was never stored;
    /// replacing a FAILED record).
    async fn mark_deleted(
        &self,
        order: OrderId,
        asset: &AssetId,
        at: &str,
    ) -> Result<RecordOutcome, StoreError>;

    /// Creates or updates the order record; set fields overwrite, `None`
    /// fields leave what is stored; `purged_at` and `finished_at` are kept
    /// once set.
    async fn upsert_order(&self, record: &OrderRecord) -> Result<(), StoreError>;

    /// Stores a distributor message once per (`id`, `event_action`).
    async fn record_message(&self, message: &MessageRecord) -> Result<RecordOutcome, StoreError>;
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
