//! Announcements in the ledger table: `ORDER#<id>`/`EVENT#<eventId>` (or
//! `EVENTS#DISTRIBUTOR`/`EVENT#<eventId>` for distributor messages), each
//! written in one transaction with the change it reports.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};

use super::items::{self, Item, DELETED, OPEN, OPEN_KEY, OPEN_UNTIL};
use super::{applied, classify, DynamoLedger};
use crate::events::{Event, EventScope};
use crate::model::{AssetId, OrderId, OPEN_FOREVER};
use crate::store::{RecordOutcome, StoreError};

const EVENT_PREFIX: &str = "EVENT#";

fn pk(scope: EventScope) -> String {
    match scope {
        EventScope::Order(order) => items::order_pk(order),
        EventScope::Distributor => "EVENTS#DISTRIBUTOR".to_owned(),
    }
}

fn item(event: &Event) -> Item {
    let mut data = event.data_json();
    if let Some(fields) = data.as_object_mut() {
        // The id is in the sort key.
        fields.remove("eventId");
    }
    let mut item = items::key(pk(event.scope()), format!("{EVENT_PREFIX}{}", event.id));
    for (name, value) in [
        ("eventType", event.event_type().name().to_owned()),
        ("timestamp", event.timestamp.clone()),
        ("data", data.to_string()),
    ] {
        item.insert(name.to_owned(), AttributeValue::S(value));
    }
    if let EventScope::Order(_) = event.scope() {
        // Pending, the item itself is in the open-order index: the order
        // stays open for the sweep from the very write that recorded it.
        item.insert(OPEN_KEY.to_owned(), AttributeValue::S(OPEN.into()));
        item.insert(
            OPEN_UNTIL.to_owned(),
            AttributeValue::S(OPEN_FOREVER.into()),
        );
    }
    item
}

/// Whether an item of the open-order index is an announcement still to
/// make (which keeps even a purged or closed order on the sweep's list).
pub(super) fn is_announcement(sk: &str) -> bool {
    sk.starts_with(EVENT_PREFIX)
}

fn event(item: &Item) -> Result<Event, StoreError> {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value.as_str()),
        _ => Err(StoreError::Permanent(format!(
            "announcement item lacks {name}"
        ))),
    };
    let id = text("sk")?.trim_start_matches(EVENT_PREFIX);
    Event::from_parts(id, text("eventType")?, text("timestamp")?, text("data")?)
        .map_err(|e| StoreError::Permanent(format!("announcement {id} cannot be read: {e}")))
}

impl DynamoLedger {
    pub(super) fn put(
        &self,
        item: Item,
        condition: Option<&str>,
        what: Option<&str>,
    ) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_owned))
            .build()
            .map_err(|e| StoreError::Permanent(format!("{}: {e}", what.unwrap_or("Put"))))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The announcement of `event`, to put in a transaction of one's own.
    pub(super) fn announcement_put(
        &self,
        event: &Event,
        what: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        self.put(item(event), None, Some(what))
    }

    /// Writes `change` and the announcement of `event`, if any, in one
    /// transaction; `false` when the change's condition failed (nothing
    /// written). The announcement item is put unconditionally: it only
    /// exists because of this change, so an equal one can only be this
    /// write's replay.
    pub(super) async fn write_announcing(
        &self,
        change: TransactWriteItem,
        event: Option<&Event>,
        what: &str,
    ) -> Result<bool, StoreError> {
        let mut transaction = self.client.transact_write_items().transact_items(change);
        if let Some(event) = event {
            transaction = transaction.transact_items(self.put(item(event), None, Some(what))?);
        }
        let result = transaction.send().await;
        match result {
            Ok(_) => Ok(true),
            Err(err) => {
                let condition_failed = matches!(
                    err.as_service_error(),
                    Some(TransactWriteItemsError::TransactionCanceledException(e))
                        if e.cancellation_reasons().first().and_then(|r| r.code())
                            == Some("ConditionalCheckFailed")
                );
                if condition_failed {
                    Ok(false)
                } else {
                    Err(classify(&format!("TransactWriteItems {what}"), err))
                }
            }
        }
    }

    /// Marks a stored asset deleted and remembers `event`; `false` if the
    /// asset is not stored (missing or already deleted): nothing written.
    pub(super) async fn delete_announcing(
        &self,
        order: OrderId,
        asset: &AssetId,
        at: &str,
        event: &Event,
    ) -> Result<bool, StoreError> {
        let (pk, sk) = (items::order_pk(order), items::asset_sk(asset));
        let what = format!("{pk}/{sk} (delete)");
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(items::key(pk, sk)))
            .update_expression("SET #state = :deleted, #deletedAt = :at")
            .condition_expression("attribute_exists(pk) AND #state <> :deleted")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#deletedAt", "deletedAt")
            .expression_attribute_values(":deleted", AttributeValue::S(DELETED.into()))
            .expression_attribute_values(":at", AttributeValue::S(at.to_owned()))
            .build()
            .map_err(|e| StoreError::Permanent(format!("{what}: {e}")))?;
        let change = TransactWriteItem::builder().update(update).build();
        self.write_announcing(change, Some(event), &what).await
    }

    pub(super) async fn remember(&self, event: &Event) -> Result<RecordOutcome, StoreError> {
        let what = format!("PutItem {}/{EVENT_PREFIX}{}", pk(event.scope()), event.id);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item(event)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        Ok(if applied(result, &what)? {
            RecordOutcome::Recorded
        } else {
            RecordOutcome::AlreadyRecorded
        })
    }

    pub(super) async fn pending(&self, scope: EventScope) -> Result<Vec<Event>, StoreError> {
        let pk = pk(scope);
        let mut events = Vec::new();
        let mut start_key = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .filter_expression("attribute_not_exists(sentAt)")
                .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
                .expression_attribute_values(":prefix", AttributeValue::S(EVENT_PREFIX.into()))
                .consistent_read(true)
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|e| classify(&format!("Query {pk} announcements"), e))?;
            for item in output.items() {
                events.push(event(item)?);
            }
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start_key = Some(key),
                _ => break,
            }
        }
        // Items come by id; announce in the order the changes happened.
        events.sort_by_key(|e| e.timestamp.parse::<jiff::Timestamp>().ok());
        Ok(events)
    }

    pub(super) async fn sent(&self, event: &Event, at: &str) -> Result<(), StoreError> {
        let key = items::key(pk(event.scope()), format!("{EVENT_PREFIX}{}", event.id));
        let what = format!("announcement {} sent", event.id);
        if event.event_type().once_per_order() {
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key))
                .update_expression("SET sentAt = :at REMOVE #sweep, #until")
                .expression_attribute_names("#sweep", OPEN_KEY)
                .expression_attribute_names("#until", OPEN_UNTIL)
                .expression_attribute_values(":at", AttributeValue::S(at.to_owned()))
                .send()
                .await
                .map_err(|e| classify(&what, e))?;
        } else {
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key))
                .send()
                .await
                .map_err(|e| classify(&what, e))?;
        }
        Ok(())
    }
}
