//! The ledger's values: what is recorded for each stored file, order and
//! distributor message, and the object key it lives under. Plain data, shared
//! by the sync rules that decide and the stores that persist.

use serde::{Deserialize, Serialize};

use super::{AssetId, OrderId, OrderLineId, SubOrderId};

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

impl AssetRecord {
    /// What `record_stored` accepts: a STORED record naming the key its
    /// file is under. Every ledger refuses anything else.
    pub fn is_storable(&self) -> bool {
        self.state == AssetState::Stored && self.key.as_ref().is_some_and(|k| !k.0.is_empty())
    }
}

/// A text value as every ledger records it: an empty string carries nothing
/// and reads back as absent.
pub fn recorded_text(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.is_empty())
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
    /// The sweep visits the order while this is at or after now (UTC,
    /// `YYYY-MM-DDTHH:MM:SSZ`, see `crate::sweep`). `upsert_order` sets
    /// it when given (which also clears misses and a closure) and removes it
    /// once the order is purged.
    pub sweep_until: Option<String>,
    /// When the last sweep message was sent (written by `mark_swept`).
    pub swept_at: Option<String>,
    /// Sweeps in a row that KODE answered 404 (written by `sweep_missed`).
    pub sweep_misses: u32,
    /// When the sweep gave the order up: KODE no longer knows it.
    pub sweep_closed_at: Option<String>,
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

/// `sweep_until` of an order open with no end (any status but FINISHED,
/// CANCELLED and REFUNDED): later than every real time, in the same format.
pub const OPEN_FOREVER: &str = "9999-12-31T23:59:59Z";

/// A time in the one format `sweep_until` is compared in (whole seconds,
/// UTC), so that comparing the strings compares the times.
pub fn stamp(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
