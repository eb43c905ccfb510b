//! The webhook delivery queue of `kode serve` (`notify.sqlite`): events the
//! ledger handed over, each tried until the receiver answers 2xx, with
//! backoff; after the last attempt a delivery is dead, listed by `kode
//! dead-letters` and queued again by its `retry`.
//!
//! It only carries events: what is still to announce is the ledger's to
//! know, and an event enters here in the step that clears it there.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use rusqlite::{params, OptionalExtension};
use tokio::sync::Notify;

use super::{sql_error, Db};
use crate::store::StoreError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS deliveries (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id   TEXT    NOT NULL UNIQUE,
    body       TEXT    NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    ready_at   INTEGER NOT NULL,
    queued_at  TEXT    NOT NULL,
    last_error TEXT,
    dead_at    TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_ready ON deliveries (ready_at) WHERE dead_at IS NULL;
";

/// Retry policy of deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryOptions {
    /// Tries before a delivery is dead (at least 1).
    pub max_attempts: u32,
    /// Wait after the first failure; doubled after each further one.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for DeliveryOptions {
    /// About an hour and a half of retries: a receiver restarted or
    /// redeployed in that time misses nothing.
    fn default() -> Self {
        DeliveryOptions {
            max_attempts: 12,
            base_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(30 * 60),
        }
    }
}

/// One event to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub event_id: String,
    pub body: String,
    /// Attempts made before this one.
    pub attempts: u32,
}

/// A delivery that used up its attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadDelivery {
    pub event_id: String,
    pub body: String,
    pub attempts: u32,
    pub last_error: String,
    pub dead_at: String,
}

/// What a failed attempt led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryFailure {
    Retrying { attempt: u32, ready_at: Timestamp },
    Dead { attempts: u32 },
}

/// The queue. Cheap to clone; clones share the connection and wake-ups.
#[derive(Clone)]
pub struct SqliteDeliveries {
    db: Db,
    options: DeliveryOptions,
    queued: Arc<Notify>,
}

impl SqliteDeliveries {
    pub const FILE: &'static str = "notify.sqlite";

    pub async fn open(
        path: impl AsRef<Path>,
        options: DeliveryOptions,
    ) -> Result<Self, StoreError> {
        Ok(SqliteDeliveries {
            db: Db::open(path.as_ref(), SCHEMA).await?,
            options,
            queued: Arc::new(Notify::new()),
        })
    }

    /// Queues events (id, webhook body); an id already queued is not
    /// queued twice. Returns once the queue is durable.
    pub async fn enqueue(&self, events: Vec<(String, String)>) -> Result<(), StoreError> {
        let now = Timestamp::now();
        self.db
            .call(move |conn| {
                let tx = conn.transaction().map_err(sql_error)?;
                for (id, body) in &events {
                    tx.execute(
                        "INSERT INTO deliveries (event_id, body, ready_at, queued_at) \
                         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (event_id) DO NOTHING",
                        params![id, body, now.as_millisecond(), now.to_string()],
                    )
                    .map_err(sql_error)?;
                }
                tx.commit().map_err(sql_error)
            })
            .await?;
        self.queued.notify_waiters();
        Ok(())
    }

    /// Up to `limit` deliveries due at `now`, oldest first.
    pub async fn due(&self, now: Timestamp, limit: u32) -> Result<Vec<Delivery>, StoreError> {
        self.db
            .call(move |conn| {
                let mut stmt = conn
                    .prepare(
                        "SELECT event_id, body, attempts FROM deliveries \
                         WHERE dead_at IS NULL AND ready_at <= ?1 ORDER BY seq LIMIT ?2",
                    )
                    .map_err(sql_error)?;
                let rows = stmt
                    .query_map(params![now.as_millisecond(), limit], |row| {
                        Ok(Delivery {
                            event_id: row.get(0)?,
                            body: row.get(1)?,
                            attempts: row.get(2)?,
                        })
                    })
                    .map_err(sql_error)?;
                rows.collect::<Result<_, _>>().map_err(sql_error)
            })
            .await
    }

    /// When the next live delivery is due, if any.
    pub async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        let ms: Option<i64> = self
            .db
            .call(|conn| {
                conn.query_row(
                    "SELECT MIN(ready_at) FROM deliveries WHERE dead_at IS NULL",
                    [],
                    |row| row.get(0),
                )
                .optional()
                .map(Option::flatten)
                .map_err(sql_error)
            })
            .await?;
        Ok(ms.and_then(|ms| Timestamp::from_millisecond(ms).ok()))
    }

    /// The receiver took it.
    pub async fn delivered(&self, event_id: &str) -> Result<(), StoreError> {
        let id = event_id.to_owned();
        self.db
            .call(move |conn| {
                conn.execute("DELETE FROM deliveries WHERE event_id = ?1", [id])
                    .map_err(sql_error)?;
                Ok(())
            })
            .await
    }

    /// Counts a failed attempt: retried after a backoff, or dead after the
    /// last attempt.
    pub async fn failed(
        &self,
        event_id: &str,
        error: &str,
        now: Timestamp,
    ) -> Result<DeliveryFailure, StoreError> {
        let (id, error, options) = (event_id.to_owned(), error.to_owned(), self.options);
        self.db
            .call(move |conn| {
                let tx = conn.transaction().map_err(sql_error)?;
                let attempts: u32 = tx
                    .query_row(
                        "SELECT attempts FROM deliveries WHERE event_id = ?1",
                        [&id],
                        |row| row.get(0),
                    )
                    .map_err(sql_error)?;
                let attempt = attempts + 1;
                let outcome = if attempt >= options.max_attempts.max(1) {
                    tx.execute(
                        "UPDATE deliveries SET attempts = ?2, last_error = ?3, dead_at = ?4 \
                         WHERE event_id = ?1",
                        params![id, attempt, error, now.to_string()],
                    )
                    .map_err(sql_error)?;
                    DeliveryFailure::Dead { attempts: attempt }
                } else {
                    let ready_at = now + backoff(&options, attempt);
                    tx.execute(
                        "UPDATE deliveries SET attempts = ?2, last_error = ?3, ready_at = ?4 \
                         WHERE event_id = ?1",
                        params![id, attempt, error, ready_at.as_millisecond()],
                    )
                    .map_err(sql_error)?;
                    DeliveryFailure::Retrying { attempt, ready_at }
                };
                tx.commit().map_err(sql_error)?;
                Ok(outcome)
            })
            .await
    }

    /// The dead deliveries, oldest first.
    pub async fn dead(&self) -> Result<Vec<DeadDelivery>, StoreError> {
        self.db
            .call(|conn| {
                let mut stmt = conn
                    .prepare(
                        "SELECT event_id, body, attempts, COALESCE(last_error, ''), dead_at \
                         FROM deliveries WHERE dead_at IS NOT NULL ORDER BY seq",
                    )
                    .map_err(sql_error)?;
                let rows = stmt
                    .query_map([], |row| {
                        Ok(DeadDelivery {
                            event_id: row.get(0)?,
                            body: row.get(1)?,
                            attempts: row.get(2)?,
                            last_error: row.get(3)?,
                            dead_at: row.get(4)?,
                        })
                    })
                    .map_err(sql_error)?;
                rows.collect::<Result<_, _>>().map_err(sql_error)
            })
            .await
    }

    /// Gives every dead delivery fresh attempts, due now. Returns how many.
    pub async fn retry_dead(&self) -> Result<usize, StoreError> {
        let count = self
            .db
            .call(|conn| {
                conn.execute(
                    "UPDATE deliveries SET dead_at = NULL, attempts = 0, ready_at = 0 \
                     WHERE dead_at IS NOT NULL",
                    [],
                )
                .map_err(sql_error)
            })
            .await?;
        self.queued.notify_waiters();
        Ok(count)
    }

    /// Waits until something is queued in this process, or `timeout`.
    pub async fn wait_for_work(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.queued.notified()).await;
    }
}

fn backoff(options: &DeliveryOptions, attempt: u32) -> jiff::SignedDuration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
    let wait = options
        .base_backoff
        .saturating_mul(factor)
        .min(options.max_backoff);
    jiff::SignedDuration::try_from(wait).unwrap_or(jiff::SignedDuration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn queue(max_attempts: u32) -> (tempfile::TempDir, SqliteDeliveries) {
        let dir = tempfile::tempdir().unwrap();
        let options = DeliveryOptions {
            max_attempts,
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(3),
        };
        let queue = SqliteDeliveries::open(dir.path().join(SqliteDeliveries::FILE), options)
            .await
            .unwrap();
        (dir, queue)
    }

    fn one(id: &str) -> Vec<(String, String)> {
        vec![(id.to_owned(), format!("{{\"id\":\"{id}\"}}"))]
    }

    #[tokio::test]
    async fn a_failed_delivery_waits_longer_each_time_then_dies() {
        let (_dir, queue) = queue(4).await;
        queue.enqueue(one("e1")).await.unwrap();
        queue.enqueue(one("e1")).await.unwrap();
        let now = Timestamp::now();
        assert_eq!(queue.due(now, 10).await.unwrap().len(), 1, "queued once");

        let mut waits = Vec::new();
        for _ in 0..3 {
            match queue.failed("e1", "HTTP 503", now).await.unwrap() {
                DeliveryFailure::Retrying { ready_at, .. } => {
                    waits.push(ready_at.as_second() - now.as_second());
                    assert!(queue.due(now, 10).await.unwrap().is_empty());
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(waits, [1, 2, 3], "doubled, capped at max_backoff");
        assert_eq!(
            queue.failed("e1", "HTTP 503", now).await.unwrap(),
            DeliveryFailure::Dead { attempts: 4 }
        );
        let dead = queue.dead().await.unwrap();
        assert_eq!((dead.len(), dead[0].last_error.as_str()), (1, "HTTP 503"));
        assert_eq!(queue.next_due().await.unwrap(), None);

        assert_eq!(queue.retry_dead().await.unwrap(), 1);
        let due = queue.due(now, 10).await.unwrap();
        assert_eq!((due.len(), due[0].attempts), (1, 0));
        assert!(queue.dead().await.unwrap().is_empty());

        queue.delivered("e1").await.unwrap();
        assert!(queue.due(now, 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn deliveries_survive_reopening() {
        let (dir, queue) = queue(3).await;
        queue.enqueue(one("a")).await.unwrap();
        queue.enqueue(one("b")).await.unwrap();
        drop(queue);
        let reopened = SqliteDeliveries::open(
            dir.path().join(SqliteDeliveries::FILE),
            DeliveryOptions::default(),
        )
        .await
        .unwrap();
        let ids: Vec<String> = reopened
            .due(Timestamp::now(), 10)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.event_id)
            .collect();
        assert_eq!(ids, ["a", "b"]);
    }
}
