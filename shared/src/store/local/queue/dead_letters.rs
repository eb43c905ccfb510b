//! The dead-letter side of the queue: messages that exhausted their
//! attempts, listed for `kode dead-letters` and requeued by its `retry`.

use jiff::Timestamp;
use rusqlite::{params, Row, Transaction};

use super::{immediate, SqliteQueue};
use crate::store::local::sql_error;
use crate::store::StoreError;

/// A message that exhausted its attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: String,
    pub group: String,
    pub body: String,
    pub attempts: u32,
    pub last_error: String,
    pub sent_at: Timestamp,
    pub failed_at: Timestamp,
}

impl SqliteQueue {
    /// The dead-letter table, oldest message first.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.db
            .call(|conn| {
                let mut stmt = conn
                    .prepare(
                        "SELECT id, group_id, body, attempts, last_error, sent_at, failed_at \
                         FROM dead_letters ORDER BY seq",
                    )
                    .map_err(sql_error)?;
                let rows = stmt
                    .query_map([], dead_letter_from_row)
                    .map_err(sql_error)?;
                rows.collect::<Result<_, _>>().map_err(sql_error)
            })
            .await
    }

    /// Requeues every dead letter as a new pending message with fresh
    /// attempts, in their original order, behind whatever is already queued
    /// in their group. Behind, not in front: processing re-syncs the whole
    /// order from KODE, so a late replay is harmless, while jumping ahead
    /// would hold up pushes that are already waiting. Returns how many.
    pub async fn retry_dead_letters(&self) -> Result<usize, StoreError> {
        let requeued = self
            .db
            .call(|conn| {
                let tx = immediate(conn)?;
                let ids: Vec<i64> = {
                    let mut stmt = tx
                        .prepare("SELECT seq FROM dead_letters ORDER BY seq")
                        .map_err(sql_error)?;
                    let rows = stmt.query_map([], |row| row.get(0)).map_err(sql_error)?;
                    rows.collect::<Result<_, _>>().map_err(sql_error)?
                };
                for seq in &ids {
                    tx.execute(
                        "INSERT INTO messages \
                         (id, group_id, body, state, attempts, ready_at, sent_at) \
                         SELECT id, group_id, body, 'PENDING', 0, 0, sent_at \
                         FROM dead_letters WHERE seq = ?1",
                        [seq],
                    )
                    .map_err(sql_error)?;
                    tx.execute("DELETE FROM dead_letters WHERE seq = ?1", [seq])
                        .map_err(sql_error)?;
                }
                tx.commit().map_err(sql_error)?;
                Ok(ids.len())
            })
            .await?;
        self.wake_consumers();
        Ok(requeued)
    }
}

/// Moves message `id` from `messages` to `dead_letters`.
pub(super) fn dead_letter(
    tx: &Transaction<'_>,
    id: &str,
    error: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO dead_letters \
         (seq, id, group_id, body, attempts, last_error, sent_at, failed_at) \
         SELECT seq, id, group_id, body, attempts, ?2, sent_at, ?3 FROM messages WHERE id = ?1",
        params![id, error, now.as_millisecond()],
    )
    .map_err(sql_error)?;
    tx.execute("DELETE FROM messages WHERE id = ?1", [id])
        .map_err(sql_error)?;
    Ok(())
}

fn dead_letter_from_row(row: &Row<'_>) -> rusqlite::Result<DeadLetter> {
    let time = |idx: usize| -> rusqlite::Result<Timestamp> {
        let ms: i64 = row.get(idx)?;
        Timestamp::from_millisecond(ms).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Integer, e.into())
        })
    };
    Ok(DeadLetter {
        id: row.get(0)?,
        group: row.get(1)?,
        body: row.get(2)?,
        attempts: row.get(3)?,
        last_error: row.get(4)?,
        sent_at: time(5)?,
        failed_at: time(6)?,
    })
}
