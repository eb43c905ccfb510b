//! Orchestration: what a push does to files and ledger, end to end without
//! I/O to KODE, on the local ledger and file store in a temp directory.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::fakes::{temp_dir, FakeKode, LocalBlobs, LocalLedger};
use super::*;
use crate::envelope::SweepEnvelope;
use crate::model::{AssetState, ObjectKey};
use crate::model::{OrderLineId, SubOrderId};
use crate::sync::FailedPolicy;

struct World {
    kode: Arc<FakeKode>,
    blobs: Arc<LocalBlobs>,
    ledger: Arc<LocalLedger>,
    processor: Processor,
    /// Holds the files and the ledger; removed when the test ends.
    _dir: tempfile::TempDir,
}

async fn world(concurrency: usize) -> World {
    let dir = temp_dir();
    let kode = Arc::new(FakeKode::default());
    let blobs = Arc::new(LocalBlobs::new(dir.path()));
    let ledger = Arc::new(LocalLedger::open(dir.path()).await);
    let processor = Processor::new(kode.clone(), blobs.clone(), ledger.clone(), concurrency);
    World {
        kode,
        blobs,
        ledger,
        processor,
        _dir: dir,
    }
}

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(60))
}

fn asset(id: &str, status: &str) -> Value {
    json!({
        "id": id,
        "filename": format!("{id} kart.pdf"),
        "downloadUrl": format!("https://kode.test/files/{id}"),
        "assetStatus": status,
        "productCategory": "MAP",
    })
}

impl World {
    /// Order 7: sub-order 11 with `top` assets, its line 21 with `line` assets.
    fn order(&self, top: Vec<Value>, line: Vec<Value>) {
        for a in top.iter().chain(&line) {
            let id = a["id"].as_str().unwrap_or_default();
            let url = a["downloadUrl"].as_str().unwrap_or_default();
            self.kode
                .add_file(url, format!("content of {id}").as_bytes());
        }
        let order = json!({
            "id": 7,
            "orders": [{"id": 11, "assets": top, "orderLines": [{"id": 21, "assets": line}]}],
        });
        self.kode.set_order(serde_json::from_value(order).unwrap());
    }

    async fn push(&self, status: &str) -> Result<SyncReport, ProcessError> {
        let push = OrderPush {
            order_id: OrderId(7),
            status: PushStatus::parse(status),
            reference: Some("ref".into()),
            technical_reference: None,
        };
        self.processor.sync_order(&push, deadline()).await
    }

    /// The invariant that matters most: no ledger entry without its file.
    async fn assert_every_stored_record_has_its_file(&self) {
        for record in self.ledger.order_assets(OrderId(7)).await.unwrap() {
            if record.state == AssetState::Stored {
                let key = record.key.as_ref().map(|k| k.0.clone()).unwrap_or_default();
                assert!(
                    self.blobs.content(&key).is_some(),
                    "recorded but missing: {key}"
                );
            }
        }
    }
}

fn names(ids: &[AssetId]) -> Vec<&str> {
    ids.iter().map(AssetId::as_str).collect()
}

#[tokio::test]
async fn new_assets_are_stored_once_with_metadata_and_ledger_entries() {
    let w = world(4).await;
    w.order(vec![asset("top", "OK")], vec![asset("line", "OK")]);
    let report = w.push("NEW").await.unwrap();

    assert_eq!(names(&report.stored), ["top", "line"]);
    assert_eq!(report.bytes_stored, 14 + 15);
    assert_eq!(
        w.blobs.content("orders/7/top/top kart.pdf").as_deref(),
        Some(&b"content of top"[..])
    );
    assert_eq!(
        w.blobs.content("orders/7/line/line kart.pdf").as_deref(),
        Some(&b"content of line"[..])
    );

    let meta = w.blobs.meta("orders/7/line/line kart.pdf").unwrap();
    assert_eq!(meta.sub_order_id, SubOrderId(11));
    assert_eq!(meta.order_line_id, Some(OrderLineId(21)));
    assert_eq!(meta.original_name, "line kart.pdf");
    assert_eq!(meta.content_type.as_deref(), Some("application/pdf"));

    let record = w.ledger.asset(7, "line").await.unwrap();
    assert_eq!(record.state, AssetState::Stored);
    assert_eq!(
        record.key.as_ref().map(ObjectKey::as_str),
        Some("orders/7/line/line kart.pdf")
    );
    assert_eq!(record.sub_order_id, Some(SubOrderId(11)));
    assert_eq!(record.order_line_id, Some(OrderLineId(21)));
    assert_eq!(record.name.as_deref(), Some("line kart.pdf"));
    assert_eq!(record.bytes, Some(15));
    assert_eq!(
        record.sha256.as_deref(),
        Some(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"content of line")).as_str())
    );
    assert_eq!(record.content_type.as_deref(), Some("application/pdf"));
    let order = w.ledger.order_record(7).await.unwrap();
    assert_eq!(order.last_status.as_deref(), Some("NEW"));
    assert_eq!(order.reference.as_deref(), Some("ref"));
}

#[tokio::test]
async fn redelivered_push_downloads_nothing() {
    let w = world(4).await;
    w.order(vec![asset("a1", "OK"), asset("a2", "OK")], vec![]);
    w.push("UPDATED").await.unwrap();
    assert_eq!(w.kode.downloads(), 2);

    let again = w.push("UPDATED").await.unwrap();
    assert_eq!(w.kode.downloads(), 2, "nothing downloaded twice");
    assert!(again.stored.is_empty());
    assert_eq!(names(&again.skipped), ["a1", "a2"]);
}

#[tokio::test]
async fn second_update_downloads_only_the_new_file() {
    let w = world(4).await;
    w.order(vec![asset("a1", "OK")], vec![]);
    w.push("UPDATED").await.unwrap();
    w.order(vec![asset("a1", "OK")], vec![asset("a2", "OK")]);
    let report = w.push("UPDATED").await.unwrap();
    assert_eq!(names(&report.stored), ["a2"]);
    assert_eq!(w.kode.downloads(), 2);
}

#[tokio::test]
async fn deleted_asset_is_removed_and_marked() {
    let w = world(4).await;
    w.order(vec![asset("a1", "OK"), asset("a2", "OK")], vec![]);
    w.push("UPDATED").await.unwrap();
    w.order(vec![asset("a1", "DELETED"), asset("a2", "OK")], vec![]);
    let report = w.push("UPDATED").await.unwrap();

    assert_eq!(names(&report.deleted), ["a1"]);
    assert_eq!(w.blobs.keys(), ["orders/7/a2/a2 kart.pdf"]);
    assert_eq!(
        w.ledger.asset(7, "a1").await.unwrap().state,
        AssetState::Deleted
    );
    w.assert_every_stored_record_has_its_file().await;
}

#[tokio::test]
async fn deleted_asset_never_stored_is_never_stored_later() {
    let w = world(4).await;
    w.order(vec![asset("a1", "DELETED")], vec![]);
    let report = w.push("UPDATED").await.unwrap();
    assert_eq!(names(&report.tombstoned), ["a1"]);
    // KODE flips it back: a deleted file does not come back.
    w.order(vec![asset("a1", "OK")], vec![]);
    w.push("UPDATED").await.unwrap();
    assert_eq!(w.kode.downloads(), 0);
    assert!(w.blobs.keys().is_empty());
}

#[tokio::test]
async fn cancelled_order_loses_every_file_and_stores_nothing_later() {
    let w = world(4).await;
    w.order(vec![asset("a1", "OK")], vec![asset("a2", "OK")]);
    w.push("UPDATED").await.unwrap();
    assert_eq!(w.blobs.keys().len(), 2);

    let report = w.push("CANCELLED").await.unwrap();
    assert!(report.purged);
    assert_eq!(names(&report.deleted), ["a1", "a2"]);
    assert!(w.blobs.keys().is_empty());
    assert_eq!(
        w.ledger.asset(7, "a1").await.unwrap().state,
        AssetState::Deleted
    );
    assert!(w.ledger.order_record(7).await.unwrap().purged_at.is_some());

    w.order(
        vec![asset("a1", "OK")],
        vec![asset("a2", "OK"), asset("late", "OK")],
    );
    let later = w.push("UPDATED").await.unwrap();
    assert!(later.purged && later.stored.is_empty());
    assert!(w.blobs.keys().is_empty());
    assert_eq!(w.kode.downloads(), 2);
}

#[tokio::test]
async fn refunded_order_is_purged_even_when_kode_no_longer_shows_it() {
    let w = world(4).await;
    w.order(vec![asset("a1", "OK")], vec![]);
    w.push("UPDATED").await.unwrap();
    *w.kode.order_status.lock().unwrap() = Some(404);

    let report = w.push("REFUNDED").await.unwrap();
    assert_eq!(names(&report.deleted), ["a1"]);
    assert!(w.blobs.keys().is_empty());
}

#[tokio::test]
async fn transient_failure_fails_the_push_after_the_other_downloads() {
    let w = world(1).await;
    w.order(
        vec![asset("a1", "OK"), asset("bad", "OK"), asset("a3", "OK")],
        vec![],
    );
    w.kode
        .truncated
        .lock()
        .unwrap()
        .insert("https://kode.test/files/bad".into());

    let err = w.push("UPDATED").await.unwrap_err();
    assert!(
        err.is_retryable(),
        "a cut-off body is worth another try: {err}"
    );
    assert!(
        matches!(&err, ProcessError::Asset { asset, .. } if asset.as_str() == "bad"),
        "{err}"
    );
    // The download after the failing one still ran.
    assert_eq!(
        w.ledger.asset(7, "a3").await.unwrap().state,
        AssetState::Stored
    );
    let bad = w.ledger.asset(7, "bad").await.unwrap();
    assert_eq!(bad.state, AssetState::Failed);
    let failure = bad.failure.unwrap();
    assert!(failure.transient && failure.attempts == 1, "{failure:?}");
    assert!(w.blobs.content("orders/7/bad/bad kart.pdf").is_none());
    w.assert_every_stored_record_has_its_file().await;
    // The order is not recorded as synced, only as open for the sweep.
    let record = w.ledger.order_record(7).await.unwrap();
    assert_eq!((record.last_status, record.updated_at), (None, None));
    assert!(record.sweep_until.is_some());

    // The next delivery completes the order without fetching a1 or a3 again.
    w.kode.truncated.lock().unwrap().clear();
    let report = w.push("UPDATED").await.unwrap();
    assert_eq!(names(&report.skipped), ["a1", "a3"]);
    assert_eq!(names(&report.stored), ["bad"]);
    assert_eq!(w.ledger.asset(7, "bad").await.unwrap().failure, None);
}

#[tokio::test]
async fn permanent_failure_fails_only_the_asset() {
    let w = world(1).await;
    w.order(
        vec![asset("gone", "OK"), asset("a2", "OK"), asset("a3", "OK")],
        vec![],
    );
    w.kode
        .files
        .lock()
        .unwrap()
        .remove("https://kode.test/files/gone");

    let report = w.push("FINISHED").await.unwrap();
    assert_eq!(names(&report.stored), ["a2", "a3"]);
    assert_eq!(report.failed.len(), 1);
    let failed = &report.failed[0];
    assert_eq!(failed.asset_id.as_str(), "gone");
    assert!(failed.reason.contains("404"), "{}", failed.reason);
    assert!(!failed.transient && !failed.parked && failed.attempts == 1);
    // The completeness report names it, and the order counts as synced.
    assert_eq!(report.missing.as_deref().map(names), Some(vec!["gone"]));
    let order = w.ledger.order_record(7).await.unwrap();
    assert!(order.finished_at.is_some());
    assert_eq!(
        w.ledger.asset(7, "gone").await.unwrap().state,
        AssetState::Failed
    );
}

#[tokio::test]
async fn a_failed_file_holds_its_order_open_until_stored_or_parked() {
    let mut w = world(1).await;
    w.processor.failed = FailedPolicy {
        max_attempts: 2,
        retry_parked: false,
    };
    let held = |w: &World| w.ledger.holds(7).contains(&"failed".to_owned());
    w.order(vec![asset("gone", "OK"), asset("late", "OK")], vec![]);
    w.kode.files.lock().unwrap().clear();

    w.push("FINISHED").await.unwrap();
    assert!(held(&w), "an unparked FAILED file keeps the order open");
    w.push("FINISHED").await.unwrap();
    assert!(!held(&w), "parked: the sweep no longer retries it");

    // Retried on request and stored: nothing left to hold for.
    w.processor.failed.retry_parked = true;
    w.order(vec![asset("gone", "OK"), asset("late", "OK")], vec![]);
    w.push("FINISHED").await.unwrap();
    assert_eq!(
        w.ledger.asset(7, "gone").await.unwrap().state,
        AssetState::Stored
    );
    assert!(!held(&w));
}

#[tokio::test]
async fn failed_asset_is_retried_until_parked_then_only_on_request() {
    let mut w = world(1).await;
    w.processor.failed = FailedPolicy {
        max_attempts: 2,
        retry_parked: false,
    };
    w.order(vec![asset("gone", "OK")], vec![]);
    w.kode.files.lock().unwrap().clear();

    let first = w.push("UPDATED").await.unwrap();
    assert!(!first.failed[0].parked);
    let second = w.push("UPDATED").await.unwrap();
    assert!(second.failed[0].parked && second.failed[0].attempts == 2);
    assert_eq!(w.kode.downloads(), 2);

    // Parked: listed, not tried.
    let third = w.push("FINISHED").await.unwrap();
    assert_eq!(w.kode.downloads(), 2);
    assert!(third.failed[0].parked);
    assert_eq!(third.missing.as_deref().map(names), Some(vec!["gone"]));

    // Tried on request; a success replaces FAILED.
    w.order(vec![asset("gone", "OK")], vec![]);
    w.processor.failed.retry_parked = true;
    let retried = w.push("UPDATED").await.unwrap();
    assert_eq!(names(&retried.stored), ["gone"]);
    assert_eq!(
        w.ledger.asset(7, "gone").await.unwrap().state,
        AssetState::Stored
    );
}

#[tokio::test]
async fn failed_asset_deleted_in_kode_turns_deleted() {
    let w = world(1).await;
    w.order(vec![asset("gone", "OK")], vec![]);
    w.kode.files.lock().unwrap().clear();
    w.push("UPDATED").await.unwrap();

    w.order(vec![asset("gone", "DELETED")], vec![]);
    let report = w.push("UPDATED").await.unwrap();
    assert_eq!(names(&report.tombstoned), ["gone"]);
    let record = w.ledger.asset(7, "gone").await.unwrap();
    assert_eq!(record.state, AssetState::Deleted);
    assert_eq!(record.failure, None);
}

#[tokio::test]
async fn asset_deleted_by_a_concurrent_run_is_removed_again() {
    let w = world(4).await;
    w.order(vec![asset("a1", "OK")], vec![]);
    w.ledger
        .deleted_concurrently
        .lock()
        .unwrap()
        .insert(AssetId::from("a1"));

    let report = w.push("UPDATED").await.unwrap();
    assert_eq!(names(&report.refused), ["a1"]);
    assert!(report.stored.is_empty());
    assert!(w.blobs.keys().is_empty(), "the object just written is gone");
    assert_eq!(
        w.ledger.asset(7, "a1").await.unwrap().state,
        AssetState::Deleted
    );
}

#[tokio::test]
async fn finished_reports_missing_files() {
    let w = world(4).await;
    w.order(vec![asset("a1", "OK"), asset("a2", "OK")], vec![]);
    let report = w.push("FINISHED").await.unwrap();
    assert_eq!(report.missing, Some(vec![]));
    let order = w.ledger.order_record(7).await.unwrap();
    assert!(order.finished_at.is_some());

    let w = world(4).await;
    w.order(vec![asset("a1", "OK")], vec![]);
    w.ledger
        .deleted_concurrently
        .lock()
        .unwrap()
        .insert(AssetId::from("a1"));
    let report = w.push("FINISHED").await.unwrap();
    assert_eq!(report.missing.as_deref().map(names), Some(vec!["a1"]));
}

#[tokio::test]
async fn kode_outage_fails_retryably_and_changes_nothing() {
    let w = world(4).await;
    w.order(vec![asset("a1", "OK")], vec![]);
    *w.kode.order_status.lock().unwrap() = Some(503);
    let err = w.push("UPDATED").await.unwrap_err();
    assert!(err.is_retryable());
    assert!(w.blobs.keys().is_empty());
    // Only opened for the sweep (see below), not recorded as synced.
    assert_eq!(w.ledger.order_record(7).await.unwrap().last_status, None);

    *w.kode.order_status.lock().unwrap() = Some(403);
    assert!(!w.push("UPDATED").await.unwrap_err().is_retryable());
}

#[tokio::test]
async fn another_order_in_the_answer_is_refused() {
    let w = world(4).await;
    let order = json!({"id": 8, "orders": []});
    w.kode.set_order(serde_json::from_value(order).unwrap());
    let err = w.push("UPDATED").await.unwrap_err();
    assert!(matches!(err, ProcessError::OrderMismatch { .. }));
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn downloads_run_concurrently_up_to_the_limit() {
    let w = world(2).await;
    let assets = (0..6).map(|i| asset(&format!("a{i}"), "OK")).collect();
    w.order(assets, vec![]);
    let report = w.push("UPDATED").await.unwrap();
    assert_eq!(report.stored.len(), 6);
    assert_eq!(w.blobs.max_in_flight.load(Ordering::SeqCst), 2);
}

fn envelope(push: Value) -> String {
    let kind = if push.get("eventType").is_some() {
        "distributor"
    } else {
        "order"
    };
    json!({"v": 1, "kind": kind, "receivedAt": "2024-05-02T10:00:00Z", "push": push}).to_string()
}

#[tokio::test]
async fn envelope_with_an_order_push_syncs_the_order() {
    let w = world(4).await;
    w.order(vec![asset("a1", "OK")], vec![]);
    let body = envelope(json!({"orderCollectionId": "7", "status": "UPDATED"}));
    match w
        .processor
        .handle_envelope(&body, deadline())
        .await
        .unwrap()
    {
        Outcome::Order(report) => assert_eq!(names(&report.stored), ["a1"]),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn unparseable_envelope_fails_permanently() {
    let w = world(4).await;
    for body in ["", "{\"v\":1}", "[1,2]"] {
        let err = w
            .processor
            .handle_envelope(body, deadline())
            .await
            .unwrap_err();
        assert!(!err.is_retryable(), "{body:?}");
    }
}

#[tokio::test]
async fn distributor_message_is_stored_once() {
    let w = world(4).await;
    let body = envelope(json!({
        "eventType": "DistributorMessages",
        "eventAction": "Created",
        "content": {"id": "m1", "type": "DISTRIBUTOR", "message": "Kommunen er stengt", "municipalityName": "Oslo"},
    }));
    let first = w
        .processor
        .handle_envelope(&body, deadline())
        .await
        .unwrap();
    assert_eq!(first, Outcome::Message(RecordOutcome::Recorded));
    let again = w
        .processor
        .handle_envelope(&body, deadline())
        .await
        .unwrap();
    assert_eq!(again, Outcome::Message(RecordOutcome::AlreadyRecorded));

    let messages = w.ledger.messages().await;
    let stored = messages
        .iter()
        .find(|m| (m.id.as_str(), m.event_action.as_str()) == ("m1", "Created"))
        .unwrap();
    assert_eq!(stored.message_type, "DISTRIBUTOR");
    assert_eq!(stored.message, "Kommunen er stengt");
    assert_eq!(stored.received_at, "2024-05-02T10:00:00Z");
    assert_eq!(messages.len(), 1);
}

#[tokio::test]
async fn past_the_deadline_no_download_starts_and_the_push_is_retried() {
    let w = world(2).await;
    w.order(vec![asset("a1", "OK"), asset("a2", "OK")], vec![]);
    let push = OrderPush {
        order_id: OrderId(7),
        status: PushStatus::Updated,
        reference: None,
        technical_reference: None,
    };
    let err = w
        .processor
        .sync_order(&push, Deadline::after(Duration::ZERO))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(w.kode.downloads(), 0);
    assert!(
        w.ledger.order_assets(OrderId(7)).await.unwrap().is_empty(),
        "not an attempt: nothing recorded"
    );
}

// ---- sweeps ----

impl World {
    async fn sweep(&self) -> SweepOutcome {
        let body = SweepEnvelope::new(OrderId(7), "2024-05-01T10:00:00Z".into()).encode();
        match self.processor.handle_envelope(&body, deadline()).await {
            Ok(Outcome::Sweep(outcome)) => outcome,
            other => panic!("{other:?}"),
        }
    }
}

fn synced(outcome: SweepOutcome) -> SyncReport {
    match outcome {
        SweepOutcome::Synced(report) => report,
        other => panic!("not synced: {other:?}"),
    }
}

#[tokio::test]
async fn a_sweep_stores_the_file_whose_push_was_lost_and_keeps_the_recorded_status() {
    let w = world(4).await;
    w.order(vec![asset("a1", "OK")], vec![]);
    w.push("UPDATED").await.unwrap();
    let before = w.ledger.order_record(7).await.unwrap();
    assert_eq!(
        before.sweep_until.as_deref(),
        Some(crate::model::OPEN_FOREVER)
    );

    // A second file; its UPDATED push never arrives.
    w.order(vec![asset("a1", "OK")], vec![asset("a2", "OK")]);
    let report = synced(w.sweep().await);
    assert_eq!(names(&report.stored), ["a2"]);
    assert_eq!(report.status, PushStatus::Updated);
    assert_eq!(w.kode.downloads(), 2);
    let after = w.ledger.order_record(7).await.unwrap();
    assert_eq!(after.last_status, before.last_status);
    assert_eq!(after.updated_at, before.updated_at);
    assert_eq!(after.sweep_until, before.sweep_until);
}

#[tokio::test]
async fn a_finished_order_is_swept_as_finished_and_its_late_file_stored() {
    let w = world(4).await;
    w.order(vec![asset("a1", "OK")], vec![]);
    w.push("FINISHED").await.unwrap();
    let finished = w.ledger.order_record(7).await.unwrap();
    let until = finished.sweep_until.clone().expect("open after FINISHED");
    assert!(until.as_str() < crate::model::OPEN_FOREVER, "{until}");

    w.order(vec![asset("a1", "OK"), asset("late", "OK")], vec![]);
    let report = synced(w.sweep().await);
    assert_eq!(report.status, PushStatus::Finished);
    assert_eq!(names(&report.stored), ["late"]);
    assert_eq!(report.missing, Some(vec![]), "completeness reported");
    let after = w.ledger.order_record(7).await.unwrap();
    assert_eq!(after.last_status.as_deref(), Some("FINISHED"));
    assert_eq!(after.finished_at, finished.finished_at);
    assert_eq!(after.sweep_until, Some(until));
}

#[tokio::test]
async fn a_purged_order_is_not_fetched_by_a_sweep_and_is_not_open() {
    let w = world(4).await;
    w.order(vec![asset("a1", "OK")], vec![]);
    w.push("UPDATED").await.unwrap();
    w.push("CANCELLED").await.unwrap();
    let record = w.ledger.order_record(7).await.unwrap();
    assert_eq!(record.sweep_until, None);
    w.ledger.hold_open(OrderId(7), "events").await.unwrap();
    assert!(w
        .ledger
        .open_orders("2024-05-01T10:00:00Z")
        .await
        .unwrap()
        .is_empty());

    let gets = w.kode.order_gets.load(Ordering::SeqCst);
    assert_eq!(w.sweep().await, SweepOutcome::Skipped("purged"));
    assert_eq!(w.kode.order_gets.load(Ordering::SeqCst), gets);
    assert!(w.blobs.keys().is_empty());
}

#[tokio::test]
async fn an_order_kode_no_longer_knows_is_closed_after_the_misses_without_failing() {
    let w = world(4).await;
    w.order(vec![asset("a1", "OK")], vec![]);
    w.push("NEW").await.unwrap();
    *w.kode.order.lock().unwrap() = None;

    for expected in 1..=2 {
        match w.sweep().await {
            SweepOutcome::Missed(miss) => {
                assert_eq!((miss.misses, miss.closed), (expected, false));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            w.ledger
                .open_orders("2024-05-01T10:00:00Z")
                .await
                .unwrap()
                .len(),
            1
        );
    }
    match w.sweep().await {
        SweepOutcome::Missed(miss) => assert_eq!((miss.misses, miss.closed), (3, true)),
        other => panic!("{other:?}"),
    }
    assert!(w
        .ledger
        .open_orders("2024-05-01T10:00:00Z")
        .await
        .unwrap()
        .is_empty());
    let gets = w.kode.order_gets.load(Ordering::SeqCst);
    assert_eq!(w.sweep().await, SweepOutcome::Skipped("closed"));
    assert_eq!(w.kode.order_gets.load(Ordering::SeqCst), gets);

    // A push's own 404 still fails the push, as before the sweep existed.
    let err = w.push("UPDATED").await.unwrap_err();
    assert!(matches!(err, ProcessError::Order { .. }), "{err}");
}

#[tokio::test]
async fn misses_count_only_in_a_row() {
    let w = world(4).await;
    w.order(vec![asset("a1", "OK")], vec![]);
    w.push("NEW").await.unwrap();
    *w.kode.order_status.lock().unwrap() = Some(404);
    w.sweep().await;
    w.sweep().await;
    *w.kode.order_status.lock().unwrap() = None;
    synced(w.sweep().await);
    assert_eq!(w.ledger.order_record(7).await.unwrap().sweep_misses, 0);
    *w.kode.order_status.lock().unwrap() = Some(404);
    match w.sweep().await {
        SweepOutcome::Missed(miss) => assert_eq!((miss.misses, miss.closed), (1, false)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_sweep_that_kode_answers_with_an_error_fails_to_be_retried() {
    let w = world(4).await;
    w.order(vec![asset("a1", "OK")], vec![]);
    *w.kode.order_status.lock().unwrap() = Some(503);
    let body = SweepEnvelope::new(OrderId(7), "t".into()).encode();
    let err = w
        .processor
        .handle_envelope(&body, deadline())
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(w.ledger.order_record(7).await.map(|o| o.sweep_misses), None);
}

#[tokio::test]
async fn a_push_that_fails_on_kode_still_leaves_the_order_open_for_the_sweep() {
    let w = world(4).await;
    *w.kode.order_status.lock().unwrap() = Some(503);
    w.push("NEW").await.unwrap_err();
    let record = w
        .ledger
        .order_record(7)
        .await
        .expect("recorded before the failure");
    assert_eq!(
        record.sweep_until.as_deref(),
        Some(crate::model::OPEN_FOREVER)
    );
    assert_eq!(record.reference.as_deref(), Some("ref"));
    assert_eq!(record.last_status, None, "the push did not complete");
}
