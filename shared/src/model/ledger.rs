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
