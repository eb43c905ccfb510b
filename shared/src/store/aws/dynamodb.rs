//! [`Ledger`] on one DynamoDB table with string keys `pk`/`sk`.
//!
//! Every write that could conflict is conditional, so a redelivered push or
//! a concurrent run can neither record an asset twice nor bring back one that
//! was deleted. Reads are strongly consistent: the processor decides what to
//! download from them right after a previous run's writes.

mod announcements;
mod items;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;

use super::sdk_error::classify;
use crate::events::{Event, EventScope};
use crate::model::{AssetId, OrderId};
use crate::store::{
    AssetRecord, AssetState, Ledger, MessageRecord, OrderRecord, RecordOutcome, StoreError,
};
use items::{ASSET_PREFIX, DELETED, ORDER_SK};

/// The ledger table. Cheap to clone (the client is shared).
#[derive(Debug, Clone)]
pub struct DynamoLedger {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoLedger {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoLedger {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    async fn get(&self, pk: String, sk: String) -> Result<Option<items::Item>, StoreError> {
        let what = format!("GetItem {pk}/{sk}");
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(items::key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(&what, e))?;
        Ok(output.item)
    }
}

#[async_trait]
impl Ledger for DynamoLedger {
    async fn order_assets(&self, order: OrderId) -> Result<Vec<AssetRecord>, StoreError> {
        let pk = items::order_pk(order);
        let mut records = Vec::new();
        let mut start_key = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
                .expression_attribute_values(":prefix", AttributeValue::S(ASSET_PREFIX.into()))
                .consistent_read(true)
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|e| classify(&format!("Query {pk} assets"), e))?;
            for item in output.items() {
                records.push(items::asset_record(item)?);
            }
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start_key = Some(key),
                _ => return Ok(records),
            }
        }
    }

    async fn order(&self, order: OrderId) -> Result<Option<OrderRecord>, StoreError> {
        self.get(items::order_pk(order), ORDER_SK.to_owned())
            .await?
            .map(|item| items::order_record(&item))
            .transpose()
    }

    async fn record_stored_announcing(
        &self,
        record: &AssetRecord,
        announce: Option<&Event>,
    ) -> Result<RecordOutcome, StoreError> {
        if record.state != AssetState::Stored || record.key.is_none() {
            return Err(StoreError::Permanent(format!(
                "record_stored needs a STORED record with a key (order {}, asset {})",
                record.order_id, record.asset_id
            )));
        }
        let item = items::asset_item(record);
        let what = format!(
            "PutItem ORDER#{}/ASSET#{}",
            record.order_id, record.asset_id
        );
        let recorded = match announce {
            None => {
                let result = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(pk)")
                    .send()
                    .await;
                applied(result, &what)?
            }
            Some(event) => {
                let put = self.put(item, Some("attribute_not_exists(pk)"), None)?;
                self.write_announcing(put, event, &what).await?
            }
        };
        if recorded {
            return Ok(RecordOutcome::Recorded);
        }
        let existing = self
            .get(
                items::order_pk(record.order_id),
                items::asset_sk(&record.asset_id),
            )
            .await?;
        match existing
            .map(|item| items::asset_record(&item))
            .transpose()?
        {
            Some(existing) if existing.state == AssetState::Deleted => {
                Ok(RecordOutcome::AlreadyDeleted)
            }
            Some(_) => Ok(RecordOutcome::AlreadyRecorded),
            // Ledger items are never removed, so this is a race we
            // cannot explain: let a later attempt look again.
            None => Err(StoreError::Unavailable(format!(
                "{what}: condition failed but the item is gone"
            ))),
        }
    }

    async fn mark_deleted_announcing(
        &self,
        order: OrderId,
        asset: &AssetId,
        at: &str,
        announce: Option<&Event>,
    ) -> Result<RecordOutcome, StoreError> {
        if let Some(event) = announce {
            if self.delete_announcing(order, asset, at, event).await? {
                return Ok(RecordOutcome::Recorded);
            }
            // Not a stored asset: already deleted, or a tombstone to create
            // (which announces nothing).
        }
        let pk = items::order_pk(order);
        let sk = items::asset_sk(asset);
        let what = format!("UpdateItem {pk}/{sk} (delete)");
        // An update creates the item when it is missing: that is the
        // tombstone which keeps a never-stored asset from being stored later.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(items::key(pk, sk)))
            .update_expression("SET #state = :deleted, #deletedAt = :at")
            .condition_expression("attribute_not_exists(pk) OR #state <> :deleted")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#deletedAt", "deletedAt")
            .expression_attribute_values(":deleted", AttributeValue::S(DELETED.into()))
            .expression_attribute_values(":at", AttributeValue::S(at.to_owned()))
            .send()
            .await;
        Ok(if applied(result, &what)? {
            RecordOutcome::Recorded
        } else {
            RecordOutcome::AlreadyRecorded
        })
    }

    async fn upsert_order(&self, record: &OrderRecord) -> Result<(), StoreError> {
        let Some(order) = record.order_id else {
            return Err(StoreError::Permanent(
                "upsert_order needs an order id".to_owned(),
            ));
        };
        let pk = items::order_pk(order);
        let what = format!("UpdateItem {pk}/{ORDER_SK}");
        // (attribute, value, kept once set)
        let fields = [
            ("orderId", Some(AttributeValue::N(order.to_string())), false),
            ("lastStatus", text(&record.last_status), false),
            ("reference", text(&record.reference), false),
            (
                "technicalReference",
                text(&record.technical_reference),
                false,
            ),
            ("updatedAt", text(&record.updated_at), false),
            ("finishedAt", text(&record.finished_at), true),
            ("purgedAt", text(&record.purged_at), true),
        ];
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(items::key(pk, ORDER_SK.to_owned())));
        let mut assignments = Vec::new();
        for (i, (attribute, value, kept)) in fields.into_iter().enumerate() {
            let Some(value) = value else { continue };
            let (name, placeholder) = (format!("#a{i}"), format!(":v{i}"));
            assignments.push(if kept {
                format!("{name} = if_not_exists({name}, {placeholder})")
            } else {
                format!("{name} = {placeholder}")
            });
            request = request
                .expression_attribute_names(name, attribute)
                .expression_attribute_values(placeholder, value);
        }
        request
            .update_expression(format!("SET {}", assignments.join(", ")))
            .send()
            .await
            .map_err(|e| classify(&what, e))?;
        Ok(())
    }

    async fn record_message_announcing(
        &self,
        message: &MessageRecord,
        announce: Option<&Event>,
    ) -> Result<RecordOutcome, StoreError> {
        let what = format!(
            "PutItem {}/{}",
            items::message_pk(&message.id),
            message.event_action
        );
        if message.id.is_empty() || message.event_action.is_empty() {
            return Err(StoreError::Permanent(format!(
                "{what}: a distributor message needs an id and an event action"
            )));
        }
        let item = items::message_item(message);
        let recorded = match announce {
            None => {
                let result = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(pk)")
                    .send()
                    .await;
                applied(result, &what)?
            }
            Some(event) => {
                let put = self.put(item, Some("attribute_not_exists(pk)"), None)?;
                self.write_announcing(put, event, &what).await?
            }
        };
        Ok(if recorded {
            RecordOutcome::Recorded
        } else {
            RecordOutcome::AlreadyRecorded
        })
    }

    async fn record_announcement(&self, event: &Event) -> Result<RecordOutcome, StoreError> {
        self.remember(event).await
    }

    async fn pending_announcements(&self, scope: EventScope) -> Result<Vec<Event>, StoreError> {
        self.pending(scope).await
    }

    async fn announcement_sent(&self, event: &Event, at: &str) -> Result<(), StoreError> {
        self.sent(event, at).await
    }
}

/// Empty strings carry nothing and are treated like `None`.
fn text(value: &Option<String>) -> Option<AttributeValue> {
    value
        .as_deref()
        .filter(|v| !v.is_empty())
        .map(|v| AttributeValue::S(v.to_owned()))
}

/// Whether a conditional write took effect: `false` when its condition
/// failed (the fact is already there), an error for any other failure.
fn applied<T, E>(result: Result<T, SdkError<E>>, what: &str) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(err) if err.code() == Some("ConditionalCheckFailedException") => Ok(false),
        Err(err) => Err(classify(what, err)),
    }
}
