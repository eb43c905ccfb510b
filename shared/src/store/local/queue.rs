//! A durable FIFO queue in SQLite with the SQS FIFO semantics `kode serve`
//! relies on: per-group order (a group waits while its head is in flight or
//! waiting for a retry), deduplication ids remembered for 5 minutes, retries
//! with exponential backoff and a dead-letter table after a bounded number of
//! attempts.
//!
//! Every state change is one `BEGIN IMMEDIATE` transaction, so two consumers
//! (even in two processes) never claim the same message, and a committed
//! `send` survives `kill -9`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};
use tokio::sync::Notify;

use super::{sql_error, Db};
use crate::store::{OutgoingMessage, Queue, StoreError};

mod dead_letters;

use dead_letters::dead_letter;
pub use dead_letters::DeadLetter;

/// How long a deduplication id suppresses a second send (as in SQS FIFO).
const DEDUP_WINDOW: Duration = Duration::from_secs(5 * 60);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT    NOT NULL UNIQUE,
    group_id   TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('PENDING', 'IN_FLIGHT')),
    attempts   INTEGER NOT NULL,
    ready_at   INTEGER NOT NULL,
    sent_at    INTEGER NOT NULL,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS messages_by_group ON messages (group_id, seq);
CREATE TABLE IF NOT EXISTS dedup (
    dedup_id   TEXT    PRIMARY KEY,
    message_id TEXT    NOT NULL,
    sent_at    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq        INTEGER PRIMARY KEY,
    id         TEXT    NOT NULL,
    group_id   TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    attempts   INTEGER NOT NULL,
    last_error TEXT    NOT NULL,
    sent_at    INTEGER NOT NULL,
    failed_at  INTEGER NOT NULL
);
";

/// The oldest ready message of each group that has nothing ahead of it.
const READY_HEADS: &str = "
    FROM messages m
    WHERE m.state = 'PENDING'
      AND NOT EXISTS (
          SELECT 1 FROM messages e WHERE e.group_id = m.group_id AND e.seq < m.seq
      )";

/// Retry policy of the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueOptions {
    /// Deliveries before a message goes to the dead-letter table (at least 1).
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled for each further one.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(5 * 60),
        }
    }
}

/// A message handed to a consumer. It stays in flight (blocking its group)
/// until [`SqliteQueue::complete`], [`SqliteQueue::fail`] or a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedMessage {
    pub id: String,
    pub group: String,
    pub body: String,
    /// 1 on the first delivery.
    pub attempt: u32,
}

/// What [`SqliteQueue::fail`] did with the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Back in its group, not claimable before `ready_at`.
    Retrying { attempt: u32, ready_at: Timestamp },
    /// Moved to the dead-letter table; the group's later messages proceed.
    DeadLettered { attempts: u32 },
}

/// The local [`Queue`] and its consumer side.
#[derive(Clone)]
pub struct SqliteQueue {
    db: Db,
    options: QueueOptions,
    /// Wakes consumers of this process when something may have become ready.
    wake: Arc<Notify>,
}

impl SqliteQueue {
    /// Opens or creates the queue database at `path`.
    pub async fn open(path: impl AsRef<Path>, options: QueueOptions) -> Result<Self, StoreError> {
        if options.max_attempts == 0 {
            return Err(StoreError::Permanent(
                "queue max_attempts must be at least 1".into(),
            ));
        }
        Ok(Self {
            db: Db::open(path.as_ref(), SCHEMA).await?,
            options,
            wake: Arc::new(Notify::new()),
        })
    }

    /// Claims the oldest message that is ready at `now` and first in its
    /// group, or `None` if there is none.
    pub async fn claim_next(&self, now: Timestamp) -> Result<Option<ClaimedMessage>, StoreError> {
        let now = now.as_millisecond();
        self.db
            .call(move |conn| {
                let tx = immediate(conn)?;
                let found = tx
                    .query_row(
                        &format!(
                            "SELECT m.seq, m.id, m.group_id, m.body, m.attempts {READY_HEADS} \
                             AND m.ready_at <= ?1 ORDER BY m.seq LIMIT 1"
                        ),
                        [now],
                        |row| {
                            Ok((
                                row.get::<_, i64>(0)?,
                                ClaimedMessage {
                                    id: row.get(1)?,
                                    group: row.get(2)?,
                                    body: row.get(3)?,
                                    attempt: row.get::<_, u32>(4)?.saturating_add(1),
                                },
                            ))
                        },
                    )
                    .optional()
                    .map_err(sql_error)?;
                let Some((seq, message)) = found else {
                    return Ok(None);
                };
                tx.execute(
                    "UPDATE messages SET state = 'IN_FLIGHT', attempts = ?2 WHERE seq = ?1",
                    params![seq, message.attempt],
                )
                .map_err(sql_error)?;
                tx.commit().map_err(sql_error)?;
                Ok(Some(message))
            })
            .await
    }

    /// The work of the message is done: it leaves the queue.
    pub async fn complete(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.db
            .call(move |conn| {
                conn.execute("DELETE FROM messages WHERE id = ?1", [id])
                    .map_err(sql_error)?;
                Ok(())
            })
            .await?;
        self.wake_consumers();
        Ok(())
    }

    /// The attempt failed: retry after a backoff, or dead-letter the message
    /// once it has had `max_attempts` deliveries.
    pub async fn fail(
        &self,
        id: &str,
        error: &str,
        now: Timestamp,
    ) -> Result<FailOutcome, StoreError> {
        let id = id.to_owned();
        let error = error.to_owned();
        let options = self.options;
        let outcome = self
            .db
            .call(move |conn| {
                let tx = immediate(conn)?;
                let attempts = tx
                    .query_row(
                        "SELECT attempts FROM messages WHERE id = ?1 AND state = 'IN_FLIGHT'",
                        [&id],
                        |row| row.get::<_, u32>(0),
                    )
                    .optional()
                    .map_err(sql_error)?
                    .ok_or_else(|| {
                        StoreError::Permanent(format!("queue message {id} is not in flight"))
                    })?;
                let outcome = if attempts >= options.max_attempts {
                    dead_letter(&tx, &id, &error, now)?;
                    FailOutcome::DeadLettered { attempts }
                } else {
                    let ready_at = add(now, backoff(&options, attempts))?;
                    tx.execute(
                        "UPDATE messages SET state = 'PENDING', ready_at = ?2, last_error = ?3 \
                         WHERE id = ?1",
                        params![id, ready_at.as_millisecond(), error],
                    )
                    .map_err(sql_error)?;
                    FailOutcome::Retrying {
                        attempt: attempts,
                        ready_at,
                    }
                };
                tx.commit().map_err(sql_error)?;
                Ok(outcome)
            })
            .await?;
        self.wake_consumers();
        Ok(outcome)
    }

    /// Puts an in-flight message back at the head of its group without
    /// counting the attempt (used when shutting down before finishing it).
    pub async fn release(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.db
            .call(move |conn| {
                conn.execute(
                    "UPDATE messages SET state = 'PENDING', attempts = MAX(attempts - 1, 0) \
                     WHERE id = ?1 AND state = 'IN_FLIGHT'",
                    [id],
                )
                .map_err(sql_error)?;
                Ok(())
            })
            .await?;
        self.wake_consumers();
        Ok(())
    }

    /// At start-up: messages left in flight by a process that died are ready
    /// again. The interrupted delivery counts as an attempt (as an SQS
    /// receive does), so a message that kills the process every time ends in
    /// the dead-letter table instead of looping. Returns how many were made
    /// ready again.
    pub async fn release_in_flight(&self) -> Result<usize, StoreError> {
        let max_attempts = self.options.max_attempts;
        let now = Timestamp::now();
        let released = self
            .db
            .call(move |conn| {
                let tx = immediate(conn)?;
                let exhausted: Vec<String> = {
                    let mut stmt = tx
                        .prepare(
                            "SELECT id FROM messages \
                             WHERE state = 'IN_FLIGHT' AND attempts >= ?1 ORDER BY seq",
                        )
                        .map_err(sql_error)?;
                    let rows = stmt
                        .query_map([max_attempts], |row| row.get(0))
                        .map_err(sql_error)?;
                    rows.collect::<Result<_, _>>().map_err(sql_error)?
                };
                for id in &exhausted {
                    tracing::warn!(message_id = %id, action = "dead_letter", "message was in flight when the process stopped, on its last attempt");
                    dead_letter(&tx, id, "the process stopped while handling it", now)?;
                }
                let released = tx
                    .execute(
                        "UPDATE messages SET state = 'PENDING' WHERE state = 'IN_FLIGHT'",
                        [],
                    )
                    .map_err(sql_error)?;
                tx.commit().map_err(sql_error)?;
                Ok(released)
            })
            .await?;
        self.wake_consumers();
        Ok(released)
    }

    /// Messages still to be processed (pending or in flight), not counting
    /// dead letters.
    pub async fn backlog(&self) -> Result<u64, StoreError> {
        self.db
            .call(|conn| {
                let count: i64 = conn
                    .query_row("SELECT COUNT(*) FROM messages", [], |row| row.get(0))
                    .map_err(sql_error)?;
                Ok(count.unsigned_abs())
            })
            .await
    }

    /// Waits until a message may be claimable: something was sent or settled
    /// through this handle, a retry falls due, or `idle` passed (another
    /// process, like `kode dead-letters retry`, may have added work).
    pub async fn wait_for_work(&self, idle: Duration) -> Result<(), StoreError> {
        let next_ready: Option<i64> = self
            .db
            .call(|conn| {
                conn.query_row(
                    &format!("SELECT MIN(m.ready_at) {READY_HEADS}"),
                    [],
                    |row| row.get(0),
                )
                .map_err(sql_error)
            })
            .await?;
        let wait = match next_ready {
            Some(at) => {
                let ms = at.saturating_sub(Timestamp::now().as_millisecond()).max(0);
                idle.min(Duration::from_millis(ms.unsigned_abs()))
            }
            None => idle,
        };
        tokio::select! {
            () = self.wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
        Ok(())
    }

    fn wake_consumers(&self) {
        self.wake.notify_waiters();
        // Also keep a permit, for a consumer that is about to wait.
        self.wake.notify_one();
    }

    async fn send_at(
        &self,
        message: &OutgoingMessage,
        now: Timestamp,
    ) -> Result<String, StoreError> {
        if message.group.is_empty() || message.dedup_id.is_empty() {
            return Err(StoreError::Permanent(
                "a queue message needs a group and a deduplication id".into(),
            ));
        }
        let message = message.clone();
        let now_ms = now.as_millisecond();
        let window_start = now_ms.saturating_sub(millis(DEDUP_WINDOW));
        let id = self
            .db
            .call(move |conn| {
                let tx = immediate(conn)?;
                tx.execute("DELETE FROM dedup WHERE sent_at <= ?1", [window_start])
                    .map_err(sql_error)?;
                let earlier: Option<String> = tx
                    .query_row(
                        "SELECT message_id FROM dedup WHERE dedup_id = ?1",
                        [&message.dedup_id],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(sql_error)?;
                if let Some(id) = earlier {
                    return Ok(id);
                }
                let id = uuid::Uuid::new_v4().to_string();
                tx.execute(
                    "INSERT INTO messages (id, group_id, body, state, attempts, ready_at, sent_at) \
                     VALUES (?1, ?2, ?3, 'PENDING', 0, 0, ?4)",
                    params![id, message.group, message.body, now_ms],
                )
                .map_err(sql_error)?;
                tx.execute(
                    "INSERT INTO dedup (dedup_id, message_id, sent_at) VALUES (?1, ?2, ?3)",
                    params![message.dedup_id, id, now_ms],
                )
                .map_err(sql_error)?;
                tx.commit().map_err(sql_error)?;
                Ok(id)
            })
            .await?;
        self.wake_consumers();
        Ok(id)
    }
}

#[async_trait]
impl Queue for SqliteQueue {
    async fn send(&self, message: &OutgoingMessage) -> Result<String, StoreError> {
        self.send_at(message, Timestamp::now()).await
    }
}

fn immediate(conn: &mut rusqlite::Connection) -> Result<Transaction<'_>, StoreError> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_error)
}

/// `base * 2^(attempt-1)`, capped.
fn backoff(options: &QueueOptions, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
    options
        .base_backoff
        .saturating_mul(factor)
        .min(options.max_backoff)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn add(at: Timestamp, d: Duration) -> Result<Timestamp, StoreError> {
    from_millis(at.as_millisecond().saturating_add(millis(d)))
}

fn from_millis(ms: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_millisecond(ms)
        .map_err(|e| StoreError::Permanent(format!("time out of range: {e}")))
}

#[cfg(test)]
mod tests;
