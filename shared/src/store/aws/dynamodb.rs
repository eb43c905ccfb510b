//! [`Ledger`] on one DynamoDB table with string keys `pk`/`sk`.
//!
//! Every write that could conflict is conditional, so a redelivered push or
//! a concurrent run can neither record an asset twice nor bring back one that
//! was deleted. Reads are strongly consistent: the processor decides what to
//! download from them right after a previous run's writes.

mod announcements;
mod items;

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem, Update};

use std::collections::{BTreeMap, BTreeSet};

use super::sdk_error::classify;
use crate::events::{Event, EventScope};
use crate::model::{
    recorded_text, AssetId, AssetRecord, AssetState, FailedAttempt, MessageRecord, OrderId,
    OrderRecord,
};
use crate::store::{
    FailedAnnouncement, FailedOutcome, Ledger, OpenOrder, RecordOutcome, StoreError, SweepMiss,
};
use items::{
    ASSET_PREFIX, ATTEMPTS, DELETED, FAILED, FAILURE_REASON, FAILURE_TRANSIENT, LAST_ATTEMPT_AT,
    OPEN, OPEN_KEY, OPEN_UNTIL, ORDER_SK,
};

pub use items::OPEN_INDEX;

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

    async fn asset(
        &self,
        order: OrderId,
        asset: &AssetId,
    ) -> Result<Option<AssetRecord>, StoreError> {
        self.get(items::order_pk(order), items::asset_sk(asset))
            .await?
            .map(|item| items::asset_record(&item))
            .transpose()
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
        if !record.is_storable() {
            return Err(StoreError::Permanent(format!(
                "record_stored needs a STORED record with a key (order {}, asset {})",
                record.order_id, record.asset_id
            )));
        }
        let what = format!(
            "TransactWriteItems ORDER#{}/ASSET#{}",
            record.order_id, record.asset_id
        );
        let invalid =
            |e: aws_sdk_dynamodb::error::BuildError| StoreError::Permanent(format!("{what}: {e}"));
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(items::asset_item(record)))
            .condition_expression("attribute_not_exists(pk) OR #state = :failed")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":failed", AttributeValue::S(FAILED.into()))
            .build()
            .map_err(invalid)?;
        // In the same transaction: a purge marked before it makes it fail,
        // one marked after it finds the record in the ledger.
        let not_purged = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(items::key(
                items::order_pk(record.order_id),
                ORDER_SK.to_owned(),
            )))
            .condition_expression("attribute_not_exists(purgedAt)")
            .build()
            .map_err(invalid)?;
        let mut transaction = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(
                TransactWriteItem::builder()
                    .condition_check(not_purged)
                    .build(),
            );
        // The announcement, if any, is written with the fact it reports.
        if let Some(event) = announce {
            transaction = transaction.transact_items(self.announcement_put(event, &what)?);
        }
        let result = transaction.send().await;
        match result {
            Ok(_) => return Ok(RecordOutcome::Recorded),
            Err(err) if err.code() == Some("TransactionCanceledException") => {}
            Err(err) => return Err(classify(&what, err)),
        }
        match self.asset(record.order_id, &record.asset_id).await? {
            Some(existing) if existing.state == AssetState::Deleted => {
                return Ok(RecordOutcome::AlreadyDeleted)
            }
            Some(existing) if existing.state == AssetState::Stored => {
                return Ok(RecordOutcome::AlreadyRecorded)
            }
            _ => {}
        }
        let purged = self
            .order(record.order_id)
            .await?
            .is_some_and(|o| o.purged_at.is_some());
        if purged {
            return Ok(RecordOutcome::OrderPurged);
        }
        // Cancelled with no condition failing: a concurrent transaction on
        // the same items. Let a later attempt look again.
        Err(StoreError::Unavailable(format!(
            "{what}: cancelled by a concurrent write"
        )))
    }

    async fn record_failed_announcing(
        &self,
        attempt: &FailedAttempt,
        announce: Arc<FailedAnnouncement>,
    ) -> Result<FailedOutcome, StoreError> {
        // Optimistic: the count is written as read plus one, on condition
        // that it is still what was read, so that the event (which depends
        // on what was there before) goes in the same transaction.
        for _ in 0..FAILED_WRITE_TRIES {
            let (exists, before) = match self.asset(attempt.order_id, &attempt.asset_id).await? {
                Some(existing) if existing.state != AssetState::Failed => {
                    return Ok(FailedOutcome::Settled(existing.state))
                }
                Some(existing) => (true, existing.failure),
                None => (false, None),
            };
            let counted = before.as_ref().map(|f| f.attempts);
            let attempts = counted.unwrap_or(0).saturating_add(1);
            let event = announce(before.as_ref(), attempts);
            if self
                .write_failed(attempt, exists, counted, attempts, event.as_ref())
                .await?
            {
                return Ok(FailedOutcome::Recorded { attempts });
            }
        }
        Err(StoreError::Unavailable(format!(
            "recording the failure of asset {} (order {}): changed by concurrent runs {FAILED_WRITE_TRIES} times",
            attempt.asset_id, attempt.order_id
        )))
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
            .update_expression(
                "SET #state = :deleted, #deletedAt = :at \
                 REMOVE #reason, #attempts, #last, #transient",
            )
            .condition_expression("attribute_not_exists(pk) OR #state <> :deleted")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#deletedAt", "deletedAt")
            .expression_attribute_names("#reason", FAILURE_REASON)
            .expression_attribute_names("#attempts", ATTEMPTS)
            .expression_attribute_names("#last", LAST_ATTEMPT_AT)
            .expression_attribute_names("#transient", FAILURE_TRANSIENT)
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
        let mut removals = Vec::new();
        // Purged orders are never open again; a push (which sets
        // `sweep_until`) opens the order and forgets earlier misses.
        if record.purged_at.is_some() {
            removals.extend(["#sweep", "#sweepUntil"]);
            request = request
                .expression_attribute_names("#sweep", OPEN_KEY)
                .expression_attribute_names("#sweepUntil", OPEN_UNTIL);
        } else if let Some(until) = text(&record.sweep_until) {
            assignments.extend([
                "#sweep = :sweep".to_owned(),
                "#sweepUntil = :sweepUntil".to_owned(),
                "#sweepMisses = :zero".to_owned(),
            ]);
            removals.push("#sweepClosedAt");
            request = request
                .expression_attribute_names("#sweep", OPEN_KEY)
                .expression_attribute_names("#sweepUntil", OPEN_UNTIL)
                .expression_attribute_names("#sweepMisses", "sweepMisses")
                .expression_attribute_names("#sweepClosedAt", "sweepClosedAt")
                .expression_attribute_values(":sweep", AttributeValue::S(OPEN.into()))
                .expression_attribute_values(":sweepUntil", until)
                .expression_attribute_values(":zero", AttributeValue::N("0".into()));
        }
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
        let mut expression = format!("SET {}", assignments.join(", "));
        if !removals.is_empty() {
            expression.push_str(" REMOVE ");
            expression.push_str(&removals.join(", "));
        }
        request
            .update_expression(expression)
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
                self.write_announcing(put, Some(event), &what).await?
            }
        };
        Ok(if recorded {
            RecordOutcome::Recorded
        } else {
            RecordOutcome::AlreadyRecorded
        })
    }

    async fn open_orders(&self, now: &str) -> Result<Vec<OpenOrder>, StoreError> {
        let what = format!("Query {OPEN_INDEX}");
        // Order id -> swept_at, for orders open by their own item; holds
        // and announcements only name the order.
        let mut by_item: BTreeMap<OrderId, OpenOrder> = BTreeMap::new();
        let mut held = Vec::new();
        let mut announcing = BTreeSet::new();
        let mut start_key = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(OPEN_INDEX)
                .key_condition_expression("#sweep = :open AND #until >= :now")
                .expression_attribute_names("#sweep", OPEN_KEY)
                .expression_attribute_names("#until", OPEN_UNTIL)
                .expression_attribute_values(":open", AttributeValue::S(OPEN.into()))
                .expression_attribute_values(":now", AttributeValue::S(now.to_owned()))
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|e| classify(&what, e))?;
            for item in output.items() {
                let order = items::item_order_id(item)?;
                match item.get("sk") {
                    Some(AttributeValue::S(sk)) if sk == ORDER_SK => {
                        let record = items::order_record(item)?;
                        if record.purged_at.is_none() && record.sweep_closed_at.is_none() {
                            by_item.insert(
                                order,
                                OpenOrder {
                                    order_id: order,
                                    swept_at: record.swept_at,
                                },
                            );
                        }
                    }
                    Some(AttributeValue::S(sk)) if announcements::is_announcement(sk) => {
                        announcing.insert(order);
                    }
                    _ => held.push(order),
                }
            }
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start_key = Some(key),
                _ => break,
            }
        }
        // A held order may be past its own `sweep_until`: its order item
        // says whether it is purged or closed, and when it was swept. An
        // order with events still to announce is listed even then.
        held.extend(announcing.iter().copied());
        held.sort_unstable();
        held.dedup();
        for order in held {
            if by_item.contains_key(&order) {
                continue;
            }
            let record = self.order(order).await?.unwrap_or_default();
            let open = record.purged_at.is_none() && record.sweep_closed_at.is_none();
            if open || announcing.contains(&order) {
                by_item.insert(
                    order,
                    OpenOrder {
                        order_id: order,
                        swept_at: record.swept_at,
                    },
                );
            }
        }
        Ok(by_item.into_values().collect())
    }

    async fn hold_open(&self, order: OrderId, reason: &str) -> Result<(), StoreError> {
        if reason.is_empty() {
            return Err(StoreError::Permanent("a hold needs a reason".into()));
        }
        let pk = items::order_pk(order);
        let sk = items::hold_sk(reason);
        let what = format!("UpdateItem {pk}/{sk}");
        // An update keeps the first `since` of a hold taken twice.
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(items::key(pk, sk)))
            .update_expression(
                "SET #sweep = :open, #until = :forever, #since = if_not_exists(#since, :now)",
            )
            .expression_attribute_names("#sweep", OPEN_KEY)
            .expression_attribute_names("#until", OPEN_UNTIL)
            .expression_attribute_names("#since", "since")
            .expression_attribute_values(":open", AttributeValue::S(OPEN.into()))
            .expression_attribute_values(
                ":forever",
                AttributeValue::S(crate::model::OPEN_FOREVER.into()),
            )
            .expression_attribute_values(
                ":now",
                AttributeValue::S(jiff::Timestamp::now().to_string()),
            )
            .send()
            .await
            .map_err(|e| classify(&what, e))?;
        Ok(())
    }

    async fn release_hold(&self, order: OrderId, reason: &str) -> Result<(), StoreError> {
        let pk = items::order_pk(order);
        let sk = items::hold_sk(reason);
        let what = format!("DeleteItem {pk}/{sk}");
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(items::key(pk, sk)))
            .send()
            .await
            .map_err(|e| classify(&what, e))?;
        Ok(())
    }

    async fn mark_swept(&self, order: OrderId, at: &str) -> Result<(), StoreError> {
        let pk = items::order_pk(order);
        let what = format!("UpdateItem {pk}/{ORDER_SK} (swept)");
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(items::key(pk, ORDER_SK.to_owned())))
            .update_expression("SET sweptAt = :at")
            .expression_attribute_values(":at", AttributeValue::S(at.to_owned()))
            .send()
            .await
            .map_err(|e| classify(&what, e))?;
        Ok(())
    }

    async fn sweep_missed(
        &self,
        order: OrderId,
        max_misses: u32,
        at: &str,
    ) -> Result<SweepMiss, StoreError> {
        let pk = items::order_pk(order);
        let what = format!("UpdateItem {pk}/{ORDER_SK} (sweep miss)");
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(items::key(pk.clone(), ORDER_SK.to_owned())))
            .update_expression("ADD sweepMisses :one")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| classify(&what, e))?;
        let misses = match output
            .attributes
            .as_ref()
            .and_then(|a| a.get("sweepMisses"))
        {
            Some(AttributeValue::N(n)) => n.parse().unwrap_or(u32::MAX),
            _ => {
                return Err(StoreError::Permanent(format!(
                    "{what}: no sweepMisses in the answer"
                )))
            }
        };
        let closed = misses >= max_misses;
        if closed {
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(items::key(pk, ORDER_SK.to_owned())))
                .update_expression(
                    "SET sweepClosedAt = if_not_exists(sweepClosedAt, :at) REMOVE #sweep, #until",
                )
                .expression_attribute_names("#sweep", OPEN_KEY)
                .expression_attribute_names("#until", OPEN_UNTIL)
                .expression_attribute_values(":at", AttributeValue::S(at.to_owned()))
                .send()
                .await
                .map_err(|e| classify(&what, e))?;
        }
        Ok(SweepMiss { misses, closed })
    }

    async fn sweep_found(&self, order: OrderId) -> Result<(), StoreError> {
        let pk = items::order_pk(order);
        let what = format!("UpdateItem {pk}/{ORDER_SK} (sweep found)");
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(items::key(pk, ORDER_SK.to_owned())))
            .update_expression("SET sweepMisses = :zero")
            .condition_expression("sweepMisses > :zero")
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .send()
            .await;
        // Not applied: there were no misses to forget.
        applied(result, &what).map(|_| ())
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
/// Tries of the optimistic FAILED write before giving the run up to a
/// retry.
const FAILED_WRITE_TRIES: usize = 5;

impl DynamoLedger {
    /// Writes the FAILED record with `attempts`, on condition that the item
    /// is as read (missing, or FAILED with `counted` attempts), and `event`
    /// with it; `false` when the condition failed (nothing written).
    async fn write_failed(
        &self,
        attempt: &FailedAttempt,
        exists: bool,
        counted: Option<u32>,
        attempts: u32,
        event: Option<&Event>,
    ) -> Result<bool, StoreError> {
        let pk = items::order_pk(attempt.order_id);
        let sk = items::asset_sk(&attempt.asset_id);
        let what = format!("{pk}/{sk} (failed)");
        let condition = match (exists, counted) {
            (false, _) => "attribute_not_exists(pk)",
            (true, Some(_)) => "#state = :failed AND #attempts = :counted",
            (true, None) => "#state = :failed AND attribute_not_exists(#attempts)",
        };
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(items::key(pk, sk)))
            .update_expression(
                "SET #state = :failed, #reason = :reason, #last = :at, #transient = :transient, \
                 #attempts = :attempts",
            )
            .condition_expression(condition)
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#reason", FAILURE_REASON)
            .expression_attribute_names("#last", LAST_ATTEMPT_AT)
            .expression_attribute_names("#transient", FAILURE_TRANSIENT)
            .expression_attribute_names("#attempts", ATTEMPTS)
            .expression_attribute_values(":failed", AttributeValue::S(FAILED.into()))
            .expression_attribute_values(":reason", AttributeValue::S(attempt.reason.clone()))
            .expression_attribute_values(":at", AttributeValue::S(attempt.at.clone()))
            .expression_attribute_values(":transient", AttributeValue::Bool(attempt.transient))
            .expression_attribute_values(":attempts", AttributeValue::N(attempts.to_string()));
        if let Some(counted) = counted {
            update = update
                .expression_attribute_values(":counted", AttributeValue::N(counted.to_string()));
        }
        let update = update
            .build()
            .map_err(|e| StoreError::Permanent(format!("{what}: {e}")))?;
        let change = TransactWriteItem::builder().update(update).build();
        // A transaction even without an event: failures are rare, and one
        // write path is simpler than two.
        self.write_announcing(change, event, &what).await
    }
}

fn text(value: &Option<String>) -> Option<AttributeValue> {
    recorded_text(value.as_deref()).map(|v| AttributeValue::S(v.to_owned()))
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
