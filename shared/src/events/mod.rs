//! Downstream events: what kode-push tells the systems that use the files.
//! Pure data, the same in both runtimes: the processor puts them on
//! EventBridge, `kode serve` posts them as signed webhooks (see
//! [`crate::announce`]). One JSON Schema per type is in `docs/events/`.
//!
//! Every event has a stable id derived from what it announces, so a
//! consumer can drop the duplicates that at-least-once delivery brings.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{AssetId, DistributorMessage, OrderId, OrderLineId, SubOrderId};
use crate::model::{AssetRecord, ObjectKey};

mod announcer;
#[cfg(test)]
mod tests;

pub use announcer::{AnnounceError, Announcer};

/// At most this many keys are listed in `order.completed` and
/// `order.purged`, which keeps them far below EventBridge's 256 KB.
pub const MAX_KEYS: usize = 100;

/// The EventBridge `source` of every event.
pub const SOURCE: &str = "kode-push";

/// A stable event id, e.g. `2345678:<assetId>:stored`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub String);

impl EventId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kinds of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    AssetStored,
    AssetDeleted,
    AssetFailed,
    OrderCompleted,
    OrderPurged,
    DistributorMessage,
}

impl EventType {
    pub const ALL: [EventType; 6] = [
        EventType::AssetStored,
        EventType::AssetDeleted,
        EventType::AssetFailed,
        EventType::OrderCompleted,
        EventType::OrderPurged,
        EventType::DistributorMessage,
    ];

    /// The webhook `type`, and the schema's file name in `docs/events/`.
    pub fn name(self) -> &'static str {
        match self {
            EventType::AssetStored => "asset.stored",
            EventType::AssetDeleted => "asset.deleted",
            EventType::AssetFailed => "asset.failed",
            EventType::OrderCompleted => "order.completed",
            EventType::OrderPurged => "order.purged",
            EventType::DistributorMessage => "distributor.message",
        }
    }

    /// The EventBridge `detail-type`.
    pub fn detail_type(self) -> &'static str {
        match self {
            EventType::AssetStored => "Asset Stored",
            EventType::AssetDeleted => "Asset Deleted",
            EventType::AssetFailed => "Asset Failed",
            EventType::OrderCompleted => "Order Completed",
            EventType::OrderPurged => "Order Purged",
            EventType::DistributorMessage => "Distributor Message",
        }
    }

    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Said once per order, however often the order is synced later: the
    /// ledger keeps these after sending as the record that they were said.
    /// The others are once by nature (an asset is stored or deleted once).
    pub fn once_per_order(self) -> bool {
        matches!(self, EventType::OrderCompleted | EventType::OrderPurged)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the ledger keeps an event until it is announced: with its order,
/// or (distributor messages) in one place of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventScope {
    Order(OrderId),
    Distributor,
}

/// One event: what happened, when, and its stable id.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: EventId,
    /// RFC 3339: when the change it reports happened.
    pub timestamp: String,
    pub data: EventData,
}

/// The `data` of each type (the EventBridge `detail`, without `eventId`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum EventData {
    #[serde(rename = "asset.stored")]
    AssetStored(AssetStored),
    #[serde(rename = "asset.deleted")]
    AssetDeleted(AssetDeleted),
    #[serde(rename = "asset.failed")]
    AssetFailed(AssetFailed),
    #[serde(rename = "order.completed")]
    OrderCompleted(OrderCompleted),
    #[serde(rename = "order.purged")]
    OrderPurged(OrderPurged),
    /// The message as received (flattened from KODE's either nesting).
    #[serde(rename = "distributor.message")]
    DistributorMessage(Value),
}

/// A file is stored: under `key` in `bucket` (AWS) or under the data
/// directory's `assets/` (`kode serve`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssetStored {
    pub order_id: OrderId,
    pub asset_id: AssetId,
    pub key: ObjectKey,
    pub bytes: u64,
    /// Lower-case hex SHA-256 of the stored content.
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The file name as KODE sent it.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_order_id: Option<SubOrderId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_line_id: Option<OrderLineId>,
    /// The order's reference (the customer's case number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// AWS only: the asset bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
}

/// A stored file was withdrawn and removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssetDeleted {
    pub order_id: OrderId,
    pub asset_id: AssetId,
    pub key: ObjectKey,
}

/// A file could not be stored and has been given up on for now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssetFailed {
    pub order_id: OrderId,
    pub asset_id: AssetId,
    pub reason: String,
    pub attempts: u32,
}

/// The order is FINISHED and every `OK` file is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderCompleted {
    pub order_id: OrderId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// How many files the order has stored.
    pub files: u64,
    /// The first [`MAX_KEYS`] of their keys, sorted.
    pub keys: Vec<ObjectKey>,
}

/// The order was cancelled or refunded and its files removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderPurged {
    pub order_id: OrderId,
    /// `CANCELLED` or `REFUNDED`.
    pub status: String,
    /// How many stored files the purge removed.
    pub files: u64,
    /// The first [`MAX_KEYS`] of their keys, sorted.
    pub keys: Vec<ObjectKey>,
}

impl Event {
    pub fn event_type(&self) -> EventType {
        match &self.data {
            EventData::AssetStored(_) => EventType::AssetStored,
            EventData::AssetDeleted(_) => EventType::AssetDeleted,
            EventData::AssetFailed(_) => EventType::AssetFailed,
            EventData::OrderCompleted(_) => EventType::OrderCompleted,
            EventData::OrderPurged(_) => EventType::OrderPurged,
            EventData::DistributorMessage(_) => EventType::DistributorMessage,
        }
    }

    pub fn scope(&self) -> EventScope {
        let order = match &self.data {
            EventData::AssetStored(d) => d.order_id,
            EventData::AssetDeleted(d) => d.order_id,
            EventData::AssetFailed(d) => d.order_id,
            EventData::OrderCompleted(d) => d.order_id,
            EventData::OrderPurged(d) => d.order_id,
            EventData::DistributorMessage(_) => return EventScope::Distributor,
        };
        EventScope::Order(order)
    }

    /// The `data` (EventBridge `detail`): the type's fields plus `eventId`,
    /// so that consumers of either runtime can drop duplicates.
    pub fn data_json(&self) -> Value {
        let mut data = match serde_json::to_value(&self.data) {
            Ok(Value::Object(mut tagged)) => tagged.remove("data").unwrap_or(Value::Null),
            // Plain structs of strings and numbers always serialize.
            _ => Value::Null,
        };
        if let Value::Object(fields) = &mut data {
            fields.insert("eventId".into(), Value::String(self.id.0.clone()));
        }
        data
    }

    /// The webhook body: `{"type", "timestamp", "data"}`.
    pub fn webhook_body(&self) -> String {
        serde_json::json!({
            "type": self.event_type().name(),
            "timestamp": self.timestamp,
            "data": self.data_json(),
        })
        .to_string()
    }

    /// Reads an event back from its `type`, `timestamp` and `data` as the
    /// ledger keeps them.
    pub fn from_parts(
        id: &str,
        event_type: &str,
        timestamp: &str,
        data: &str,
    ) -> Result<Event, serde_json::Error> {
        let data: Value = serde_json::from_str(data)?;
        let data: EventData =
            serde_json::from_value(serde_json::json!({"type": event_type, "data": data}))?;
        Ok(Event {
            id: EventId(id.to_owned()),
            timestamp: timestamp.to_owned(),
            data,
        })
    }
}

/// `asset.stored` for a recorded file; `None` for a record without key or
/// digest (never written by the processor).
pub fn asset_stored(
    record: &AssetRecord,
    reference: Option<&str>,
    bucket: Option<&str>,
    at: &str,
) -> Option<Event> {
    let data = AssetStored {
        order_id: record.order_id,
        asset_id: record.asset_id.clone(),
        key: record.key.clone()?,
        bytes: record.bytes?,
        sha256: record.sha256.clone()?,
        content_type: record.content_type.clone(),
        name: record.name.clone().unwrap_or_default(),
        category: record.category.clone(),
        sub_order_id: record.sub_order_id,
        order_line_id: record.order_line_id,
        reference: reference.map(str::to_owned),
        bucket: bucket.map(str::to_owned),
    };
    Some(Event {
        id: asset_event_id(record.order_id, &record.asset_id, "stored"),
        timestamp: record.stored_at.clone().unwrap_or_else(|| at.to_owned()),
        data: EventData::AssetStored(data),
    })
}

pub fn asset_deleted(order: OrderId, asset: &AssetId, key: &ObjectKey, at: &str) -> Event {
    Event {
        id: asset_event_id(order, asset, "deleted"),
        timestamp: at.to_owned(),
        data: EventData::AssetDeleted(AssetDeleted {
            order_id: order,
            asset_id: asset.clone(),
            key: key.clone(),
        }),
    }
}

/// `asset.failed`. `failed_at` is when the asset turned FAILED as the
/// ledger records it: part of the id, so a later failure (after the file
/// was stored or parked in between) is a new event, while announcing the
/// same failure again is a duplicate consumers can drop.
pub fn asset_failed(
    order: OrderId,
    asset: &AssetId,
    reason: &str,
    attempts: u32,
    failed_at: &str,
) -> Event {
    Event {
        id: EventId(format!("{order}:{asset}:failed:{failed_at}")),
        timestamp: failed_at.to_owned(),
        data: EventData::AssetFailed(AssetFailed {
            order_id: order,
            asset_id: asset.clone(),
            reason: reason.to_owned(),
            attempts,
        }),
    }
}

/// `order.completed`, listing the first [`MAX_KEYS`] keys of `stored`.
pub fn order_completed(
    order: OrderId,
    reference: Option<&str>,
    stored: &[ObjectKey],
    at: &str,
) -> Event {
    let (files, keys) = first_keys(stored);
    Event {
        id: EventId(format!("{order}:completed")),
        timestamp: at.to_owned(),
        data: EventData::OrderCompleted(OrderCompleted {
            order_id: order,
            reference: reference.map(str::to_owned),
            files,
            keys,
        }),
    }
}

/// `order.purged`, listing the first [`MAX_KEYS`] keys of `removed`.
pub fn order_purged(order: OrderId, status: &str, removed: &[ObjectKey], at: &str) -> Event {
    let (files, keys) = first_keys(removed);
    Event {
        id: EventId(format!("{order}:purged")),
        timestamp: at.to_owned(),
        data: EventData::OrderPurged(OrderPurged {
            order_id: order,
            status: status.to_owned(),
            files,
            keys,
        }),
    }
}

/// `distributor.message`: the message as received, once per (`id`,
/// `eventAction`), like the ledger's record of it.
pub fn distributor_message(message: &DistributorMessage, received_at: &str) -> Event {
    Event {
        id: EventId(format!(
            "distributor:{}:{}",
            message.id, message.event_action
        )),
        timestamp: received_at.to_owned(),
        // A struct of strings: serializing it cannot fail.
        data: EventData::DistributorMessage(serde_json::to_value(message).unwrap_or(Value::Null)),
    }
}

fn asset_event_id(order: OrderId, asset: &AssetId, what: &str) -> EventId {
    EventId(format!("{order}:{asset}:{what}"))
}

fn first_keys(keys: &[ObjectKey]) -> (u64, Vec<ObjectKey>) {
    let mut sorted = keys.to_vec();
    sorted.sort();
    sorted.truncate(MAX_KEYS);
    (keys.len() as u64, sorted)
}
