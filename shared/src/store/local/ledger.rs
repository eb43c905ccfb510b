//! The ledger in SQLite: the records of the DynamoDB ledger as tables
//! (`assets`, `orders`, `messages`, `order_holds`, `announcements`), with
//! the same conditional semantics. The open orders are an index on
//! `orders.sweep_until`.

mod announcements;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row, TransactionBehavior};

use super::{sql_error, to_sql_int, Db};
use crate::events::{Event, EventScope};
use crate::model::{
    recorded_text, AssetFailure, AssetRecord, AssetState, FailedAttempt, MessageRecord, ObjectKey,
    OrderRecord,
};
use crate::model::{AssetId, OrderId, OrderLineId, SubOrderId};
use crate::store::{
    FailedAnnouncement, FailedOutcome, Ledger, OpenOrder, RecordOutcome, StoreError, SweepMiss,
};

/// The `assets` table; `{name}` is filled in (see [`FAILED_MIGRATION`]).
const ASSETS_TABLE: &str = "
CREATE TABLE IF NOT EXISTS {name} (
    order_id          INTEGER NOT NULL,
    asset_id          TEXT    NOT NULL,
    state             TEXT    NOT NULL CHECK (state IN ('STORED', 'DELETED', 'FAILED')),
    object_key        TEXT,
    sub_order_id      INTEGER,
    order_line_id     INTEGER,
    bytes             INTEGER,
    sha256            TEXT,
    content_type      TEXT,
    name              TEXT,
    category          TEXT,
    stored_at         TEXT,
    deleted_at        TEXT,
    failure_reason    TEXT,
    attempts          INTEGER,
    last_attempt_at   TEXT,
    failure_transient INTEGER,
    PRIMARY KEY (order_id, asset_id)
);";

/// The columns of a ledger written before the FAILED state, copied over
/// when such a ledger is opened.
const COLUMNS_BEFORE_FAILED: &str = "order_id, asset_id, state, object_key, sub_order_id, \
     order_line_id, bytes, sha256, content_type, name, category, stored_at, deleted_at";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS orders (
    order_id            INTEGER PRIMARY KEY,
    last_status         TEXT,
    reference           TEXT,
    technical_reference TEXT,
    finished_at         TEXT,
    purged_at           TEXT,
    updated_at          TEXT,
    sweep_until         TEXT,
    swept_at            TEXT,
    sweep_misses        INTEGER NOT NULL DEFAULT 0,
    sweep_closed_at     TEXT
);
CREATE TABLE IF NOT EXISTS order_holds (
    order_id INTEGER NOT NULL,
    reason   TEXT    NOT NULL,
    since    TEXT    NOT NULL,
    PRIMARY KEY (order_id, reason)
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
     bytes, sha256, content_type, name, category, stored_at, deleted_at, \
     failure_reason, attempts, last_attempt_at, failure_transient";
const ORDER_COLUMNS: &str = "order_id, last_status, reference, technical_reference, \
     finished_at, purged_at, updated_at, sweep_until, swept_at, sweep_misses, sweep_closed_at";

/// Ledgers written before the sweep lack its columns: they are added, and
/// the orders already there opened by the rules of the processor (FINISHED
/// ones for the default 14 days from now, as when they finished is not
/// compared here).
const SWEEP_MIGRATION: &str = "
ALTER TABLE orders ADD COLUMN sweep_until TEXT;
ALTER TABLE orders ADD COLUMN swept_at TEXT;
ALTER TABLE orders ADD COLUMN sweep_misses INTEGER NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN sweep_closed_at TEXT;
UPDATE orders SET sweep_until = CASE
    WHEN purged_at IS NOT NULL
        OR last_status IN ('CANCELLED', 'CANCELED', 'REFUNDED') THEN NULL
    WHEN last_status = 'FINISHED' THEN strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '+14 days')
    ELSE '9999-12-31T23:59:59Z'
END;
";
const OPEN_INDEX: &str = "CREATE INDEX IF NOT EXISTS orders_open ON orders (sweep_until) \
     WHERE sweep_until IS NOT NULL";
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
        let db = Db::open(path.as_ref(), SCHEMA).await?;
        db.call(create_assets_table).await?;
        db.call(|conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_error)?;
            let has_sweep: bool = tx
                .query_row(
                    "SELECT COUNT(*) FROM pragma_table_info('orders') WHERE name = 'sweep_until'",
                    [],
                    |row| row.get::<_, i64>(0).map(|n| n > 0),
                )
                .map_err(sql_error)?;
            if !has_sweep {
                tx.execute_batch(SWEEP_MIGRATION).map_err(sql_error)?;
            }
            tx.execute_batch(OPEN_INDEX).map_err(sql_error)?;
            tx.commit().map_err(sql_error)
        })
        .await?;
        Ok(Self { db })
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
        if !record.is_storable() {
            return Err(StoreError::Permanent(format!(
                "record_stored needs a STORED record with a key (order {}, asset {})",
                record.order_id, record.asset_id
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
                    // In the same transaction as the insert: a purge marked
                    // after this check waits for the commit and then sees
                    // the record.
                    None | Some(AssetState::Failed) if order_purged(&tx, order)? => {
                        RecordOutcome::OrderPurged
                    }
                    None | Some(AssetState::Failed) => {
                        tx.execute(
                            &format!(
                                "INSERT OR REPLACE INTO assets ({ASSET_COLUMNS}) VALUES \
                                 (?1, ?2, 'STORED', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, \
                                  NULL, NULL, NULL, NULL)"
                            ),
                            params![
                                order,
                                r.asset_id.as_str(),
                                r.key.as_ref().map(ObjectKey::as_str),
                                sub_order,
                                line,
                                bytes,
                                text(&r.sha256),
                                text(&r.content_type),
                                text(&r.name),
                                text(&r.category),
                                text(&r.stored_at),
                                text(&r.deleted_at),
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
                    Some(AssetState::Stored | AssetState::Failed) => {
                        tx.execute(
                            "UPDATE assets SET state = 'DELETED', deleted_at = ?3, \
                             failure_reason = NULL, attempts = NULL, last_attempt_at = NULL, \
                             failure_transient = NULL \
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

    async fn record_failed_announcing(
        &self,
        attempt: &FailedAttempt,
        announce: Arc<FailedAnnouncement>,
    ) -> Result<FailedOutcome, StoreError> {
        let order = to_sql_int(attempt.order_id.0, "order id")?;
        let a = attempt.clone();
        self.db
            .call(move |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(sql_error)?;
                let before = match asset_record(&tx, order, &a.asset_id)? {
                    Some(existing) if existing.state != AssetState::Failed => {
                        return Ok(FailedOutcome::Settled(existing.state));
                    }
                    Some(existing) => existing.failure,
                    None => None,
                };
                let attempts: i64 = tx
                    .query_row(
                        "INSERT INTO assets (order_id, asset_id, state, failure_reason, \
                             attempts, last_attempt_at, failure_transient) \
                         VALUES (?1, ?2, 'FAILED', ?3, 1, ?4, ?5) \
                         ON CONFLICT (order_id, asset_id) DO UPDATE SET \
                             failure_reason = excluded.failure_reason, \
                             attempts = COALESCE(attempts, 0) + 1, \
                             last_attempt_at = excluded.last_attempt_at, \
                             failure_transient = excluded.failure_transient \
                         RETURNING attempts",
                        params![order, a.asset_id.as_str(), a.reason, a.at, a.transient],
                        |row| row.get(0),
                    )
                    .map_err(sql_error)?;
                let attempts = u32::try_from(attempts).unwrap_or(u32::MAX);
                announcements::insert(&tx, announce(before.as_ref(), attempts).as_ref())?;
                tx.commit().map_err(sql_error)?;
                Ok(FailedOutcome::Recorded { attempts })
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
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(sql_error)?;
                tx.execute(
                    "INSERT INTO orders (order_id, last_status, reference, technical_reference, \
                         finished_at, purged_at, updated_at, sweep_until)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (order_id) DO UPDATE SET
                        last_status = COALESCE(excluded.last_status, last_status),
                        reference = COALESCE(excluded.reference, reference),
                        technical_reference =
                            COALESCE(excluded.technical_reference, technical_reference),
                        finished_at = COALESCE(finished_at, excluded.finished_at),
                        purged_at = COALESCE(purged_at, excluded.purged_at),
                        updated_at = COALESCE(excluded.updated_at, updated_at),
                        sweep_until = COALESCE(excluded.sweep_until, sweep_until),
                        sweep_misses = CASE WHEN excluded.sweep_until IS NULL
                            THEN sweep_misses ELSE 0 END,
                        sweep_closed_at = CASE WHEN excluded.sweep_until IS NULL
                            THEN sweep_closed_at END",
                    params![
                        order,
                        text(&r.last_status),
                        text(&r.reference),
                        text(&r.technical_reference),
                        text(&r.finished_at),
                        text(&r.purged_at),
                        text(&r.updated_at),
                        text(&r.sweep_until),
                    ],
                )
                .map_err(sql_error)?;
                // Purged orders are never open again.
                tx.execute(
                    "UPDATE orders SET sweep_until = NULL \
                     WHERE order_id = ?1 AND purged_at IS NOT NULL",
                    [order],
                )
                .map_err(sql_error)?;
                tx.commit().map_err(sql_error)
            })
            .await
    }

    async fn record_message_announcing(
        &self,
        message: &MessageRecord,
        announce: Option<&Event>,
    ) -> Result<RecordOutcome, StoreError> {
        if message.id.is_empty() || message.event_action.is_empty() {
            return Err(StoreError::Permanent(
                "a distributor message needs an id and an event action".into(),
            ));
        }
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
                            text(&m.municipality_name),
                            text(&m.municipality_number),
                            text(&m.organization_code),
                            text(&m.date_created),
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

    async fn open_orders(&self, now: &str) -> Result<Vec<OpenOrder>, StoreError> {
        let now = now.to_owned();
        self.db
            .call(move |conn| {
                // Each arm uses an index: `orders_open`, the holds' key and
                // `announcements_pending`. An order with events still to
                // announce is listed even when purged or closed.
                let mut stmt = conn
                    .prepare(
                        "SELECT ids.order_id, o.swept_at FROM (
                             SELECT order_id, 0 AS announcing FROM orders
                                 WHERE sweep_until >= ?1
                             UNION ALL
                             SELECT order_id, 0 FROM order_holds
                             UNION ALL
                             SELECT CAST(substr(scope, 7) AS INTEGER), 1 FROM announcements
                                 WHERE sent_at IS NULL AND scope LIKE 'order:%'
                         ) AS ids
                         LEFT JOIN orders o ON o.order_id = ids.order_id
                         GROUP BY ids.order_id
                         HAVING MAX(ids.announcing) = 1
                             OR (MAX(o.purged_at) IS NULL AND MAX(o.sweep_closed_at) IS NULL)
                         ORDER BY ids.order_id",
                    )
                    .map_err(sql_error)?;
                let rows = stmt
                    .query_map([now], |row| {
                        Ok(OpenOrder {
                            order_id: OrderId(get_u64(row, 0)?),
                            swept_at: row.get(1)?,
                        })
                    })
                    .map_err(sql_error)?;
                rows.collect::<Result<_, _>>().map_err(sql_error)
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

    async fn hold_open(&self, order: OrderId, reason: &str) -> Result<(), StoreError> {
        if reason.is_empty() {
            return Err(StoreError::Permanent("a hold needs a reason".into()));
        }
        let order = to_sql_int(order.0, "order id")?;
        let reason = reason.to_owned();
        let since = jiff::Timestamp::now().to_string();
        self.db
            .call(move |conn| {
                conn.execute(
                    "INSERT INTO order_holds (order_id, reason, since) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (order_id, reason) DO NOTHING",
                    params![order, reason, since],
                )
                .map_err(sql_error)?;
                Ok(())
            })
            .await
    }

    async fn release_hold(&self, order: OrderId, reason: &str) -> Result<(), StoreError> {
        let order = to_sql_int(order.0, "order id")?;
        let reason = reason.to_owned();
        self.db
            .call(move |conn| {
                conn.execute(
                    "DELETE FROM order_holds WHERE order_id = ?1 AND reason = ?2",
                    params![order, reason],
                )
                .map_err(sql_error)?;
                Ok(())
            })
            .await
    }

    async fn mark_swept(&self, order: OrderId, at: &str) -> Result<(), StoreError> {
        let order = to_sql_int(order.0, "order id")?;
        let at = at.to_owned();
        self.db
            .call(move |conn| {
                conn.execute(
                    "INSERT INTO orders (order_id, swept_at) VALUES (?1, ?2) \
                     ON CONFLICT (order_id) DO UPDATE SET swept_at = excluded.swept_at",
                    params![order, at],
                )
                .map_err(sql_error)?;
                Ok(())
            })
            .await
    }

    async fn sweep_missed(
        &self,
        order: OrderId,
        max_misses: u32,
        at: &str,
    ) -> Result<SweepMiss, StoreError> {
        let order = to_sql_int(order.0, "order id")?;
        let at = at.to_owned();
        self.db
            .call(move |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(sql_error)?;
                tx.execute(
                    "INSERT INTO orders (order_id, sweep_misses) VALUES (?1, 1) \
                     ON CONFLICT (order_id) DO UPDATE SET sweep_misses = sweep_misses + 1",
                    [order],
                )
                .map_err(sql_error)?;
                let misses: u32 = tx
                    .query_row(
                        "SELECT sweep_misses FROM orders WHERE order_id = ?1",
                        [order],
                        |row| row.get(0),
                    )
                    .map_err(sql_error)?;
                let closed = misses >= max_misses;
                if closed {
                    tx.execute(
                        "UPDATE orders SET sweep_until = NULL, \
                         sweep_closed_at = COALESCE(sweep_closed_at, ?2) WHERE order_id = ?1",
                        params![order, at],
                    )
                    .map_err(sql_error)?;
                }
                tx.commit().map_err(sql_error)?;
                Ok(SweepMiss { misses, closed })
            })
            .await
    }

    async fn sweep_found(&self, order: OrderId) -> Result<(), StoreError> {
        let order = to_sql_int(order.0, "order id")?;
        self.db
            .call(move |conn| {
                conn.execute(
                    "UPDATE orders SET sweep_misses = 0 WHERE order_id = ?1",
                    [order],
                )
                .map_err(sql_error)?;
                Ok(())
            })
            .await
    }
}

fn text(value: &Option<String>) -> Option<&str> {
    recorded_text(value.as_deref())
}

/// Creates the `assets` table, or brings one written before the FAILED state
/// up to date (SQLite cannot change a CHECK constraint in place).
fn create_assets_table(conn: &mut rusqlite::Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_error)?;
    let existing: Option<String> = tx
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'assets'",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(sql_error)?;
    let table = |name: &str| ASSETS_TABLE.replace("{name}", name);
    match existing {
        Some(sql) if !sql.contains("'FAILED'") => {
            tx.execute_batch(&format!(
                "ALTER TABLE assets RENAME TO assets_before_failed;
                 {}
                 INSERT INTO assets ({COLUMNS_BEFORE_FAILED})
                     SELECT {COLUMNS_BEFORE_FAILED} FROM assets_before_failed;
                 DROP TABLE assets_before_failed;",
                table("assets")
            ))
            .map_err(sql_error)?;
        }
        Some(_) => {}
        None => tx.execute_batch(&table("assets")).map_err(sql_error)?,
    }
    tx.commit().map_err(sql_error)
}

fn order_purged(conn: &rusqlite::Connection, order: i64) -> Result<bool, StoreError> {
    conn.query_row(
        "SELECT purged_at IS NOT NULL FROM orders WHERE order_id = ?1",
        [order],
        |row| row.get(0),
    )
    .optional()
    .map(|purged| purged.unwrap_or(false))
    .map_err(sql_error)
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

fn asset_record(
    conn: &rusqlite::Connection,
    order: i64,
    asset: &AssetId,
) -> Result<Option<AssetRecord>, StoreError> {
    conn.query_row(
        &format!("SELECT {ASSET_COLUMNS} FROM assets WHERE order_id = ?1 AND asset_id = ?2"),
        params![order, asset.as_str()],
        asset_from_row,
    )
    .optional()
    .map_err(sql_error)
}

fn state_from_sql(row: &Row<'_>, idx: usize) -> rusqlite::Result<AssetState> {
    match row.get_ref(idx)?.as_str()? {
        "STORED" => Ok(AssetState::Stored),
        "DELETED" => Ok(AssetState::Deleted),
        "FAILED" => Ok(AssetState::Failed),
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
        failure: match row.get::<_, Option<String>>(13)? {
            Some(reason) => Some(AssetFailure {
                reason,
                attempts: row.get::<_, Option<u32>>(14)?.unwrap_or(1),
                last_attempt_at: row.get::<_, Option<String>>(15)?.unwrap_or_default(),
                transient: row.get::<_, Option<bool>>(16)?.unwrap_or(false),
            }),
            None => None,
        },
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
        sweep_until: row.get(7)?,
        swept_at: row.get(8)?,
        sweep_misses: row.get(9)?,
        sweep_closed_at: row.get(10)?,
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
