//! Executes pushes: the orchestration shared by the processor Lambda,
//! `kode serve` and `kode sync`. Decisions come from [`crate::sync`]; this
//! module only talks to KODE, the file store and the ledger, in the order
//! that keeps them consistent after a crash.

mod announce;
mod error;
mod execute;
mod kode_client;
mod messages;

#[cfg(test)]
mod announce_tests;
#[cfg(test)]
pub(crate) mod fakes;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use async_trait::async_trait;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::api::ApiError;
use crate::envelope::{parse_message, QueueMessage};
use crate::events::EventScope;
use crate::metrics::{Metric, Metrics};
use crate::model::OrderRecord;
use crate::model::{AssetId, Order, OrderId, OrderPush, Push, PushStatus};
use crate::store::{Blobs, Ledger, RecordOutcome, SweepMiss};
use crate::stream::ChunkSource;
use crate::sync::SweepPolicy;
use crate::sync::{self, FailedPolicy, LedgerView};
use crate::Deadline;

pub use announce::Announcing;
use announce::LEGACY_EVENTS_HOLD;
pub use error::{AssetError, AssetFault, ProcessError};

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
    /// When FAILED assets are tried again.
    pub failed: FailedPolicy,
    /// How long orders stay open for the sweep, and when a sweep gives up.
    pub sweep: SweepPolicy,
    /// Downstream events; `None`: none are recorded or sent.
    pub announcing: Option<Announcing>,
}

/// What one queue message led to.
#[derive(Debug, Clone, PartialEq)]
// One per queue message, moved once to the caller: boxing the report
// would save nothing worth its indirection.
#[allow(clippy::large_enum_variant)]
pub enum Outcome {
    Order(SyncReport),
    /// A distributor message: `Recorded`, or `AlreadyRecorded` on a replay.
    Message(RecordOutcome),
    Sweep(SweepOutcome),
}

/// What one sweep message led to.
#[derive(Debug, Clone, PartialEq)]
pub enum SweepOutcome {
    /// Synced as a push of the order's last recorded status.
    Synced(SyncReport),
    /// Purged or closed since the sweep listed it: KODE was not asked.
    Skipped(&'static str),
    /// KODE does not know the order (404).
    Missed(SweepMiss),
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
    /// Downloaded, but the ledger had meanwhile marked them deleted (or the
    /// order purged), so the file was removed again.
    pub refused: Vec<AssetId>,
    /// FAILED assets: those that failed now and the parked ones not tried.
    pub failed: Vec<FailedAsset>,
    /// For a FINISHED push: the `OK` assets not stored after the sync
    /// (empty means complete). `None` for other pushes.
    pub missing: Option<Vec<AssetId>>,
}

/// An asset left FAILED by a sync.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedAsset {
    pub asset_id: AssetId,
    /// The last attempt's error.
    pub reason: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// The failure may pass; the push failed so that it is redelivered.
    pub transient: bool,
    /// No longer tried by itself (see [`FailedPolicy`]).
    pub parked: bool,
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
            failed: FailedPolicy::default(),
            sweep: SweepPolicy::default(),
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

    pub fn with_failed_policy(self, failed: FailedPolicy) -> Processor {
        Processor { failed, ..self }
    }

    pub fn with_sweep_policy(self, sweep: SweepPolicy) -> Processor {
        Processor { sweep, ..self }
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
        let result = match parse_message(body) {
            Ok(QueueMessage::Push(envelope)) => {
                self.emit_push_lag(&envelope.received_at);
                match &envelope.push {
                    Push::Order(push) => self.sync_order(push, deadline).await.map(Outcome::Order),
                    Push::Distributor(message) => self
                        .store_message(message, &envelope.received_at)
                        .await
                        .map(Outcome::Message),
                }
            }
            Ok(QueueMessage::Sweep(sweep)) => self
                .sweep_order(sweep.order_id, deadline)
                .await
                .map(Outcome::Sweep),
            Err(e) => Err(e.into()),
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
        let timestamp = jiff::Timestamp::now();
        let now = timestamp.to_string();
        if push.status.purges_files() {
            // Before reading the ledger: from the mark on, no run can record
            // a file of the order, and whatever was recorded before it is in
            // the view this purge works from.
            self.ledger
                .upsert_order(&sync::purge_mark(push, &now))
                .await
                .map_err(|cause| ProcessError::Store {
                    order: Some(order_id),
                    cause,
                })?;
        }
        let view = self.ledger_view(order_id).await?;
        let finished_at = view.order.as_ref().and_then(|o| o.finished_at.as_deref());
        let sweep_until = self
            .sweep
            .open_until(Some(&push.status), finished_at, timestamp);
        let known_until = view.order.as_ref().and_then(|o| o.sweep_until.as_ref());
        if sweep_until.is_some() && known_until != sweep_until.as_ref() && !view.is_purged() {
            // Open before anything can fail: a push that fails on KODE or a
            // file leaves the order to the sweep, not to a push that may
            // never come again.
            let open = OrderRecord {
                order_id: Some(order_id),
                reference: push.reference.clone(),
                technical_reference: push.technical_reference.clone(),
                sweep_until: sweep_until.clone(),
                ..OrderRecord::default()
            };
            self.ledger
                .upsert_order(&open)
                .await
                .map_err(|cause| ProcessError::Store {
                    order: Some(order_id),
                    cause,
                })?;
        }
        let fetched = self.kode.get_order(order_id, deadline).await;
        let mut plan = match fetched {
            Ok(order) if order.id != order_id => {
                return Err(ProcessError::OrderMismatch {
                    requested: order_id,
                    returned: order.id,
                })
            }
            Ok(order) => sync::plan(push, &order, &view, &now, self.failed),
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
        plan.order_update.sweep_until = sweep_until;
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

    /// A sweep message: the order synced as if its last recorded push came
    /// again (a never-pushed order as UPDATED), without recording that
    /// status anew. A 404 from KODE counts a miss instead of failing, and
    /// closes the order at `SWEEP_MAX_MISSES`.
    pub async fn sweep_order(
        &self,
        order_id: OrderId,
        deadline: Deadline,
    ) -> Result<SweepOutcome, ProcessError> {
        let view = self.ledger_view(order_id).await?;
        let recorded = view.order.clone().unwrap_or_default();
        let skip = if view.is_purged() {
            Some("purged")
        } else if recorded.sweep_closed_at.is_some() {
            Some("closed")
        } else {
            None
        };
        if let Some(reason) = skip {
            // KODE is not asked, but what the order still owes downstream
            // (its purge, say) is announced: that is why it was listed.
            self.announce_for_sweep(order_id).await;
            info!(action = "sweep_skipped", orderId = %order_id, reason, "order not swept");
            return Ok(SweepOutcome::Skipped(reason));
        }
        let status = recorded
            .last_status
            .as_deref()
            .map_or(PushStatus::Updated, PushStatus::parse);
        let push = OrderPush {
            order_id,
            status,
            reference: None,
            technical_reference: None,
        };
        let now = now_rfc3339();
        let store = |cause| ProcessError::Store {
            order: Some(order_id),
            cause,
        };
        let order = match self.kode.get_order(order_id, deadline).await {
            Ok(order) if order.id != order_id => {
                return Err(ProcessError::OrderMismatch {
                    requested: order_id,
                    returned: order.id,
                })
            }
            Ok(order) => order,
            Err(e) if e.status() == Some(404) => {
                let miss = self
                    .ledger
                    .sweep_missed(order_id, self.sweep.max_misses, &now)
                    .await
                    .map_err(store)?;
                if miss.closed {
                    warn!(action = "sweep_closed", orderId = %order_id, misses = miss.misses, "KODE does not know the order; it is no longer swept");
                } else {
                    warn!(action = "sweep_miss", orderId = %order_id, misses = miss.misses, maxMisses = self.sweep.max_misses, "KODE does not know the order");
                }
                return Ok(SweepOutcome::Missed(miss));
            }
            Err(e) => {
                return Err(ProcessError::Order {
                    order: order_id,
                    cause: e,
                })
            }
        };
        if recorded.sweep_misses > 0 {
            self.ledger.sweep_found(order_id).await.map_err(store)?;
        }
        let mut plan = sync::plan(&push, &order, &view, &now, self.failed);
        // Nothing new from KODE about the order itself: the recorded status
        // and times stay as the pushes left them.
        plan.order_update = OrderRecord {
            order_id: Some(order_id),
            purged_at: plan.order_update.purged_at.take(),
            ..OrderRecord::default()
        };
        let events = self.event_context(&push, &view);
        let facts = announce::OrderFacts::of(&plan, &push, &view);
        let mut result = self.execute(plan, deadline, &now, events.as_ref()).await;
        if let (Ok(report), Some(_)) = (&result, &events) {
            if let Err(e) = self.record_order_events(&facts, report).await {
                result = Err(e);
            }
        }
        self.announce_for_sweep(order_id).await;
        let report = result?;
        info!(action = "order_swept", orderId = %order_id, status = %report.status, stored = report.stored.len(), deleted = report.deleted.len(), "order swept");
        Ok(SweepOutcome::Synced(report))
    }

    /// Announces the order's pending events at the end of a sweep, which
    /// also clears a hold the previous version kept for them.
    async fn announce_for_sweep(&self, order: OrderId) {
        if self.announce_pending(EventScope::Order(order)).await {
            if let Err(e) = self.ledger.release_hold(order, LEGACY_EVENTS_HOLD).await {
                warn!(action = "announce_hold_failed", orderId = %order, error = %e, "could not release the old events hold; the next sweep tries again");
            }
        }
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
