//! The ledger's items: keys and the mapping between records and DynamoDB
//! attributes (layout in `docs/DESIGN.md`, "Storage layout").

use std::collections::HashMap;
use std::str::FromStr;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::model::{
    recorded_text, AssetFailure, AssetRecord, AssetState, MessageRecord, ObjectKey, OrderRecord,
};
use crate::model::{AssetId, OrderId};
use crate::store::StoreError;

pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) const ORDER_SK: &str = "ORDER";
pub(super) const ASSET_PREFIX: &str = "ASSET#";
pub(super) const HOLD_PREFIX: &str = "HOLD#";

/// The sparse index of open orders: only items carrying [`OPEN_KEY`] (an
/// open order's `ORDER` item, and its holds) are in it, sorted by
/// [`OPEN_UNTIL`].
pub const OPEN_INDEX: &str = "open-orders";
pub(super) const OPEN_KEY: &str = "sweep";
pub(super) const OPEN_UNTIL: &str = "sweepUntil";
pub(super) const OPEN: &str = "OPEN";
const ORDER_PREFIX: &str = "ORDER#";
const MESSAGE_PREFIX: &str = "DISTMSG#";

pub(super) const STORED: &str = "STORED";
pub(super) const DELETED: &str = "DELETED";
pub(super) const FAILED: &str = "FAILED";

/// The attributes of a FAILED asset, removed when it is stored or deleted.
pub(super) const FAILURE_REASON: &str = "failureReason";
pub(super) const ATTEMPTS: &str = "attempts";
pub(super) const LAST_ATTEMPT_AT: &str = "lastAttemptAt";
pub(super) const FAILURE_TRANSIENT: &str = "failureTransient";

pub(super) fn order_pk(order: OrderId) -> String {
    format!("{ORDER_PREFIX}{order}")
}

pub(super) fn asset_sk(asset: &AssetId) -> String {
    format!("{ASSET_PREFIX}{asset}")
}

pub(super) fn hold_sk(reason: &str) -> String {
    format!("{HOLD_PREFIX}{reason}")
}

pub(super) fn message_pk(id: &str) -> String {
    format!("{MESSAGE_PREFIX}{id}")
}

pub(super) fn key(pk: String, sk: String) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk)),
        ("sk".to_owned(), AttributeValue::S(sk)),
    ])
}

pub(super) fn asset_item(record: &AssetRecord) -> Item {
    let mut item = key(order_pk(record.order_id), asset_sk(&record.asset_id));
    let state = match record.state {
        AssetState::Stored => STORED,
        AssetState::Deleted => DELETED,
        AssetState::Failed => FAILED,
    };
    put_s(&mut item, "state", Some(state));
    put_s(&mut item, "key", record.key.as_ref().map(ObjectKey::as_str));
    put_n(&mut item, "bytes", record.bytes);
    put_s(&mut item, "sha256", record.sha256.as_deref());
    put_s(&mut item, "contentType", record.content_type.as_deref());
    put_s(&mut item, "name", record.name.as_deref());
    put_s(&mut item, "category", record.category.as_deref());
    put_n(&mut item, "subOrderId", record.sub_order_id.map(|id| id.0));
    put_n(
        &mut item,
        "orderLineId",
        record.order_line_id.map(|id| id.0),
    );
    put_s(&mut item, "storedAt", record.stored_at.as_deref());
    put_s(&mut item, "deletedAt", record.deleted_at.as_deref());
    if let Some(failure) = &record.failure {
        put_s(&mut item, FAILURE_REASON, Some(&failure.reason));
        put_n(&mut item, ATTEMPTS, Some(u64::from(failure.attempts)));
        put_s(&mut item, LAST_ATTEMPT_AT, Some(&failure.last_attempt_at));
        item.insert(
            FAILURE_TRANSIENT.to_owned(),
            AttributeValue::Bool(failure.transient),
        );
    }
    item
}

pub(super) fn asset_record(item: &Item) -> Result<AssetRecord, StoreError> {
    let asset_id = string(item, "sk")?
        .and_then(|sk| sk.strip_prefix(ASSET_PREFIX).map(AssetId::from))
        .ok_or_else(|| malformed(item, "sk is not ASSET#<id>"))?;
    let state = match string(item, "state")?.as_deref() {
        Some(STORED) => AssetState::Stored,
        Some(DELETED) => AssetState::Deleted,
        Some(FAILED) => AssetState::Failed,
        _ => return Err(malformed(item, "state is not STORED, DELETED or FAILED")),
    };
    let failure = match string(item, FAILURE_REASON)? {
        Some(reason) if state == AssetState::Failed => Some(AssetFailure {
            reason,
            attempts: number(item, ATTEMPTS)?.unwrap_or(1),
            last_attempt_at: string(item, LAST_ATTEMPT_AT)?.unwrap_or_default(),
            transient: matches!(
                item.get(FAILURE_TRANSIENT),
                Some(AttributeValue::Bool(true))
            ),
        }),
        _ => None,
    };
    Ok(AssetRecord {
        order_id: order_id(item)?,
        asset_id,
        state,
        key: string(item, "key")?.map(ObjectKey),
        sub_order_id: number(item, "subOrderId")?.map(crate::model::SubOrderId),
        order_line_id: number(item, "orderLineId")?.map(crate::model::OrderLineId),
        bytes: number(item, "bytes")?,
        sha256: string(item, "sha256")?,
        content_type: string(item, "contentType")?,
        name: string(item, "name")?,
        category: string(item, "category")?,
        stored_at: string(item, "storedAt")?,
        deleted_at: string(item, "deletedAt")?,
        failure,
    })
}

pub(super) fn order_record(item: &Item) -> Result<OrderRecord, StoreError> {
    Ok(OrderRecord {
        order_id: Some(order_id(item)?),
        last_status: string(item, "lastStatus")?,
        reference: string(item, "reference")?,
        technical_reference: string(item, "technicalReference")?,
        finished_at: string(item, "finishedAt")?,
        purged_at: string(item, "purgedAt")?,
        updated_at: string(item, "updatedAt")?,
        sweep_until: string(item, OPEN_UNTIL)?,
        swept_at: string(item, "sweptAt")?,
        sweep_misses: number(item, "sweepMisses")?.unwrap_or(0),
        sweep_closed_at: string(item, "sweepClosedAt")?,
    })
}

/// The order id of any item of an order (`ORDER#<id>`).
pub(super) fn item_order_id(item: &Item) -> Result<OrderId, StoreError> {
    order_id(item)
}

pub(super) fn message_item(message: &MessageRecord) -> Item {
    let mut item = key(message_pk(&message.id), message.event_action.clone());
    put_s(&mut item, "messageType", Some(&message.message_type));
    put_s(&mut item, "message", Some(&message.message));
    put_s(
        &mut item,
        "municipalityName",
        message.municipality_name.as_deref(),
    );
    put_s(
        &mut item,
        "municipalityNumber",
        message.municipality_number.as_deref(),
    );
    put_s(
        &mut item,
        "organizationCode",
        message.organization_code.as_deref(),
    );
    put_s(&mut item, "dateCreated", message.date_created.as_deref());
    put_s(&mut item, "receivedAt", Some(&message.received_at));
    item
}

/// DynamoDB refuses empty strings in key attributes only, but an empty value
/// carries nothing: leave it out like `None`.
fn put_s(item: &mut Item, name: &str, value: Option<&str>) {
    if let Some(value) = recorded_text(value) {
        item.insert(name.to_owned(), AttributeValue::S(value.to_owned()));
    }
}

fn put_n(item: &mut Item, name: &str, value: Option<u64>) {
    if let Some(value) = value {
        item.insert(name.to_owned(), AttributeValue::N(value.to_string()));
    }
}

fn order_id(item: &Item) -> Result<OrderId, StoreError> {
    string(item, "pk")?
        .and_then(|pk| pk.strip_prefix(ORDER_PREFIX).and_then(|id| id.parse().ok()))
        .map(OrderId)
        .ok_or_else(|| malformed(item, "pk is not ORDER#<number>"))
}

fn string(item: &Item, name: &str) -> Result<Option<String>, StoreError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::S(value)) => Ok(Some(value.clone())),
        Some(_) => Err(malformed(item, &format!("{name} is not a string"))),
    }
}

fn number<T: FromStr>(item: &Item, name: &str) -> Result<Option<T>, StoreError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::N(value)) => value
            .parse()
            .map(Some)
            .map_err(|_| malformed(item, &format!("{name} is not a whole number"))),
        Some(_) => Err(malformed(item, &format!("{name} is not a number"))),
    }
}

fn malformed(item: &Item, problem: &str) -> StoreError {
    let describe = |name: &str| match item.get(name) {
        Some(AttributeValue::S(value)) => value.as_str(),
        _ => "?",
    };
    StoreError::Permanent(format!(
        "ledger item {}/{} is malformed: {problem}",
        describe("pk"),
        describe("sk")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{OrderLineId, SubOrderId};

    fn stored() -> AssetRecord {
        AssetRecord {
            order_id: OrderId(77),
            asset_id: AssetId::from("a#1"),
            state: AssetState::Stored,
            key: Some(ObjectKey("orders/77/a#1/Målebrev.pdf".into())),
            sub_order_id: Some(SubOrderId(5)),
            order_line_id: Some(OrderLineId(6)),
            bytes: Some(12345),
            sha256: Some("ab".repeat(32)),
            content_type: Some("application/pdf".into()),
            name: Some("Målebrev.pdf".into()),
            category: Some("Kart".into()),
            stored_at: Some("2024-05-01T10:00:00Z".into()),
            deleted_at: None,
            failure: None,
        }
    }

    #[test]
    fn asset_records_round_trip_through_items() {
        let record = stored();
        let item = asset_item(&record);
        assert_eq!(item["pk"], AttributeValue::S("ORDER#77".into()));
        assert_eq!(item["sk"], AttributeValue::S("ASSET#a#1".into()));
        assert_eq!(item["state"], AttributeValue::S("STORED".into()));
        assert_eq!(item["bytes"], AttributeValue::N("12345".into()));
        assert!(!item.contains_key("deletedAt"));
        assert_eq!(asset_record(&item).unwrap(), record);
    }

    #[test]
    fn failed_records_round_trip_with_their_failure() {
        let record = AssetRecord {
            state: AssetState::Failed,
            key: None,
            bytes: None,
            sha256: None,
            stored_at: None,
            failure: Some(AssetFailure {
                reason: "KODE answered 404".into(),
                attempts: 3,
                last_attempt_at: "2024-05-02T10:00:00Z".into(),
                transient: true,
            }),
            ..stored()
        };
        let item = asset_item(&record);
        assert_eq!(item["state"], AttributeValue::S("FAILED".into()));
        assert_eq!(item["attempts"], AttributeValue::N("3".into()));
        assert_eq!(asset_record(&item).unwrap(), record);
    }

    #[test]
    fn an_item_with_an_unknown_state_is_reported_not_guessed() {
        let mut item = asset_item(&stored());
        item.insert("state".into(), AttributeValue::S("MAYBE".into()));
        let err = asset_record(&item).unwrap_err();
        assert!(err.to_string().contains("ORDER#77/ASSET#a#1"), "{err}");
        assert!(!err.is_retryable());
    }

    #[test]
    fn order_items_read_back_with_their_order_id() {
        let mut item = key(order_pk(OrderId(9)), ORDER_SK.to_owned());
        item.insert("lastStatus".into(), AttributeValue::S("FINISHED".into()));
        let record = order_record(&item).unwrap();
        assert_eq!(record.order_id, Some(OrderId(9)));
        assert_eq!(record.last_status.as_deref(), Some("FINISHED"));
        assert_eq!(record.finished_at, None);
    }
}
