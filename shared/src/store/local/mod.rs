//! Embedded adapters of the storage ports for `kode serve`: files on disk
//! ([`DiskBlobs`]), the ledger in SQLite ([`SqliteLedger`]), a durable
//! FIFO queue in SQLite ([`SqliteQueue`]) and the webhook delivery queue
//! ([`SqliteDeliveries`]).
//!
//! SQLite calls block, so each adapter owns one connection behind a mutex and
//! runs every call on tokio's blocking pool. The databases use WAL with
//! `synchronous=FULL`: a committed write survives `kill -9` and power loss,
//! which is what lets the webhook answer 200 right after `send`.

mod blobs;
mod deliveries;
mod ledger;
mod queue;

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode};

use super::StoreError;

pub use blobs::DiskBlobs;
pub use deliveries::{DeadDelivery, Delivery, DeliveryFailure, DeliveryOptions, SqliteDeliveries};
pub use ledger::{LedgerTotals, SqliteLedger};
pub use queue::{ClaimedMessage, DeadLetter, FailOutcome, QueueOptions, SqliteQueue};

/// How long a writer waits for another process (a second `kode` command on
/// the same data dir) to release the database before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// One SQLite connection shared by the clones of an adapter.
#[derive(Clone)]
struct Db {
    conn: Arc<Mutex<Connection>>,
}

impl Db {
    /// Opens (creating if needed) the database and applies `schema`.
    async fn open(path: &Path, schema: &'static str) -> Result<Self, StoreError> {
        let path = path.to_owned();
        let conn = blocking(move || {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Permanent(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
            let conn = Connection::open(&path).map_err(|e| {
                StoreError::Permanent(format!("cannot open {}: {e}", path.display()))
            })?;
            conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_error)?;
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(sql_error)?;
            conn.pragma_update(None, "synchronous", "FULL")
                .map_err(sql_error)?;
            conn.execute_batch(schema).map_err(sql_error)?;
            Ok(conn)
        })
        .await?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        blocking(move || {
            // A panic inside an earlier call dropped its transaction, which
            // rolled back: the connection itself is still sound.
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn)
        })
        .await
    }
}

async fn blocking<T, F>(f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Permanent(format!("storage task failed: {e}")))?
}

/// Busy/locked databases and I/O hiccups can pass; everything else is a bug
/// or a broken database that retrying will not fix.
fn sql_error(error: rusqlite::Error) -> StoreError {
    match error.sqlite_error_code() {
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::OutOfMemory,
        ) => StoreError::Unavailable(format!("sqlite: {error}")),
        _ => StoreError::Permanent(format!("sqlite: {error}")),
    }
}

/// SQLite integers are signed; ids and sizes beyond `i64::MAX` are refused
/// rather than wrapped.
fn to_sql_int(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Permanent(format!("{what} {value} is too large")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn databases_are_durable_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("nested/x.sqlite"), "")
            .await
            .unwrap();

        let (mode, sync): (String, i64) = db
            .call(|conn| {
                let mode = conn
                    .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                    .map_err(sql_error)?;
                let sync = conn
                    .query_row("PRAGMA synchronous", [], |r| r.get(0))
                    .map_err(sql_error)?;
                Ok((mode, sync))
            })
            .await
            .unwrap();

        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "synchronous=FULL");
    }
}
