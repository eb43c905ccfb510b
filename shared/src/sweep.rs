//! The sweep: every interval, one queue message per open order, so that an
//! order whose push was lost (or never came) is still synced. The message
//! goes into the push queue under the order's own group, so a sweep never
//! runs beside a push of the same order; the processor treats it as a push
//! of the order's last recorded status ("Open orders" and "The sweep" in
//! `docs/DESIGN.md`).

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::time::Instant;
use tracing::{error, info};

use crate::envelope::SweepEnvelope;
use crate::metrics::{Metric, Metrics};
use crate::model::{stamp, OrderId};
use crate::store::{Ledger, OpenOrder, OutgoingMessage, Queue, StoreError};

/// What one sweep did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepSummary {
    /// Open orders the ledger listed.
    pub open: usize,
    /// Orders a message was sent for (or would be, on a dry run).
    pub enqueued: Vec<OrderId>,
    /// Open orders swept less than half an interval ago.
    pub recent: Vec<OrderId>,
    /// Orders whose message could not be sent.
    pub failed: Vec<OrderId>,
}

/// Why a sweep could not be done, or not completely.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("cannot list the open orders: {0}")]
    List(#[source] StoreError),
    #[error("{failed} of {open} sweep message(s) could not be sent (first error: {first})")]
    Send {
        failed: usize,
        open: usize,
        first: StoreError,
    },
}

impl SweepError {
    pub fn is_retryable(&self) -> bool {
        match self {
            SweepError::List(e) => e.is_retryable(),
            SweepError::Send { first, .. } => first.is_retryable(),
        }
    }
}

/// One sweep run.
pub struct Sweep<'a> {
    pub ledger: &'a dyn Ledger,
    pub queue: &'a dyn Queue,
    /// An order swept less than half of this ago is left out: a message for
    /// it may still be waiting behind a busy group (the queue's own
    /// deduplication lasts only 5 minutes).
    pub interval: Duration,
    pub metrics: Metrics,
}

impl Sweep<'_> {
    /// The orders a sweep at `now` would enqueue; nothing is sent.
    pub async fn plan(&self, now: Timestamp) -> Result<SweepSummary, SweepError> {
        let open = self
            .ledger
            .open_orders(&stamp(now))
            .await
            .map_err(SweepError::List)?;
        let mut summary = SweepSummary {
            open: open.len(),
            ..SweepSummary::default()
        };
        for order in open {
            if self.swept_recently(&order, now) {
                summary.recent.push(order.order_id);
            } else {
                summary.enqueued.push(order.order_id);
            }
        }
        Ok(summary)
    }

    /// Sends one sweep message per open order not swept recently, logs
    /// `sweep_enqueued` for each and one `sweep_done` line, and emits
    /// `OrdersSwept`. A failed send does not stop the others; it is an
    /// error at the end.
    pub async fn run(&self, now: Timestamp) -> Result<SweepSummary, SweepError> {
        let started = Instant::now();
        let mut summary = self.plan(now).await?;
        let at = now.to_string();
        let mut first_error = None;
        let mut sent = Vec::with_capacity(summary.enqueued.len());
        for order in std::mem::take(&mut summary.enqueued) {
            let message = OutgoingMessage {
                group: format!("order-{order}"),
                // Unique per sweep: two sweeps of one order are two syncs.
                dedup_id: format!("sweep-{order}-{}", now.as_millisecond()),
                body: SweepEnvelope::new(order, at.clone()).encode(),
            };
            match self.queue.send(&message).await {
                Ok(message_id) => {
                    info!(action = "sweep_enqueued", orderId = %order, messageId = %message_id, "sweep message sent");
                    // Only ever too early a sweep next time if this fails.
                    if let Err(e) = self.ledger.mark_swept(order, &at).await {
                        error!(action = "sweep_mark_failed", orderId = %order, error = %e, "could not record the sweep");
                    }
                    sent.push(order);
                }
                Err(e) => {
                    error!(action = "sweep_failed", orderId = %order, retryable = e.is_retryable(), error = %e, "sweep message not sent");
                    summary.failed.push(order);
                    first_error.get_or_insert(e);
                }
            }
        }
        summary.enqueued = sent;
        info!(
            action = "sweep_done",
            open = summary.open,
            enqueued = summary.enqueued.len(),
            skippedRecent = summary.recent.len(),
            failed = summary.failed.len(),
            durationMs = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "sweep done"
        );
        self.metrics
            .emit(&[(Metric::OrdersSwept, summary.enqueued.len() as f64)]);
        match first_error {
            None => Ok(summary),
            Some(first) => Err(SweepError::Send {
                failed: summary.failed.len(),
                open: summary.open,
                first,
            }),
        }
    }

    fn swept_recently(&self, order: &OpenOrder, now: Timestamp) -> bool {
        let Some(swept) = order
            .swept_at
            .as_deref()
            .and_then(|t| t.parse::<Timestamp>().ok())
        else {
            return false;
        };
        let half = SignedDuration::try_from(self.interval / 2).unwrap_or(SignedDuration::MAX);
        swept.checked_add(half).is_ok_and(|until| until > now)
    }
}

#[cfg(test)]
mod tests;
