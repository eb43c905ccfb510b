//! Carrying out a plan. Write order for crash safety: upload to the
//! deterministic key, then record; delete, then mark. A crash in between
//! leaves at worst an unrecorded object, which the next delivery overwrites
//! or deletes: never a ledger entry without its file.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::stream::{self, StreamExt};
use tokio::time::Instant;
use tracing::{info, warn};

use super::announce::EventContext;
use super::{millis, ProcessError, Processor, SyncReport};
use crate::metrics::Metric;
use crate::model::{AssetId, OrderId};
use crate::store::{PutError, RecordOutcome, StoreError};
use crate::sync::{Plan, PlannedDeletion, PlannedDownload, SkipReason};
use crate::Deadline;

/// What became of one planned download.
enum Fetched {
    Stored {
        bytes: u64,
    },
    /// A concurrent run recorded it first.
    AlreadyRecorded,
    /// Marked deleted meanwhile; the object just written was removed.
    Refused,
    /// Not started because another download of the push had failed.
    NotStarted,
}

impl Processor {
    pub(super) async fn execute(
        &self,
        plan: Plan,
        deadline: Deadline,
        now: &str,
        events: Option<&EventContext>,
    ) -> Result<SyncReport, ProcessError> {
        let order = plan.order_id;
        let mut report = SyncReport {
            order_id: order,
            status: plan.status.clone(),
            purged: plan.purge,
            stored: Vec::new(),
            bytes_stored: 0,
            skipped: plan.skipped.iter().map(|s| s.asset_id.clone()).collect(),
            deleted: Vec::new(),
            tombstoned: Vec::new(),
            refused: Vec::new(),
            missing: None,
        };
        for id in &plan.duplicates {
            warn!(action = "asset_duplicate", orderId = %order, assetId = %id, "asset listed more than once; handled once");
        }
        for skip in &plan.skipped {
            let reason = match &skip.reason {
                SkipReason::AlreadyStored => "already stored",
                SkipReason::AlreadyDeleted => "already deleted",
                SkipReason::DeletedEarlier => "deleted earlier; not stored again",
                SkipReason::UnknownStatus(_) => "unknown asset status",
            };
            info!(action = "asset_skipped", orderId = %order, assetId = %skip.asset_id, reason, "asset skipped");
        }

        // Marked first, so that nothing is stored for the order from here
        // on even if a deletion below fails (the retry purges again).
        if plan.purge {
            self.upsert_order(&plan).await?;
        }

        let removals: Vec<(&PlannedDeletion, bool)> = plan
            .deletions
            .iter()
            .map(|d| (d, true))
            .chain(plan.tombstones.iter().map(|d| (d, false)))
            .collect();
        let removed = self
            .bounded(
                removals
                    .iter()
                    .map(|&(d, stored)| self.remove(order, d, stored, now, events))
                    .collect(),
            )
            .await;
        for ((d, stored), result) in removals.into_iter().zip(removed) {
            result?;
            if stored {
                report.deleted.push(d.asset_id.clone());
            } else {
                report.tombstoned.push(d.asset_id.clone());
            }
        }
        if !report.deleted.is_empty() {
            self.metrics
                .emit(&[(Metric::AssetsDeleted, report.deleted.len() as f64)]);
        }

        let failed = AtomicBool::new(false);
        let fetched = self
            .bounded(
                plan.downloads
                    .iter()
                    .map(|d| self.fetch_unless_failed(d, &failed, deadline, now, events))
                    .collect(),
            )
            .await;
        let mut first_error = None;
        for (d, result) in plan.downloads.iter().zip(fetched) {
            match result {
                Ok(Fetched::Stored { bytes }) => {
                    report.stored.push(d.asset_id.clone());
                    report.bytes_stored += bytes;
                }
                Ok(Fetched::AlreadyRecorded) => report.skipped.push(d.asset_id.clone()),
                Ok(Fetched::Refused) => report.refused.push(d.asset_id.clone()),
                Ok(Fetched::NotStarted) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if !report.stored.is_empty() {
            self.metrics.emit(&[
                (Metric::AssetsStored, report.stored.len() as f64),
                (Metric::BytesStored, report.bytes_stored as f64),
            ]);
        }
        if let Some(e) = first_error {
            return Err(e);
        }

        if plan.purge {
            info!(action = "order_purged", orderId = %order, deleted = report.deleted.len(), tombstoned = report.tombstoned.len(), "order purged");
        } else {
            self.upsert_order(&plan).await?;
        }
        if plan.reports_completeness() {
            let missing: Vec<AssetId> = plan
                .ok_not_stored
                .iter()
                .chain(&report.refused)
                .cloned()
                .collect();
            let complete = missing.is_empty();
            let missing_ids: Vec<&str> = missing.iter().map(AssetId::as_str).collect();
            info!(action = "order_finished", orderId = %order, complete, missing = ?missing_ids, "order finished");
            report.missing = Some(missing);
        }
        Ok(report)
    }

    /// Runs the futures, at most `download_concurrency` at once, and
    /// returns their results in the order given. Every started future runs
    /// to its end: an upload cut off mid-way could not clean up after itself.
    async fn bounded<R, F: Future<Output = R>>(&self, work: Vec<F>) -> Vec<R> {
        let mut results: Vec<(usize, R)> = stream::iter(work.into_iter().enumerate())
            .map(|(i, fut)| async move { (i, fut.await) })
            .buffer_unordered(self.download_concurrency.max(1))
            .collect()
            .await;
        results.sort_by_key(|(i, _)| *i);
        results.into_iter().map(|(_, r)| r).collect()
    }

    /// Once one download of the push failed, the push fails: starting
    /// more would only spend the invocation's time.
    async fn fetch_unless_failed(
        &self,
        d: &PlannedDownload,
        failed: &AtomicBool,
        deadline: Deadline,
        now: &str,
        events: Option<&EventContext>,
    ) -> Result<Fetched, ProcessError> {
        if failed.load(Ordering::Relaxed) {
            return Ok(Fetched::NotStarted);
        }
        let result = self.fetch(d, deadline, now, events).await;
        if let Err(e) = &result {
            failed.store(true, Ordering::Relaxed);
            warn!(action = "asset_failed", orderId = %d.meta.order_id, assetId = %d.asset_id, retryable = e.is_retryable(), error = %e, "asset not stored");
        }
        result
    }

    async fn fetch(
        &self,
        d: &PlannedDownload,
        deadline: Deadline,
        now: &str,
        events: Option<&EventContext>,
    ) -> Result<Fetched, ProcessError> {
        let started = Instant::now();
        let order = d.meta.order_id;
        let asset_error = |cause: PutError| ProcessError::Asset {
            order,
            asset: d.asset_id.clone(),
            cause,
        };
        let mut body = self
            .kode
            .download(&d.url, deadline)
            .await
            .map_err(|e| asset_error(e.into()))?;
        let mut meta = d.meta.clone();
        meta.content_type = body.content_type().map(str::to_owned);
        let stored = self
            .blobs
            .put(&d.key, &meta, body.as_mut())
            .await
            .map_err(asset_error)?;
        let mut record = d.record(stored.bytes, stored.sha256, now);
        record.content_type = meta.content_type;
        let event = events.and_then(|e| e.stored(&record, now));
        let outcome = self
            .ledger
            .record_stored_announcing(&record, event.as_ref())
            .await
            .map_err(|e| asset_error(e.into()))?;
        let key = d.key.as_str();
        Ok(match outcome {
            RecordOutcome::Recorded => {
                info!(action = "asset_stored", orderId = %order, assetId = %d.asset_id, key, bytes = stored.bytes, durationMs = millis(started), "asset stored");
                Fetched::Stored {
                    bytes: stored.bytes,
                }
            }
            RecordOutcome::AlreadyRecorded => {
                info!(action = "asset_skipped", orderId = %order, assetId = %d.asset_id, key, reason = "recorded by a concurrent run", durationMs = millis(started), "asset skipped");
                Fetched::AlreadyRecorded
            }
            RecordOutcome::AlreadyDeleted => {
                self.blobs
                    .delete(&d.key)
                    .await
                    .map_err(|e| asset_error(e.into()))?;
                warn!(action = "asset_refused", orderId = %order, assetId = %d.asset_id, key, durationMs = millis(started), "asset was deleted meanwhile; removed the downloaded file");
                Fetched::Refused
            }
        })
    }

    async fn remove(
        &self,
        order: OrderId,
        d: &PlannedDeletion,
        stored: bool,
        now: &str,
        events: Option<&EventContext>,
    ) -> Result<(), ProcessError> {
        let started = Instant::now();
        let store_error = |cause: StoreError| ProcessError::Store {
            order: Some(order),
            cause,
        };
        self.blobs.delete(&d.key).await.map_err(store_error)?;
        let event = events
            .filter(|_| stored)
            .map(|e| e.deleted(order, &d.asset_id, &d.key, now));
        self.ledger
            .mark_deleted_announcing(order, &d.asset_id, now, event.as_ref())
            .await
            .map_err(store_error)?;
        let (action, message) = if stored {
            ("asset_deleted", "asset deleted")
        } else {
            (
                "asset_tombstoned",
                "asset marked deleted; it will never be stored",
            )
        };
        info!(action, orderId = %order, assetId = %d.asset_id, key = d.key.as_str(), durationMs = millis(started), "{message}");
        Ok(())
    }

    async fn upsert_order(&self, plan: &Plan) -> Result<(), ProcessError> {
        self.ledger
            .upsert_order(&plan.order_update)
            .await
            .map_err(|cause| ProcessError::Store {
                order: Some(plan.order_id),
                cause,
            })
    }
}
