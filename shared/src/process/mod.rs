//! Executes pushes: the orchestration shared by the processor Lambda,
//! `kode serve` and `kode sync`. Decisions come from [`crate::sync`]; this
//! module only talks to KODE, the file store and the ledger, in the order
//! that keeps them consistent after a crash.

mod announce;
mod envelope;
mod error;
mod execute;
mod kode_client;
mod messages;

#[cfg(test)]
mod announce_tests;
#[cfg(test)]
mod fakes;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use async_trait::async_trait;
use tokio::time::Instant;
use tracing::{error, warn};

use crate::api::ApiError;
use crate::events::EventScope;
use crate::metrics::{Metric, Metrics};
use crate::model::{AssetId, Order, OrderId, OrderPush, Push, PushStatus};
use crate::store::{Blobs, ChunkSource, Ledger, RecordOutcome};
use crate::sync::{self, LedgerView};
use crate::Deadline;

pub use announce::Announcing;
pub use envelope::{Envelope, ParsedEnvelope, ENVELOPE_VERSION};
pub use error::ProcessError;

/// What the processor needs from KODE; implemented by the API client, and
/// by fakes in tests.
#[async_trait]
pub trait KodeSource: Send + Sync {
    async fn get_order(&self, id: OrderId, deadline: Deadline) -> Result<Order, ApiError>;

    /// Starts a streaming download; the body checks its own completeness.
    async fn download(
        &self,
        url: &str,
        deadline: Deadline,
    ) -> Result<Box<dyn ChunkSource>, ApiError>;
}

/// Runs pushes against KODE, a file store and a ledger. Build once and share.
pub struct Processor {
    pub kode: Arc<dyn KodeSource>,
    pub blobs: Arc<dyn Blobs>,
    pub ledger: Arc<dyn Ledger>,
    /// Downloads of one push running at the same time (at least 1).
    pub download_concurrency: usize,
    pub metrics: Metrics,
    /// Downstream events; `None`: none are recorded or sent.
    pub announcing: Option<Announcing>,
}

/// What one queue message led to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Order(SyncReport),
    /// A distributor message: `Recorded`, or `AlreadyRecorded` on a replay.
    Message(RecordOutcome),
}

/// What one order push did.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncReport {
    pub order_id: OrderId,
    pub status: PushStatus,
    /// The order's files were purged (now or before).
    pub purged: bool,
    pub stored: Vec<AssetId>,
    pub bytes_stored: u64,
    /// Already stored or deleted, or of unknown status: nothing done.
    pub skipped: Vec<AssetId>,
    /// Stored files deleted.
    pub deleted: Vec<AssetId>,
    /// Never-stored assets marked so they cannot be stored later.
    pub tombstoned: Vec<AssetId>,
    /// Downloaded, but the ledger had meanwhile marked them deleted, so the
    /// file was removed again.
    pub refused: Vec<AssetId>,
    /// For a FINISHED push: the `OK` assets not stored after the sync
    /// (empty means complete). `None` for other pushes.
    pub missing: Option<Vec<AssetId>>,
}

impl Processor {
    /// A processor without metric output (see [`Metrics`]).
    pub fn new(
        kode: Arc<dyn KodeSource>,
        blobs: Arc<dyn Blobs>,
        ledger: Arc<dyn Ledger>,
        download_concurrency: usize,
    ) -> Processor {
        Processor {
            kode,
            blobs,
            ledger,
            download_concurrency,
            metrics: Metrics::Off,
            announcing: None,
        }
    }

    pub fn with_announcing(self, announcing: Announcing) -> Processor {
        Processor {
            announcing: Some(announcing),
            ..self
        }
    }

    pub fn with_metrics(self, metrics: Metrics) -> Processor {
        Processor { metrics, ..self }
    }

    /// Handles one queue message body (the webhook's envelope). A body that
    /// cannot be parsed is a permanent error, so the message ends in the DLQ
    /// instead of vanishing.
    pub async fn handle_envelope(
        &self,
        body: &str,
        deadline: Deadline,
    ) -> Result<Outcome, ProcessError> {
        let started = Instant::now();
        let result = match Envelope::parse(body) {
            Ok(envelope) => {
                self.emit_push_lag(&envelope.received_at);
                match &envelope.push {
                    Push::Order(push) => self.sync_order(push, deadline).await.map(Outcome::Order),
                    Push::Distributor(message) => self
                        .store_message(message, &envelope.received_at)
                        .await
                        .map(Outcome::Message),
                }
            }
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            let order = e.order_id().map(|o| o.to_string());
            error!(
                action = "push_failed",
                orderId = order.as_deref(),
                retryable = e.is_retryable(),
                durationMs = millis(started),
                error = %e,
                "push failed"
            );
            self.metrics.emit(&[(Metric::Failures, 1.0)]);
        }
        result
    }

    /// Brings storage and ledger in line with the order as KODE shows it now.
    pub async fn sync_order(
        &self,
        push: &OrderPush,
        deadline: Deadline,
    ) -> Result<SyncReport, ProcessError> {
        let order_id = push.order_id;
        let view = self.ledger_view(order_id).await?;
        let now = now_rfc3339();
        let fetched = self.kode.get_order(order_id, deadline).await;
        let plan = match fetched {
            Ok(order) if order.id != order_id => {
                return Err(ProcessError::OrderMismatch {
                    requested: order_id,
                    returned: order.id,
                })
            }
            Ok(order) => sync::plan(push, &order, &view, &now),
            // Deleting must not wait for an API that may no longer show a
            // cancelled order: the ledger knows every stored file.
            Err(e) if sync::purges(push, &view) => {
                warn!(
                    action = "order_unavailable",
                    orderId = %order_id,
                    error = %e,
                    "purging from the ledger alone"
                );
                sync::plan_purge_from_ledger(push, &view, &now)
            }
            Err(e) => {
                return Err(ProcessError::Order {
                    order: order_id,
                    cause: e,
                })
            }
        };
        let events = self.event_context(push, &view);
        let facts = announce::OrderFacts::of(&plan, push, &view);
        let mut result = self.execute(plan, deadline, &now, events.as_ref()).await;
        if let (Ok(report), Some(_)) = (&result, &events) {
            if let Err(e) = self.record_order_events(&facts, report).await {
                result = Err(e);
            }
        }
        // Also after a failure: what was stored before it is durable.
        self.announce_pending(EventScope::Order(order_id)).await;
        result
    }

    async fn ledger_view(&self, order: OrderId) -> Result<LedgerView, ProcessError> {
        let store = |cause| ProcessError::Store {
            order: Some(order),
            cause,
        };
        Ok(LedgerView {
            assets: self.ledger.order_assets(order).await.map_err(store)?,
            order: self.ledger.order(order).await.map_err(store)?,
        })
    }

    fn emit_push_lag(&self, received_at: &str) {
        match received_at.parse::<jiff::Timestamp>() {
            Ok(t) => {
                let lag = jiff::Timestamp::now().as_millisecond() - t.as_millisecond();
                self.metrics.emit(&[(Metric::PushLagMs, lag.max(0) as f64)]);
            }
            Err(e) => {
                warn!(receivedAt = received_at, error = %e, "envelope receivedAt is not RFC 3339")
            }
        }
    }
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}
