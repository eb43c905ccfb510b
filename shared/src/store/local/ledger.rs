//! The ledger in SQLite: the records of the DynamoDB ledger as tables
//! (`assets`, `orders`, `messages`, `announcements`), with the same
//! conditional semantics.

mod announcements;

use std::path::Path;

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row, TransactionBehavior};

use super::{sql_error, to_sql_int, Db};
use crate::events::{Event, EventScope};
use crate::model::{AssetId, OrderId, OrderLineId, SubOrderId};
use crate::store::{
    AssetRecord, AssetState, Ledger, MessageRecord, ObjectKey, OrderRecord, RecordOutcome,
    StoreError,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS assets (
    order_id      INTEGER NOT NULL,
    asset_id      TEXT    NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('STORED', 'DELETED')),
    object_key    TEXT,
    sub_order_id  INTEGER,
    order_line_id INTEGER,
    bytes         INTEGER,
    sha256        TEXT,
    content_type  TEXT,
    name          TEXT,
    category      TEXT,
    stored_at     TEXT,
    deleted_at    TEXT,
    PRIMARY KEY (order_id, asset_id)
);
CREATE TABLE IF NOT EXISTS orders (
    order_id            INTEGER PRIMARY KEY,
    last_status         TEXT,
    reference           TEXT,
    technical_reference TEXT,
    finished_at         TEXT,
    purged_at           TEXT,
    updated_at          TEXT
);
CREATE TABLE IF NOT EXISTS messages (
    id                  TEXT NOT NULL,
    event_action        TEXT NOT NULL,
    message_type        TEXT NOT NULL,
    message             TEXT NOT NULL,
    municipality_name   TEXT,
    municipality_number TEXT,
    organization_code   TEXT,
    date_created        TEXT,
    received_at         TEXT NOT NULL,
    PRIMARY KEY (id, event_action)
);
CREATE TABLE IF NOT EXISTS announcements (
    event_id   TEXT PRIMARY KEY,
    scope      TEXT NOT NULL,
    event_type TEXT NOT NULL,
    timestamp  TEXT NOT NULL,
    data       TEXT NOT NULL,
    sent_at    TEXT
);
CREATE INDEX IF NOT EXISTS announcements_pending
    ON announcements (scope) WHERE sent_at IS NULL;
";

const ASSET_COLUMNS: &str = "order_id, asset_id, state, object_key, sub_order_id, order_line_id, \
     bytes, sha256, content_type, name, category, stored_at, deleted_at";
const ORDER_COLUMNS: &str =
    "order_id, last_status, reference, technical_reference, finished_at, purged_at, updated_at";
const MESSAGE_COLUMNS: &str = "id, event_action, message_type, message, municipality_name, \
     municipality_number, organization_code, date_created, received_at";

/// The local [`Ledger`], plus the listings the `kode` command shows.
#[derive(Clone)]
pub struct SqliteLedger {
    db: Db,
}

/// What the ledger holds, for summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LedgerTotals {
    pub orders: u64,
    /// Assets currently stored.
    pub files_stored: u64,
    /// Assets that were stored and then deleted (tombstones of assets that
    /// were never stored are not counted).
    pub files_deleted: u64,
    /// Total size of the stored assets.
    pub bytes_stored: u64,
}

impl SqliteLedger {
    /// Opens or creates the ledger database at `path`.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Ok(Self {
            db: Db::open(path.as_ref(), SCHEMA).await?,
        })
    }

    /// Every order record, by order id.
    pub async fn orders(&self) -> Result<Vec<OrderRecord>, StoreError> {
        self.db
            .call(|conn| {
                let sql = format!("SELECT {ORDER_COLUMNS} FROM orders ORDER BY order_id");
                let mut stmt = conn.prepare(&sql).map_err(sql_error)?;
                let rows = stmt.query_map([], order_from_row).map_err(sql_error)?;
                rows.collect::<Result<_, _>>().map_err(sql_error)
            })
            .await
    }

    /// Every distributor message, oldest first.
    pub async fn messages(&self) -> Result<Vec<MessageRecord>, StoreError> {
        self.db
            .call(|conn| {
                let sql =
                    format!("SELECT {MESSAGE_COLUMNS} FROM messages ORDER BY received_at, rowid");
                let mut stmt = conn.prepare(&sql).map_err(sql_error)?;
                let rows = stmt.query_map([], message_from_row).map_err(sql_error)?;
                rows.collect::<Result<_, _>>().map_err(sql_error)
            })
            .await
    }

    pub async fn totals(&self) -> Result<LedgerTotals, StoreError> {
        self.db
            .call(|conn| {
                conn.query_row(
                    "SELECT
                        (SELECT COUNT(*) FROM orders),
                        (SELECT COUNT(*) FROM assets WHERE state = 'STORED'),
                        (SELECT COUNT(*) FROM assets
                            WHERE state = 'DELETED' AND stored_at IS NOT NULL),
                        (SELECT COALESCE(SUM(bytes), 0) FROM assets WHERE state = 'STORED')",
                    [],
                    |row| {
                        Ok(LedgerTotals {
                            orders: get_u64(row, 0)?,
                            files_stored: get_u64(row, 1)?,
                            files_deleted: get_u64(row, 2)?,
                            bytes_stored: get_u64(row, 3)?,
                        })
                    },
                )
                .map_err(sql_error)
            })
            .await
    }
}

#[async_trait]
impl Ledger for SqliteLedger {
    async fn order_assets(&self, order: OrderId) -> Result<Vec<AssetRecord>, StoreError> {
        let order = to_sql_int(order.0, "order id")?;
        self.db
            .call(move |conn| {
                let sql = format!(
                    "SELECT {ASSET_COLUMNS} FROM assets WHERE order_id = ?1 ORDER BY asset_id"
                );
                let mut stmt = conn.prepare(&sql).map_err(sql_error)?;
                let rows = stmt.query_map([order], asset_from_row).map_err(sql_error)?;
                rows.collect::<Result<_, _>>().map_err(sql_error)
            })
            .await
    }

    async fn order(&self, order: OrderId) -> Result<Option<OrderRecord>, StoreError> {
        let order = to_sql_int(order.0, "order id")?;
        self.db
            .call(move |conn| {
                let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = ?1");
                conn.query_row(&sql, [order], order_from_row)
                    .optional()
                    .map_err(sql_error)
            })
            .await
    }

    async fn record_stored_announcing(
        &self,
        record: &AssetRecord,
        announce: Option<&Event>,
    ) -> Result<RecordOutcome, StoreError> {
        if record.state != AssetState::Stored {
            return Err(StoreError::Permanent(format!(
                "record_stored got asset {} in state {:?}",
                record.asset_id, record.state
            )));
        }
        let order = to_sql_int(record.order_id.0, "order id")?;
        let sub_order = record
            .sub_order_id
            .map(|id| to_sql_int(id.0, "sub-order id"))
            .transpose()?;
        let line = record
            .order_line_id
            .map(|id| to_sql_int(id.0, "order line id"))
            .transpose()?;
        let bytes = record.bytes.map(|b| to_sql_int(b, "size")).transpose()?;
        let r = record.clone();
        let announce = announce.cloned();
        self.db
            .call(move |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(sql_error)?;
                let existing = asset_state(&tx, order, &r.asset_id)?;
                let outcome = match existing {
                    Some(AssetState::Stored) => RecordOutcome::AlreadyRecorded,
                    Some(AssetState::Deleted) => RecordOutcome::AlreadyDeleted,
                    None => {
                        tx.execute(
                            &format!(
                                "INSERT INTO assets ({ASSET_COLUMNS}) VALUES \
                                 (?1, ?2, 'STORED', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                            ),
                            params![
                                order,
                                r.asset_id.as_str(),
                                r.key.as_ref().map(ObjectKey::as_str),
                                sub_order,
                                line,
                                bytes,
                                r.sha256,
                                r.content_type,
                                r.name,
                                r.category,
                                r.stored_at,
                                r.deleted_at,
                            ],
                        )
                        .map_err(sql_error)?;
                        announcements::insert(&tx, announce.as_ref())?;
                        RecordOutcome::Recorded
                    }
                };
                tx.commit().map_err(sql_error)?;
                Ok(outcome)
            })
            .await
    }

    async fn mark_deleted_announcing(
        &self,
        order: OrderId,
        asset: &AssetId,
        at: &str,
        announce: Option<&Event>,
    ) -> Result<RecordOutcome, StoreError> {
        let order = to_sql_int(order.0, "order id")?;
        let asset = asset.clone();
        let at = at.to_owned();
        let announce = announce.cloned();
        self.db
            .call(move |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(sql_error)?;
                let outcome = match asset_state(&tx, order, &asset)? {
                    Some(AssetState::Deleted) => RecordOutcome::AlreadyRecorded,
                    Some(AssetState::Stored) => {
                        tx.execute(
                            "UPDATE assets SET state = 'DELETED', deleted_at = ?3 \
                             WHERE order_id = ?1 AND asset_id = ?2",
                            params![order, asset.as_str(), at],
                        )
                        .map_err(sql_error)?;
                        announcements::insert(&tx, announce.as_ref())?;
                        RecordOutcome::Recorded
                    }
                    None => {
                        tx.execute(
                            "INSERT INTO assets (order_id, asset_id, state, deleted_at) \
                             VALUES (?1, ?2, 'DELETED', ?3)",
                            params![order, asset.as_str(), at],
                        )
                        .map_err(sql_error)?;
                        RecordOutcome::Recorded
                    }
                };
                tx.commit().map_err(sql_error)?;
                Ok(outcome)
            })
            .await
    }

    async fn upsert_order(&self, record: &OrderRecord) -> Result<(), StoreError> {
        let order = record
            .order_id
            .ok_or_else(|| StoreError::Permanent("upsert_order needs an order id".into()))?;
        let order = to_sql_int(order.0, "order id")?;
        let r = record.clone();
        self.db
            .call(move |conn| {
                conn.execute(
                    &format!(
                        "INSERT INTO orders ({ORDER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                         ON CONFLICT (order_id) DO UPDATE SET
                            last_status = COALESCE(excluded.last_status, last_status),
                            reference = COALESCE(excluded.reference, reference),
                            technical_reference =
                                COALESCE(excluded.technical_reference, technical_reference),
                            finished_at = COALESCE(finished_at, excluded.finished_at),
                            purged_at = COALESCE(purged_at, excluded.purged_at),
                            updated_at = COALESCE(excluded.updated_at, updated_at)"
                    ),
                    params![
                        order,
                        r.last_status,
                        r.reference,
                        r.technical_reference,
                        r.finished_at,
                        r.purged_at,
                        r.updated_at,
                    ],
                )
                .map_err(sql_error)?;
                Ok(())
            })
            .await
    }

    async fn record_message_announcing(
        &self,
        message: &MessageRecord,
        announce: Option<&Event>,
    ) -> Result<RecordOutcome, StoreError> {
        let m = message.clone();
        let announce = announce.cloned();
        self.db
            .call(move |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(sql_error)?;
                let inserted = tx
                    .execute(
                        &format!(
                            "INSERT INTO messages ({MESSAGE_COLUMNS}) \
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                             ON CONFLICT (id, event_action) DO NOTHING"
                        ),
                        params![
                            m.id,
                            m.event_action,
                            m.message_type,
                            m.message,
                            m.municipality_name,
                            m.municipality_number,
                            m.organization_code,
                            m.date_created,
                            m.received_at,
                        ],
                    )
                    .map_err(sql_error)?;
                if inserted == 1 {
                    announcements::insert(&tx, announce.as_ref())?;
                }
                tx.commit().map_err(sql_error)?;
                Ok(if inserted == 1 {
                    RecordOutcome::Recorded
                } else {
                    RecordOutcome::AlreadyRecorded
                })
            })
            .await
    }

    async fn record_announcement(&self, event: &Event) -> Result<RecordOutcome, StoreError> {
        let event = event.clone();
        self.db
            .call(move |conn| {
                Ok(if announcements::insert(conn, Some(&event))? {
                    RecordOutcome::Recorded
                } else {
                    RecordOutcome::AlreadyRecorded
                })
            })
            .await
    }

    async fn pending_announcements(&self, scope: EventScope) -> Result<Vec<Event>, StoreError> {
        self.db
            .call(move |conn| announcements::pending(conn, scope))
            .await
    }

    async fn announcement_sent(&self, event: &Event, at: &str) -> Result<(), StoreError> {
        let (event, at) = (event.clone(), at.to_owned());
        self.db
            .call(move |conn| announcements::sent(conn, &event, &at))
            .await
    }
}

fn asset_state(
    conn: &rusqlite::Connection,
    order: i64,
    asset: &AssetId,
) -> Result<Option<AssetState>, StoreError> {
    conn.query_row(
        "SELECT state FROM assets WHERE order_id = ?1 AND asset_id = ?2",
        params![order, asset.as_str()],
        |row| state_from_sql(row, 0),
    )
    .optional()
    .map_err(sql_error)
}

fn state_from_sql(row: &Row<'_>, idx: usize) -> rusqlite::Result<AssetState> {
    match row.get_ref(idx)?.as_str()? {
        "STORED" => Ok(AssetState::Stored),
        "DELETED" => Ok(AssetState::Deleted),
        other => Err(rusqlite::Error::FromSqlConversionFailure(
            idx,
            rusqlite::types::Type::Text,
            format!("unknown asset state {other:?}").into(),
        )),
    }
}

fn get_u64(row: &Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let v: i64 = row.get(idx)?;
    u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, v))
}

fn get_opt_u64(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<u64>> {
    let v: Option<i64> = row.get(idx)?;
    v.map(|v| u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, v)))
        .transpose()
}

fn asset_from_row(row: &Row<'_>) -> rusqlite::Result<AssetRecord> {
    Ok(AssetRecord {
        order_id: OrderId(get_u64(row, 0)?),
        asset_id: AssetId(row.get(1)?),
        state: state_from_sql(row, 2)?,
        key: row.get::<_, Option<String>>(3)?.map(ObjectKey),
        sub_order_id: get_opt_u64(row, 4)?.map(SubOrderId),
        order_line_id: get_opt_u64(row, 5)?.map(OrderLineId),
        bytes: get_opt_u64(row, 6)?,
        sha256: row.get(7)?,
        content_type: row.get(8)?,
        name: row.get(9)?,
        category: row.get(10)?,
        stored_at: row.get(11)?,
        deleted_at: row.get(12)?,
    })
}

fn order_from_row(row: &Row<'_>) -> rusqlite::Result<OrderRecord> {
    Ok(OrderRecord {
        order_id: Some(OrderId(get_u64(row, 0)?)),
        last_status: row.get(1)?,
        reference: row.get(2)?,
        technical_reference: row.get(3)?,
        finished_at: row.get(4)?,
        purged_at: row.get(5)?,
        updated_at: row.get(6)?,
    })
}

fn message_from_row(row: &Row<'_>) -> rusqlite::Result<MessageRecord> {
    Ok(MessageRecord {
        id: row.get(0)?,
        event_action: row.get(1)?,
        message_type: row.get(2)?,
        message: row.get(3)?,
        municipality_name: row.get(4)?,
        municipality_number: row.get(5)?,
        organization_code: row.get(6)?,
        date_created: row.get(7)?,
        received_at: row.get(8)?,
    })
}

#[cfg(test)]
mod tests;
