//! Downstream events of a run. Each event is written to the ledger in the
//! same step as the change it reports (or, for an order's completion and
//! purge, once that state is durable), and announced at the end of the run.
//! What the announcer did not take stays in the ledger for the order's next
//! run: a failed announcement never fails the push.

use std::sync::Arc;

use tracing::{info, warn};

use super::{now_rfc3339, ProcessError, Processor, SyncReport};
use crate::events::Announcer;
use crate::events::{self, Event, EventScope};
use crate::model::{AssetId, FailedAttempt, OrderId, OrderPush, PushStatus};
use crate::model::{AssetRecord, AssetState, ObjectKey};
use crate::store::{FailedAnnouncement, RecordOutcome, StoreError};
use crate::sync::{LedgerView, Plan};

/// Where the processor's events go.
#[derive(Clone)]
pub struct Announcing {
    pub announcer: Arc<dyn Announcer>,
    /// AWS: the asset bucket, named in `asset.stored`.
    pub bucket: Option<String>,
}

/// What the events of one run share.
pub(super) struct EventContext {
    reference: Option<String>,
    bucket: Option<String>,
}

impl EventContext {
    pub(super) fn stored(&self, record: &AssetRecord, now: &str) -> Option<Event> {
        events::asset_stored(
            record,
            self.reference.as_deref(),
            self.bucket.as_deref(),
            now,
        )
    }

    pub(super) fn deleted(
        &self,
        order: OrderId,
        asset: &AssetId,
        key: &ObjectKey,
        now: &str,
    ) -> Event {
        events::asset_deleted(order, asset, key, now)
    }
}

/// What deciding the order-level events needs from the plan, which the
/// run consumes.
pub(super) struct OrderFacts {
    purge: bool,
    finished: bool,
    /// `OK` assets the plan will not store (deleted earlier).
    ok_not_stored: bool,
    status: String,
    reference: Option<String>,
}

impl OrderFacts {
    pub(super) fn of(plan: &Plan, push: &OrderPush, view: &LedgerView) -> OrderFacts {
        let recorded = view.order.as_ref();
        // A push that completes a purge begun by an earlier CANCELLED or
        // REFUNDED push reports that status, not its own.
        let status = if push.status.purges_files() {
            push.status.as_str().to_owned()
        } else {
            recorded
                .and_then(|o| o.last_status.clone())
                .unwrap_or_else(|| push.status.as_str().to_owned())
        };
        OrderFacts {
            purge: plan.purge,
            finished: push.status == PushStatus::Finished
                || recorded.is_some_and(|o| o.finished_at.is_some()),
            ok_not_stored: !plan.ok_not_stored.is_empty(),
            status,
            reference: reference(push, view),
        }
    }
}

fn reference(push: &OrderPush, view: &LedgerView) -> Option<String> {
    push.reference
        .clone()
        .or_else(|| view.order.as_ref().and_then(|o| o.reference.clone()))
}

impl Processor {
    /// Whether this run announces anything, and what its events share.
    pub(super) fn event_context(
        &self,
        push: &OrderPush,
        view: &LedgerView,
    ) -> Option<EventContext> {
        self.announcing.as_ref().map(|a| EventContext {
            reference: reference(push, view),
            bucket: a.bucket.clone(),
        })
    }

    /// What a failed attempt announces, written with the FAILED record:
    /// `asset.failed` when the file turns FAILED, and again when it fails
    /// after it was parked ([`crate::sync::FailedPolicy::announces`]); nothing when
    /// events are off.
    pub(super) fn failed_announcement(&self, attempt: &FailedAttempt) -> Arc<FailedAnnouncement> {
        if self.announcing.is_none() {
            return Arc::new(|_, _| None);
        }
        let policy = self.failed;
        let attempt = attempt.clone();
        Arc::new(move |before, attempts| {
            policy.announces(before).then(|| {
                events::asset_failed(
                    attempt.order_id,
                    &attempt.asset_id,
                    &attempt.reason,
                    attempts,
                    &attempt.at,
                )
            })
        })
    }

    /// After a successful run: remembers `order.purged` once the purge is
    /// done, or `order.completed` once the order is FINISHED and every
    /// `OK` file is stored. Each once per order.
    pub(super) async fn record_order_events(
        &self,
        facts: &OrderFacts,
        report: &SyncReport,
    ) -> Result<(), ProcessError> {
        let order = report.order_id;
        // A FAILED file (retried or parked) is an OK file not stored.
        let complete = facts.finished
            && !facts.ok_not_stored
            && report.refused.is_empty()
            && report.failed.is_empty();
        if !facts.purge && !complete {
            return Ok(());
        }
        let store = |cause| ProcessError::Store {
            order: Some(order),
            cause,
        };
        let assets = self.ledger.order_assets(order).await.map_err(store)?;
        let now = now_rfc3339();
        let event = if facts.purge {
            let purged_at = self
                .ledger
                .order(order)
                .await
                .map_err(store)?
                .and_then(|o| o.purged_at);
            let removed = removed_by_purge(&assets, purged_at.as_deref());
            events::order_purged(order, &facts.status, &removed, &now)
        } else {
            let stored: Vec<ObjectKey> = assets
                .iter()
                .filter(|r| r.state == AssetState::Stored)
                .filter_map(|r| r.key.clone())
                .collect();
            events::order_completed(order, facts.reference.as_deref(), &stored, &now)
        };
        let outcome = self
            .ledger
            .record_announcement(&event)
            .await
            .map_err(store)?;
        if outcome == RecordOutcome::Recorded {
            info!(action = "order_event", orderId = %order, eventId = %event.id, eventType = %event.event_type(), "order event recorded for announcement");
        }
        Ok(())
    }

    /// Announces what the ledger holds for `scope` and clears what was
    /// taken; `true` when nothing is left. Failures are logged, never
    /// returned: the events stay pending for the next run (and keep their
    /// order open for the sweep). Every order run ends with it.
    pub async fn announce_pending(&self, scope: EventScope) -> bool {
        let Some(announcing) = &self.announcing else {
            return true;
        };
        let order = match scope {
            EventScope::Order(order) => Some(order.to_string()),
            EventScope::Distributor => None,
        };
        let pending = match self.ledger.pending_announcements(scope).await {
            Ok(pending) => pending,
            Err(e) => {
                warn!(action = "announce_failed", orderId = order.as_deref(), error = %e, "cannot read pending announcements; the next run tries again");
                return false;
            }
        };
        let mut left = 0;
        if !pending.is_empty() {
            let results = announcing.announcer.announce(&pending).await;
            let now = now_rfc3339();
            for (event, result) in pending.iter().zip(results) {
                let cleared = match result {
                    Ok(()) => self.ledger.announcement_sent(event, &now).await,
                    Err(e) => {
                        left += 1;
                        warn!(action = "announce_failed", orderId = order.as_deref(), eventId = %event.id, retryable = e.is_retryable(), error = %e, "event not announced; the next run of the order tries again");
                        continue;
                    }
                };
                match cleared {
                    Ok(()) => {
                        info!(action = "event_announced", orderId = order.as_deref(), eventId = %event.id, eventType = %event.event_type(), "event announced")
                    }
                    // Announced but still pending: announced again next run,
                    // a duplicate the stable id lets consumers drop.
                    Err(e) => {
                        left += 1;
                        warn_uncleared(event, &e)
                    }
                }
            }
        }
        left == 0
    }
}

/// The hold the version before pending announcements kept orders open
/// with; they do so by themselves now (see "Open orders" in
/// `docs/DESIGN.md`). Released by the order's next sweep.
pub(super) const LEGACY_EVENTS_HOLD: &str = "events";

fn warn_uncleared(event: &Event, e: &StoreError) {
    warn!(action = "announce_uncleared", eventId = %event.id, error = %e, "event announced but still marked pending; it will be announced again");
}

/// The stored files the purge removed: deleted at or after the purge
/// began (files withdrawn before it are not the purge's).
fn removed_by_purge(assets: &[AssetRecord], purged_at: Option<&str>) -> Vec<ObjectKey> {
    let parse = |t: &str| t.parse::<jiff::Timestamp>().ok();
    let since = purged_at.and_then(parse);
    assets
        .iter()
        .filter(|r| r.state == AssetState::Deleted && r.stored_at.is_some())
        .filter(|r| match (since, r.deleted_at.as_deref().and_then(parse)) {
            (Some(since), Some(deleted)) => deleted >= since,
            _ => true,
        })
        .filter_map(|r| r.key.clone())
        .collect()
}
