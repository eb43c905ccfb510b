//! Carrying out a plan. Write order for crash safety: upload to the
//! deterministic key, then record; delete, then mark, then delete again. A
//! crash in between leaves at worst an unrecorded object, which the next
//! delivery overwrites or deletes: never a ledger entry without its file.

use std::future::Future;

use futures_util::stream::{self, StreamExt};
use tokio::time::Instant;
use tracing::{info, warn};

use super::announce::EventContext;
use super::{millis, AssetError, AssetFault, FailedAsset, ProcessError, Processor, SyncReport};
use crate::api::ApiError;
use crate::metrics::Metric;
use crate::model::FailedAttempt;
use crate::model::{AssetId, OrderId};
use crate::store::{FailedOutcome, RecordOutcome, StoreError};
use crate::sync::{Plan, PlannedDeletion, PlannedDownload, SkipReason};
use crate::Deadline;

/// The sweep hold of an order with a FAILED file still to retry.
const FAILED_HOLD: &str = "failed";

/// What became of one planned download.
enum Fetched {
    Stored {
        bytes: u64,
    },
    /// A concurrent run recorded it first.
    AlreadyRecorded,
    /// Marked deleted, or its order purged, meanwhile; the object just
    /// written was removed.
    Refused,
    /// Could not be fetched; recorded FAILED. A transient failure carries
    /// its error: the push fails once the other downloads are done.
    Failed(FailedAsset, Option<ProcessError>),
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
            failed: Vec::new(),
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
                SkipReason::Parked(f) => {
                    report.failed.push(FailedAsset {
                        asset_id: skip.asset_id.clone(),
                        reason: f.reason.clone(),
                        attempts: f.attempts,
                        transient: f.transient,
                        parked: true,
                    });
                    "parked: failed too often; retried only by kode sync --retry-failed"
                }
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

        let fetched = self
            .bounded(
                plan.downloads
                    .iter()
                    .map(|d| self.fetch_unless_late(d, deadline, now, events))
                    .collect(),
            )
            .await;
        let mut first_error = None;
        let mut newly_failed = 0;
        let mut failed_now = Vec::new();
        for (d, result) in plan.downloads.iter().zip(fetched) {
            match result {
                Ok(Fetched::Stored { bytes }) => {
                    report.stored.push(d.asset_id.clone());
                    report.bytes_stored += bytes;
                }
                Ok(Fetched::AlreadyRecorded) => report.skipped.push(d.asset_id.clone()),
                Ok(Fetched::Refused) => report.refused.push(d.asset_id.clone()),
                Ok(Fetched::Failed(failed, error)) => {
                    if failed.attempts == 1 {
                        newly_failed += 1;
                    }
                    failed_now.push(d.asset_id.clone());
                    report.failed.push(failed);
                    if let Some(e) = error {
                        first_error.get_or_insert(e);
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let mut counts = Vec::new();
        if !report.stored.is_empty() {
            counts.push((Metric::AssetsStored, report.stored.len() as f64));
            counts.push((Metric::BytesStored, report.bytes_stored as f64));
        }
        // Once per file, on its first failure: an alarm on it fires once per
        // file, not at every retry.
        if newly_failed > 0 {
            counts.push((Metric::AssetsFailed, f64::from(newly_failed)));
        }
        self.metrics.emit(&counts);
        // A file that failed and is not parked keeps its order open, so the
        // sweep tries it again even if no push of the order ever comes.
        let hold = |cause| ProcessError::Store {
            order: Some(order),
            cause,
        };
        if report.failed.iter().any(|f| !f.parked) {
            self.ledger
                .hold_open(order, FAILED_HOLD)
                .await
                .map_err(hold)?;
        } else if first_error.is_none() {
            self.ledger
                .release_hold(order, FAILED_HOLD)
                .await
                .map_err(hold)?;
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
                .chain(&failed_now)
                .cloned()
                .collect();
            let complete = missing.is_empty();
            let missing_ids: Vec<&str> = missing.iter().map(AssetId::as_str).collect();
            let failed: Vec<String> = report
                .failed
                .iter()
                .map(|f| format!("{}: {}", f.asset_id, f.reason))
                .collect();
            info!(action = "order_finished", orderId = %order, complete, missing = ?missing_ids, failed = ?failed, "order finished");
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

    /// Only the deadline keeps a download from starting; one asset's
    /// failure never stops the others.
    async fn fetch_unless_late(
        &self,
        d: &PlannedDownload,
        deadline: Deadline,
        now: &str,
        events: Option<&EventContext>,
    ) -> Result<Fetched, ProcessError> {
        if deadline.has_passed() {
            warn!(action = "asset_not_started", orderId = %d.meta.order_id, assetId = %d.asset_id, "deadline reached; left for the redelivery");
            return Err(ProcessError::Asset {
                order: d.meta.order_id,
                asset: d.asset_id.clone(),
                cause: AssetError::Download(ApiError::DeadlineExceeded {
                    what: format!("download of asset {}", d.asset_id),
                    attempts: 0,
                    last: "not started".into(),
                }),
            });
        }
        let result = self.fetch(d, deadline, now, events).await;
        let Err(ProcessError::Asset { cause, .. }) = &result else {
            return result;
        };
        let Some(fault) = cause.fault() else {
            warn!(action = "asset_failed", orderId = %d.meta.order_id, assetId = %d.asset_id, retryable = cause.is_retryable(), reason = %cause, "asset not stored; not the asset's fault");
            return result;
        };
        let reason = cause.to_string();
        let transient = fault == AssetFault::Transient;
        let attempt = FailedAttempt {
            order_id: d.meta.order_id,
            asset_id: d.asset_id.clone(),
            reason: reason.clone(),
            at: now.to_owned(),
            transient,
        };
        let recorded = self
            .ledger
            .record_failed_announcing(&attempt, self.failed_announcement(&attempt))
            .await
            .map_err(|cause| ProcessError::Store {
                order: Some(d.meta.order_id),
                cause,
            })?;
        let FailedOutcome::Recorded { attempts } = recorded else {
            // Stored or deleted by a concurrent run meanwhile: nothing failed.
            info!(action = "asset_skipped", orderId = %d.meta.order_id, assetId = %d.asset_id, reason = "settled by a concurrent run", "asset skipped");
            return Ok(Fetched::AlreadyRecorded);
        };
        let parked = self.failed.parks(attempts, transient);
        warn!(action = "asset_failed", orderId = %d.meta.order_id, assetId = %d.asset_id, reason, transient, attempts, parked, "asset not stored");
        let failed = FailedAsset {
            asset_id: d.asset_id.clone(),
            reason,
            attempts,
            transient,
            parked,
        };
        Ok(Fetched::Failed(
            failed,
            transient.then(|| result.err()).flatten(),
        ))
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
        let asset_error = |cause: AssetError| ProcessError::Asset {
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
            .map_err(|e| asset_error(e.into()))?;
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
            // No run can hold a STORED record for this asset now (the
            // ledger refuses it), so the file under its key is only ours.
            RecordOutcome::AlreadyDeleted | RecordOutcome::OrderPurged => {
                self.blobs
                    .delete(&d.key)
                    .await
                    .map_err(|e| asset_error(e.into()))?;
                let reason = if outcome == RecordOutcome::OrderPurged {
                    "order purged meanwhile"
                } else {
                    "asset deleted meanwhile"
                };
                warn!(action = "asset_refused", orderId = %order, assetId = %d.asset_id, key, reason, durationMs = millis(started), "asset refused; removed the downloaded file");
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
        // Once more: a concurrent run may have uploaded the file after the
        // first delete (and even recorded it, before the mark). From the mark
        // on, the ledger refuses to record it, so nothing comes back.
        self.blobs.delete(&d.key).await.map_err(store_error)?;
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
