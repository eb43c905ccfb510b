//! Downstream events of the orchestration, on the local ledger and file
//! store in a temp directory, with a bus that can refuse.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::fakes::{temp_dir, FakeKode, LocalBlobs, LocalLedger, MemAnnouncer};
use super::*;
use crate::events::{Event, EventData, EventType};
use crate::model::{AssetFailure, DistributorMessage, FailedAttempt};

struct World {
    kode: Arc<FakeKode>,
    blobs: Arc<LocalBlobs>,
    ledger: Arc<LocalLedger>,
    bus: Arc<MemAnnouncer>,
    processor: Processor,
    /// Holds the files and the ledger; removed when the test ends.
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let dir = temp_dir();
    let kode = Arc::new(FakeKode::default());
    let blobs = Arc::new(LocalBlobs::new(dir.path()));
    let ledger = Arc::new(LocalLedger::open(dir.path()).await);
    let bus = Arc::new(MemAnnouncer::default());
    let processor = Processor::new(kode.clone(), blobs.clone(), ledger.clone(), 2).with_announcing(
        Announcing {
            announcer: bus.clone(),
            bucket: Some("assets".into()),
        },
    );
    World {
        kode,
        blobs,
        ledger,
        bus,
        processor,
        _dir: dir,
    }
}

fn asset(id: &str, status: &str) -> Value {
    json!({
        "id": id,
        "filename": format!("{id}.pdf"),
        "downloadUrl": format!("https://kode.test/files/{id}"),
        "assetStatus": status,
    })
}

impl World {
    /// Order 7, sub-order 11 with these assets.
    fn order(&self, assets: &[Value]) {
        for a in assets {
            let (id, url) = (
                a["id"].as_str().unwrap(),
                a["downloadUrl"].as_str().unwrap(),
            );
            self.kode
                .add_file(url, format!("content of {id}").as_bytes());
        }
        let order = json!({"id": 7, "orders": [{"id": 11, "assets": assets}]});
        self.kode.set_order(serde_json::from_value(order).unwrap());
    }

    async fn push(&self, status: &str) -> Result<SyncReport, ProcessError> {
        let push = OrderPush {
            order_id: OrderId(7),
            status: PushStatus::parse(status),
            reference: Some("OPPDRAG-1".into()),
            technical_reference: None,
        };
        let deadline = Deadline::after(Duration::from_secs(60));
        self.processor.sync_order(&push, deadline).await
    }

    /// The ids announced, in order.
    fn announced(&self) -> Vec<String> {
        self.bus.taken().into_iter().map(|e| e.id.0).collect()
    }

    fn announced_of(&self, event_type: EventType) -> Vec<Event> {
        let taken = self.bus.taken();
        taken
            .into_iter()
            .filter(|e| e.event_type() == event_type)
            .collect()
    }
}

#[tokio::test]
async fn each_stored_file_is_announced_once_with_the_key_and_digest_of_the_stored_object() {
    let w = world().await;
    w.order(&[asset("a1", "OK"), asset("a2", "OK")]);
    w.push("NEW").await.unwrap();

    let stored = w.announced_of(EventType::AssetStored);
    assert_eq!(stored.len(), 2);
    for event in &stored {
        let EventData::AssetStored(data) = &event.data else {
            unreachable!()
        };
        let content = w
            .blobs
            .content(data.key.as_str())
            .expect("the stored object");
        assert_eq!(data.sha256, hex::encode(Sha256::digest(&content)));
        assert_eq!(data.bytes, content.len() as u64);
        assert_eq!(data.reference.as_deref(), Some("OPPDRAG-1"));
        assert_eq!(data.bucket.as_deref(), Some("assets"));
        assert_eq!(event.id.0, format!("7:{}:stored", data.asset_id));
    }
    assert!(w.ledger.pending().await.is_empty(), "cleared once taken");

    w.push("UPDATED").await.unwrap();
    assert_eq!(w.announced().len(), 2, "a redelivery announces nothing new");
}

#[tokio::test]
async fn a_withdrawn_file_is_announced_deleted_and_a_never_stored_one_is_not() {
    let w = world().await;
    w.order(&[asset("a1", "OK")]);
    w.push("NEW").await.unwrap();
    w.order(&[asset("a1", "DELETED"), asset("never", "DELETED")]);
    w.push("UPDATED").await.unwrap();

    let deleted = w.announced_of(EventType::AssetDeleted);
    assert_eq!(deleted.len(), 1);
    assert_eq!(
        deleted[0].data_json(),
        json!({"eventId": "7:a1:deleted", "orderId": 7, "assetId": "a1", "key": "orders/7/a1/a1.pdf"})
    );
}

#[tokio::test]
async fn order_completed_is_announced_once_after_two_finished_pushes() {
    let w = world().await;
    w.order(&[asset("a1", "OK"), asset("a2", "OK")]);
    w.push("FINISHED").await.unwrap();
    w.push("FINISHED").await.unwrap();

    let completed = w.announced_of(EventType::OrderCompleted);
    assert_eq!(completed.len(), 1);
    assert_eq!(
        completed[0].data_json(),
        json!({
            "eventId": "7:completed",
            "orderId": 7,
            "reference": "OPPDRAG-1",
            "files": 2,
            "keys": ["orders/7/a1/a1.pdf", "orders/7/a2/a2.pdf"],
        })
    );
    assert!(w.ledger.pending().await.is_empty());
}

#[tokio::test]
async fn order_completed_waits_until_every_ok_file_is_stored() {
    let w = world().await;
    w.order(&[asset("a1", "OK"), asset("a2", "OK")]);
    w.kode
        .truncated
        .lock()
        .unwrap()
        .insert("https://kode.test/files/a2".into());
    w.push("FINISHED").await.unwrap_err();
    assert!(w.announced_of(EventType::OrderCompleted).is_empty());
    // What was stored is announced anyway, and so is the file that turned
    // FAILED (a cut-off body: it is retried with the push).
    let first = w.announced();
    assert!(first.contains(&"7:a1:stored".to_owned()), "{first:?}");
    assert_eq!(w.announced_of(EventType::AssetFailed).len(), 1, "{first:?}");
    assert_eq!(first.len(), 2, "{first:?}");

    w.kode.truncated.lock().unwrap().clear();
    w.push("FINISHED").await.unwrap();
    let all = w.announced();
    assert_eq!(&all[2..], ["7:a2:stored", "7:completed"], "{all:?}");
}

#[tokio::test]
async fn a_finished_order_completes_with_a_later_push() {
    let w = world().await;
    // FINISHED while KODE still lists a file it later withdraws: a1 was
    // deleted earlier, so the order is not complete...
    w.order(&[asset("a1", "DELETED")]);
    w.push("UPDATED").await.unwrap();
    w.order(&[asset("a1", "OK"), asset("a2", "OK")]);
    w.push("FINISHED").await.unwrap();
    assert!(w.announced_of(EventType::OrderCompleted).is_empty());
    // ...until KODE shows it deleted again.
    w.order(&[asset("a1", "DELETED"), asset("a2", "OK")]);
    w.push("UPDATED").await.unwrap();
    let completed = w.announced_of(EventType::OrderCompleted);
    assert_eq!(completed.len(), 1);
    let EventData::OrderCompleted(data) = &completed[0].data else {
        unreachable!()
    };
    assert_eq!(data.files, 1);
}

#[tokio::test]
async fn a_cancelled_order_is_announced_purged_once_with_the_removed_files() {
    let w = world().await;
    w.order(&[asset("gone", "OK"), asset("a1", "OK"), asset("a2", "OK")]);
    w.push("NEW").await.unwrap();
    w.order(&[
        asset("gone", "DELETED"),
        asset("a1", "OK"),
        asset("a2", "OK"),
    ]);
    w.push("UPDATED").await.unwrap();
    w.push("CANCELLED").await.unwrap();
    w.push("CANCELLED").await.unwrap();

    let purged = w.announced_of(EventType::OrderPurged);
    assert_eq!(purged.len(), 1);
    assert_eq!(
        purged[0].data_json(),
        json!({
            "eventId": "7:purged",
            "orderId": 7,
            "status": "CANCELLED",
            "files": 2,
            "keys": ["orders/7/a1/a1.pdf", "orders/7/a2/a2.pdf"],
        }),
        "the file withdrawn before the purge is not the purge's"
    );
    assert_eq!(w.announced_of(EventType::AssetDeleted).len(), 3);
    assert!(w.blobs.keys().is_empty());
}

#[tokio::test]
async fn an_announcement_that_fails_once_is_made_by_the_next_run() {
    let w = world().await;
    w.order(&[asset("a1", "OK")]);
    w.bus.refuse.store(1, Ordering::SeqCst);
    let report = w
        .push("NEW")
        .await
        .expect("a failed announcement never fails the push");
    assert_eq!(names(&report.stored), ["a1"]);
    assert!(w.announced().is_empty());
    let pending: Vec<String> = w
        .ledger
        .pending()
        .await
        .into_iter()
        .map(|e| e.id.0)
        .collect();
    assert_eq!(pending, ["7:a1:stored"], "remembered in the ledger");

    w.push("UPDATED").await.unwrap();
    assert_eq!(w.announced(), ["7:a1:stored"]);
    assert!(w.ledger.pending().await.is_empty());
    w.push("UPDATED").await.unwrap();
    assert_eq!(w.announced(), ["7:a1:stored"], "and only once");
}

#[tokio::test]
async fn without_an_announcer_nothing_is_remembered() {
    let mut w = world().await;
    w.processor = Processor::new(w.kode.clone(), w.blobs.clone(), w.ledger.clone(), 2);
    w.order(&[asset("a1", "OK")]);
    w.push("FINISHED").await.unwrap();
    w.push("CANCELLED").await.unwrap();
    // Nothing is ever marked sent without an announcer: whatever was
    // remembered would still be pending.
    assert!(w.ledger.pending().await.is_empty());
    let announce = w.processor.failed_announcement(&failed_attempt());
    assert!(announce(None, 1).is_none());
}

fn failed_attempt() -> FailedAttempt {
    FailedAttempt {
        order_id: OrderId(7),
        asset_id: AssetId::from("a1"),
        reason: "404 Not Found".into(),
        at: "2024-05-01T10:00:00Z".into(),
        transient: false,
    }
}

#[tokio::test]
async fn a_distributor_message_is_announced_once_as_received() {
    let w = world().await;
    let body = include_str!("../../tests/fixtures/distributor_message.json");
    let Push::Distributor(message) = Push::from_slice(body.as_bytes()).unwrap() else {
        unreachable!()
    };
    let message: DistributorMessage = message;
    w.processor
        .store_message(&message, "2024-03-09T10:00:00Z")
        .await
        .unwrap();
    w.processor
        .store_message(&message, "2024-03-09T10:05:00Z")
        .await
        .unwrap();

    let announced = w.announced_of(EventType::DistributorMessage);
    assert_eq!(announced.len(), 1);
    let data = announced[0].data_json();
    assert_eq!(
        data["message"],
        "Planregisteret er utilgjengelig lørdag 08-12."
    );
    assert_eq!(data["municipalityNumber"], "0301");
    assert_eq!(data["eventAction"], "Created");
}

#[tokio::test]
async fn the_failed_event_is_made_when_the_file_turns_failed_and_after_parking_only() {
    let w = world().await;
    let announce = w.processor.failed_announcement(&failed_attempt());
    let event = announce(None, 1).expect("turned FAILED");
    assert_eq!(event.id.0, "7:a1:failed:2024-05-01T10:00:00Z");
    assert_eq!(
        event.data_json(),
        json!({"eventId": event.id.0, "orderId": 7, "assetId": "a1", "reason": "404 Not Found", "attempts": 1})
    );
    let before = |attempts| AssetFailure {
        reason: "404 Not Found".into(),
        attempts,
        last_attempt_at: "2024-04-30T10:00:00Z".into(),
        transient: false,
    };
    assert!(
        announce(Some(&before(1)), 2).is_none(),
        "not on every attempt"
    );
    let max = w.processor.failed.max_attempts;
    let again = announce(Some(&before(max)), max + 1).expect("failed again after parking");
    assert_eq!(again.data_json()["attempts"], max + 1);
}

fn names(ids: &[AssetId]) -> Vec<&str> {
    ids.iter().map(AssetId::as_str).collect()
}

#[tokio::test]
async fn a_purge_left_unannounced_is_announced_by_a_sweep_without_asking_kode() {
    let w = world().await;
    w.order(&[asset("a1", "OK")]);
    w.push("NEW").await.unwrap();
    w.bus.refuse.store(1, Ordering::SeqCst);
    w.push("CANCELLED").await.unwrap();
    assert_eq!(w.announced(), ["7:a1:stored"], "the purge's events refused");
    let open = |w: &World| {
        let ledger = w.ledger.clone();
        async move {
            let open = ledger.open_orders("2024-05-01T10:00:00Z").await.unwrap();
            open.iter().map(|o| o.order_id.0).collect::<Vec<_>>()
        }
    };
    assert_eq!(open(&w).await, [7], "purged, but its events keep it open");

    let gets = w.kode.order_gets.load(Ordering::SeqCst);
    let body = crate::envelope::SweepEnvelope::new(OrderId(7), "2024-05-01T10:00:00Z".into());
    let deadline = Deadline::after(Duration::from_secs(60));
    let outcome = w.processor.handle_envelope(&body.encode(), deadline).await;
    assert!(matches!(
        outcome,
        Ok(Outcome::Sweep(SweepOutcome::Skipped("purged")))
    ));
    assert_eq!(
        w.kode.order_gets.load(Ordering::SeqCst),
        gets,
        "KODE not asked"
    );
    assert_eq!(
        w.announced(),
        ["7:a1:stored", "7:a1:deleted", "7:purged"],
        "announced by the sweep"
    );
    assert!(open(&w).await.is_empty(), "nothing left: not open");
}

#[tokio::test]
async fn a_sweep_releases_the_events_hold_an_older_version_kept_once_nothing_is_pending() {
    let w = world().await;
    w.order(&[asset("a1", "OK")]);
    w.push("NEW").await.unwrap();
    w.ledger.hold_open(OrderId(7), "events").await.unwrap();
    let body = crate::envelope::SweepEnvelope::new(OrderId(7), "2024-05-01T10:00:00Z".into());
    let deadline = Deadline::after(Duration::from_secs(60));
    let outcome = w.processor.handle_envelope(&body.encode(), deadline).await;
    assert!(matches!(
        outcome,
        Ok(Outcome::Sweep(SweepOutcome::Synced(_)))
    ));
    assert!(w.ledger.holds(7).is_empty(), "{:?}", w.ledger.holds(7));
}
