//! The sweep of `kode serve`: at start and then every interval, one message
//! per open order into the local queue (`kode::sweep`), where the workers
//! take it like a push.

use std::time::Duration;

use kode::metrics::Metrics;
use kode::store::local::{SqliteLedger, SqliteQueue};
use kode::sweep::Sweep;
use tokio::sync::watch;
use tracing::error;

pub(super) struct Sweeper {
    pub ledger: SqliteLedger,
    pub queue: SqliteQueue,
    pub interval: Duration,
    /// Set at shutdown.
    pub stop: watch::Receiver<bool>,
}

impl Sweeper {
    pub async fn run(mut self) {
        loop {
            let sweep = Sweep {
                ledger: &self.ledger,
                queue: &self.queue,
                interval: self.interval,
                metrics: Metrics::Off,
            };
            // Logged per order by the sweep; the next interval tries again.
            if let Err(e) = sweep.run(jiff::Timestamp::now()).await {
                error!(action = "sweep_failed", error = %e, "sweep incomplete");
            }
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                _ = self.stop.wait_for(|stop| *stop) => return,
            }
        }
    }
}
