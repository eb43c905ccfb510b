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

use crate::config::ConfigError;
use crate::metrics::{Metric, Metrics};
use crate::model::{OrderId, PushStatus};
use crate::process::SweepEnvelope;
use crate::store::{Ledger, OpenOrder, OutgoingMessage, Queue, StoreError};

/// `sweep_until` of an order open with no end (any status but FINISHED,
/// CANCELLED and REFUNDED): later than every real time, in the same format.
pub const OPEN_FOREVER: &str = "9999-12-31T23:59:59Z";

/// Days a FINISHED order stays open (`SWEEP_FINISHED_DAYS`): files may
/// follow FINISHED.
pub const DEFAULT_FINISHED_DAYS: u32 = 14;
/// Sweeps in a row KODE may answer 404 before the order is closed
/// (`SWEEP_MAX_MISSES`).
pub const DEFAULT_MAX_MISSES: u32 = 3;
/// How often a sweep runs by default.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(3600);

/// The open-order rules the processor applies when it records an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepPolicy {
    pub finished_days: u32,
    /// At least 1.
    pub max_misses: u32,
}

impl Default for SweepPolicy {
    fn default() -> Self {
        SweepPolicy {
            finished_days: DEFAULT_FINISHED_DAYS,
            max_misses: DEFAULT_MAX_MISSES,
        }
    }
}

impl SweepPolicy {
    /// `SWEEP_FINISHED_DAYS` and `SWEEP_MAX_MISSES` from the environment.
    pub fn from_env() -> Result<SweepPolicy, ConfigError> {
        let finished_days =
            crate::config::env_u64("SWEEP_FINISHED_DAYS", u64::from(DEFAULT_FINISHED_DAYS))?;
        let max_misses = crate::config::env_u64("SWEEP_MAX_MISSES", u64::from(DEFAULT_MAX_MISSES))?;
        let invalid = |name: &str, reason: &str| ConfigError::Invalid {
            name: name.to_owned(),
            reason: reason.to_owned(),
        };
        Ok(SweepPolicy {
            finished_days: u32::try_from(finished_days)
                .ok()
                .filter(|d| *d <= 36_500)
                .ok_or_else(|| invalid("SWEEP_FINISHED_DAYS", "at most 36500"))?,
            max_misses: u32::try_from(max_misses)
                .ok()
                .filter(|m| *m >= 1)
                .ok_or_else(|| invalid("SWEEP_MAX_MISSES", "a whole number from 1"))?,
        })
    }

    /// Until when an order whose last push had `status` (`None`: recorded
    /// at creation, no push yet) stays open: for good unless FINISHED (then
    /// `finished_days` after it first finished), never once CANCELLED or
    /// REFUNDED.
    pub fn open_until(
        &self,
        status: Option<&PushStatus>,
        finished_at: Option<&str>,
        now: Timestamp,
    ) -> Option<String> {
        match status {
            Some(s) if s.purges_files() => None,
            Some(PushStatus::Finished) => {
                let finished = finished_at
                    .and_then(|t| t.parse::<Timestamp>().ok())
                    .unwrap_or(now);
                let days = SignedDuration::from_hours(24 * i64::from(self.finished_days));
                Some(stamp(finished.checked_add(days).unwrap_or(finished)))
            }
            _ => Some(OPEN_FOREVER.to_owned()),
        }
    }
}

/// A time in the one format `sweep_until` is compared in (whole seconds,
/// UTC), so that comparing the strings compares the times.
pub fn stamp(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The sweep interval from the environment variable `name` (a humane
/// duration, default one hour).
pub fn interval_from_env(name: &str) -> Result<Duration, ConfigError> {
    match std::env::var(name).ok().filter(|v| !v.trim().is_empty()) {
        None => Ok(DEFAULT_INTERVAL),
        Some(raw) => parse_duration(&raw).map_err(|reason| ConfigError::Invalid {
            name: name.to_owned(),
            reason,
        }),
    }
}

/// A humane duration: `90s`, `15m`, `1h`, `2h30m`, `1d`, or a plain number of
/// seconds; `0` is zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => {
                return Err(format!(
                    "{text:?}: expected a duration like 90s, 15m, 1h or 1d"
                ))
            }
        };
        let n: u64 = number
            .parse()
            .map_err(|_| format!("{text:?}: a number must come before {c:?}"))?;
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| format!("{text:?} is too long"))?;
        number.clear();
    }
    if !number.is_empty() {
        return Err(format!(
            "{text:?}: the last number has no unit (s, m, h, d)"
        ));
    }
    Ok(Duration::from_secs(total))
}

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
