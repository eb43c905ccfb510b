//! The ledger contract: the same checks on `SqliteLedger` (a temp file) and
//! `DynamoLedger` (moto), so that what passes for `kode serve` holds for the
//! Lambdas too. Adapter-only behaviour (DynamoDB paging, SQLite totals) is
//! tested beside each adapter.

use std::sync::Arc;

use kode::events::{self, EventScope};
use kode::model::{
    AssetFailure, AssetId, AssetRecord, AssetState, FailedAttempt, MessageRecord, ObjectKey,
    OrderId, OrderLineId, OrderRecord, SubOrderId, OPEN_FOREVER,
};
use kode::store::aws::DynamoLedger;
use kode::store::local::SqliteLedger;
use kode::store::{FailedOutcome, Ledger, RecordOutcome};
use kode::sync::FailedPolicy;

use crate::support;

const ORDER: OrderId = OrderId(1_000_123);

/// A ledger for one test, and what must live as long as it.
struct Subject {
    ledger: Box<dyn Ledger>,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite() -> Subject {
    let dir = tempfile::tempdir().expect("temp dir");
    let ledger = SqliteLedger::open(dir.path().join("ledger.sqlite"))
        .await
        .expect("open SQLite ledger");
    Subject {
        ledger: Box::new(ledger),
        _dir: Some(dir),
    }
}

async fn dynamodb() -> Subject {
    let config = support::aws_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = support::unique_name("contract");
    support::create_ledger_table(&client, &table).await;
    Subject {
        ledger: Box::new(DynamoLedger::new(client, table)),
        _dir: None,
    }
}

/// Runs each check against every adapter, as `sqlite::name` and
/// `dynamodb::name`.
macro_rules! contract {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $check() {
                    let subject = super::sqlite().await;
                    super::$check(subject.ledger.as_ref()).await;
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test]
                async fn $check() {
                    let subject = super::dynamodb().await;
                    super::$check(subject.ledger.as_ref()).await;
                }
            )*
        }
    };
}

contract!(
    a_stored_asset_is_recorded_once_and_read_back_whole,
    a_deleted_asset_is_never_resurrected,
    a_never_stored_asset_deleted_leaves_a_tombstone_that_blocks_storing,
    order_assets_lists_only_that_orders_assets,
    an_unknown_order_reads_as_nothing,
    upsert_order_overwrites_set_fields_and_keeps_the_first_finish_and_purge,
    upsert_order_without_an_id_is_refused,
    empty_strings_read_back_as_absent,
    a_stored_record_without_a_key_is_refused_and_changes_nothing,
    a_message_is_recorded_once_per_id_and_event_action,
    a_message_without_id_or_event_action_is_refused,
    failed_attempts_are_counted_and_the_last_reason_kept,
    a_failure_never_overwrites_stored_or_deleted_and_both_replace_it,
    a_purged_order_never_gets_a_new_stored_entry,
    a_failure_is_announced_in_its_own_write_when_it_begins_and_after_parking,
    open_orders_follow_the_marker_the_holds_purges_and_closures,
    an_order_with_events_to_announce_is_listed_even_purged_or_closed,
);

fn stored(asset: &str) -> AssetRecord {
    AssetRecord {
        order_id: ORDER,
        asset_id: AssetId::from(asset),
        state: AssetState::Stored,
        key: Some(ObjectKey(format!("orders/{ORDER}/{asset}/Målebrev.pdf"))),
        sub_order_id: Some(SubOrderId(2001)),
        order_line_id: Some(OrderLineId(3001)),
        bytes: Some(1234),
        sha256: Some("0f".repeat(32)),
        content_type: Some("application/pdf".into()),
        name: Some("Målebrev.pdf".into()),
        category: Some("Kart og målebrev".into()),
        stored_at: Some("2024-05-01T10:00:00Z".into()),
        deleted_at: None,
        failure: None,
    }
}

fn message(id: &str, action: &str, text: &str) -> MessageRecord {
    MessageRecord {
        id: id.into(),
        event_action: action.into(),
        message_type: "DISTRIBUTOR".into(),
        message: text.into(),
        municipality_name: Some("Bærum".into()),
        municipality_number: Some("3024".into()),
        organization_code: None,
        date_created: Some("2024-03-20T08:00:00Z".into()),
        received_at: "2024-03-20T08:00:01Z".into(),
    }
}

async fn a_stored_asset_is_recorded_once_and_read_back_whole(ledger: &dyn Ledger) {
    let first = stored("a1");
    let mut replay = first.clone();
    replay.stored_at = Some("2024-05-02T10:00:00Z".into());
    replay.bytes = Some(99);

    assert_eq!(
        ledger.record_stored(&first).await.unwrap(),
        RecordOutcome::Recorded
    );
    assert_eq!(
        ledger.record_stored(&replay).await.unwrap(),
        RecordOutcome::AlreadyRecorded
    );
    assert_eq!(ledger.order_assets(ORDER).await.unwrap(), [first]);
}

async fn a_deleted_asset_is_never_resurrected(ledger: &dyn Ledger) {
    let record = stored("a1");
    ledger.record_stored(&record).await.unwrap();

    let at = "2024-05-03T08:00:00Z";
    assert_eq!(
        ledger
            .mark_deleted(ORDER, &record.asset_id, at)
            .await
            .unwrap(),
        RecordOutcome::Recorded
    );
    assert_eq!(
        ledger
            .mark_deleted(ORDER, &record.asset_id, "2024-05-04T08:00:00Z")
            .await
            .unwrap(),
        RecordOutcome::AlreadyRecorded
    );
    assert_eq!(
        ledger.record_stored(&record).await.unwrap(),
        RecordOutcome::AlreadyDeleted
    );

    let mut expected = record.clone();
    expected.state = AssetState::Deleted;
    expected.deleted_at = Some(at.into());
    assert_eq!(
        ledger.order_assets(ORDER).await.unwrap(),
        [expected],
        "key, size and hash stay; deletedAt is the first"
    );
}

async fn a_never_stored_asset_deleted_leaves_a_tombstone_that_blocks_storing(ledger: &dyn Ledger) {
    let asset = AssetId::from("never");
    assert_eq!(
        ledger
            .mark_deleted(ORDER, &asset, "2024-05-03T08:00:00Z")
            .await
            .unwrap(),
        RecordOutcome::Recorded
    );
    let assets = ledger.order_assets(ORDER).await.unwrap();
    assert_eq!(assets.len(), 1);
    assert_eq!(assets[0].asset_id, asset);
    assert_eq!(assets[0].state, AssetState::Deleted);
    assert_eq!(assets[0].key, None);
    assert_eq!(
        assets[0].deleted_at.as_deref(),
        Some("2024-05-03T08:00:00Z")
    );
    assert_eq!(
        ledger.record_stored(&stored("never")).await.unwrap(),
        RecordOutcome::AlreadyDeleted
    );
    assert_eq!(ledger.order_assets(ORDER).await.unwrap(), assets);
}

async fn order_assets_lists_only_that_orders_assets(ledger: &dyn Ledger) {
    for asset in ["a2", "a1", "a3"] {
        ledger.record_stored(&stored(asset)).await.unwrap();
    }
    let mut other = stored("elsewhere");
    other.order_id = OrderId(ORDER.0 + 1);
    ledger.record_stored(&other).await.unwrap();

    let ids: Vec<String> = ledger
        .order_assets(ORDER)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.asset_id.as_str().to_owned())
        .collect();
    assert_eq!(ids, ["a1", "a2", "a3"], "every asset once, by id");
}

async fn an_unknown_order_reads_as_nothing(ledger: &dyn Ledger) {
    assert_eq!(ledger.order(ORDER).await.unwrap(), None);
    assert!(ledger.order_assets(ORDER).await.unwrap().is_empty());
}

async fn upsert_order_overwrites_set_fields_and_keeps_the_first_finish_and_purge(
    ledger: &dyn Ledger,
) {
    ledger
        .upsert_order(&OrderRecord {
            order_id: Some(ORDER),
            last_status: Some("FINISHED".into()),
            reference: Some("Oppdrag 17".into()),
            technical_reference: Some("tech-17".into()),
            finished_at: Some("2024-05-01T10:00:00Z".into()),
            purged_at: None,
            updated_at: Some("2024-05-01T10:00:00Z".into()),
            ..OrderRecord::default()
        })
        .await
        .unwrap();
    ledger
        .upsert_order(&OrderRecord {
            order_id: Some(ORDER),
            last_status: Some("CANCELLED".into()),
            finished_at: Some("2024-06-01T10:00:00Z".into()),
            purged_at: Some("2024-06-01T10:00:00Z".into()),
            updated_at: Some("2024-06-01T10:00:00Z".into()),
            ..OrderRecord::default()
        })
        .await
        .unwrap();
    ledger
        .upsert_order(&OrderRecord {
            order_id: Some(ORDER),
            purged_at: Some("2024-07-01T10:00:00Z".into()),
            ..OrderRecord::default()
        })
        .await
        .unwrap();

    assert_eq!(
        ledger.order(ORDER).await.unwrap(),
        Some(OrderRecord {
            order_id: Some(ORDER),
            last_status: Some("CANCELLED".into()),
            reference: Some("Oppdrag 17".into()),
            technical_reference: Some("tech-17".into()),
            finished_at: Some("2024-05-01T10:00:00Z".into()),
            purged_at: Some("2024-06-01T10:00:00Z".into()),
            updated_at: Some("2024-06-01T10:00:00Z".into()),
            ..OrderRecord::default()
        })
    );
}

async fn upsert_order_without_an_id_is_refused(ledger: &dyn Ledger) {
    let err = ledger
        .upsert_order(&OrderRecord {
            last_status: Some("NEW".into()),
            ..OrderRecord::default()
        })
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err}");
}

async fn empty_strings_read_back_as_absent(ledger: &dyn Ledger) {
    let mut record = stored("blank");
    record.content_type = Some(String::new());
    record.category = Some(String::new());
    ledger.record_stored(&record).await.unwrap();
    let read = &ledger.order_assets(ORDER).await.unwrap()[0];
    assert_eq!(read.content_type, None);
    assert_eq!(read.category, None);
    assert_eq!(read.name.as_deref(), Some("Målebrev.pdf"));

    ledger
        .upsert_order(&OrderRecord {
            order_id: Some(ORDER),
            reference: Some("Oppdrag 17".into()),
            technical_reference: Some(String::new()),
            ..OrderRecord::default()
        })
        .await
        .unwrap();
    ledger
        .upsert_order(&OrderRecord {
            order_id: Some(ORDER),
            reference: Some(String::new()),
            ..OrderRecord::default()
        })
        .await
        .unwrap();
    let order = ledger.order(ORDER).await.unwrap().expect("order record");
    assert_eq!(
        order.reference.as_deref(),
        Some("Oppdrag 17"),
        "an empty value changes nothing"
    );
    assert_eq!(order.technical_reference, None);
}

async fn a_stored_record_without_a_key_is_refused_and_changes_nothing(ledger: &dyn Ledger) {
    for key in [None, Some(ObjectKey(String::new()))] {
        let mut record = stored("keyless");
        record.key = key;
        let err = ledger.record_stored(&record).await.unwrap_err();
        assert!(!err.is_retryable(), "{err}");
    }
    let mut deleted = stored("not-stored");
    deleted.state = AssetState::Deleted;
    assert!(ledger.record_stored(&deleted).await.is_err());
    assert!(ledger.order_assets(ORDER).await.unwrap().is_empty());
}

async fn a_message_is_recorded_once_per_id_and_event_action(ledger: &dyn Ledger) {
    let first = message("msg-1", "Created", "Kommunen har stengt i påsken");
    let replay = message("msg-1", "Created", "changed");
    let updated = message("msg-1", "Updated", "Kommunen åpner 2. april");
    assert_eq!(
        ledger.record_message(&first).await.unwrap(),
        RecordOutcome::Recorded
    );
    assert_eq!(
        ledger.record_message(&replay).await.unwrap(),
        RecordOutcome::AlreadyRecorded
    );
    assert_eq!(
        ledger.record_message(&updated).await.unwrap(),
        RecordOutcome::Recorded
    );
}

async fn a_message_without_id_or_event_action_is_refused(ledger: &dyn Ledger) {
    for (id, action) in [("", "Created"), ("msg-1", "")] {
        let err = ledger
            .record_message(&message(id, action, "x"))
            .await
            .unwrap_err();
        assert!(!err.is_retryable(), "{err}");
    }
}

fn attempt(asset: &str, reason: &str, transient: bool) -> FailedAttempt {
    FailedAttempt {
        order_id: ORDER,
        asset_id: AssetId::from(asset),
        reason: reason.into(),
        at: "2024-05-01T11:00:00Z".into(),
        transient,
    }
}

async fn failed_attempts_are_counted_and_the_last_reason_kept(ledger: &dyn Ledger) {
    let first = ledger.record_failed(&attempt("a1", "404", false)).await;
    assert_eq!(first.unwrap(), FailedOutcome::Recorded { attempts: 1 });
    let second = ledger.record_failed(&attempt("a1", "503", true)).await;
    assert_eq!(second.unwrap(), FailedOutcome::Recorded { attempts: 2 });
    let assets = ledger.order_assets(ORDER).await.unwrap();
    assert_eq!(assets.len(), 1);
    assert_eq!(assets[0].state, AssetState::Failed);
    assert_eq!(assets[0].key, None);
    assert_eq!(
        assets[0].failure,
        Some(AssetFailure {
            reason: "503".into(),
            attempts: 2,
            last_attempt_at: "2024-05-01T11:00:00Z".into(),
            transient: true,
        })
    );
}

async fn a_failure_never_overwrites_stored_or_deleted_and_both_replace_it(ledger: &dyn Ledger) {
    ledger.record_stored(&stored("kept")).await.unwrap();
    let at = "2024-05-02T00:00:00Z";
    ledger
        .mark_deleted(ORDER, &AssetId::from("gone"), at)
        .await
        .unwrap();
    let kept = ledger.record_failed(&attempt("kept", "404", false)).await;
    assert_eq!(kept.unwrap(), FailedOutcome::Settled(AssetState::Stored));
    let gone = ledger.record_failed(&attempt("gone", "404", false)).await;
    assert_eq!(gone.unwrap(), FailedOutcome::Settled(AssetState::Deleted));

    for (asset, reason, transient) in [("later", "503", true), ("withdrawn", "404", false)] {
        let failure = attempt(asset, reason, transient);
        ledger.record_failed(&failure).await.unwrap();
    }
    assert_eq!(
        ledger.record_stored(&stored("later")).await.unwrap(),
        RecordOutcome::Recorded
    );
    ledger
        .mark_deleted(ORDER, &AssetId::from("withdrawn"), at)
        .await
        .unwrap();

    let assets = ledger.order_assets(ORDER).await.unwrap();
    let state = |id: &str| assets.iter().find(|r| r.asset_id.as_str() == id).unwrap();
    assert_eq!(state("kept"), &stored("kept"));
    assert_eq!(state("gone").state, AssetState::Deleted);
    assert_eq!(state("later"), &stored("later"));
    assert_eq!(state("withdrawn").state, AssetState::Deleted);
    assert_eq!(state("withdrawn").failure, None, "the failure goes with it");
}

async fn a_purged_order_never_gets_a_new_stored_entry(ledger: &dyn Ledger) {
    ledger.record_stored(&stored("before")).await.unwrap();
    let failure = attempt("failed", "503", true);
    ledger.record_failed(&failure).await.unwrap();
    ledger
        .upsert_order(&OrderRecord {
            order_id: Some(ORDER),
            purged_at: Some("2024-05-03T00:00:00Z".into()),
            ..OrderRecord::default()
        })
        .await
        .unwrap();

    for asset in ["late", "failed"] {
        assert_eq!(
            ledger.record_stored(&stored(asset)).await.unwrap(),
            RecordOutcome::OrderPurged,
            "{asset}"
        );
    }
    // A replay of what was stored before the purge is still recognised.
    assert_eq!(
        ledger.record_stored(&stored("before")).await.unwrap(),
        RecordOutcome::AlreadyRecorded
    );
    let stored_ids: Vec<String> = ledger
        .order_assets(ORDER)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.state == AssetState::Stored)
        .map(|r| r.asset_id.to_string())
        .collect();
    assert_eq!(stored_ids, ["before"]);
    // Other orders are not affected.
    let mut other = stored("late");
    other.order_id = OrderId(ORDER.0 + 1);
    assert_eq!(
        ledger.record_stored(&other).await.unwrap(),
        RecordOutcome::Recorded
    );
}

async fn a_failure_is_announced_in_its_own_write_when_it_begins_and_after_parking(
    ledger: &dyn Ledger,
) {
    let policy = FailedPolicy {
        max_attempts: 2,
        retry_parked: true,
    };
    // What the processor passes: asset.failed when the policy says so; the
    // ledger hands over what it found before this attempt.
    let fail = |reason: &str| {
        let attempt = attempt("a1", reason, false);
        let announced = attempt.clone();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen_by_ledger = Arc::clone(&seen);
        let announce = Arc::new(move |before: Option<&AssetFailure>, attempts: u32| {
            seen_by_ledger
                .lock()
                .unwrap()
                .push((before.map(|f| f.attempts), attempts));
            policy.announces(before).then(|| {
                events::asset_failed(
                    ORDER,
                    &announced.asset_id,
                    &announced.reason,
                    attempts,
                    &format!("2024-05-01T11:00:0{attempts}Z"),
                )
            })
        });
        async move {
            let outcome = ledger
                .record_failed_announcing(&attempt, announce)
                .await
                .unwrap();
            let seen = seen.lock().unwrap().clone();
            (outcome, seen.last().copied())
        }
    };
    let pending = || async {
        let events = ledger
            .pending_announcements(EventScope::Order(ORDER))
            .await
            .unwrap();
        events
            .iter()
            .map(|e| e.data_json()["attempts"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };

    let (first, seen) = fail("404").await;
    assert_eq!(first, FailedOutcome::Recorded { attempts: 1 });
    assert_eq!(seen, Some((None, 1)), "nothing was there before");
    assert_eq!(pending().await, [1], "announced as it turned FAILED");

    let (second, seen) = fail("404").await;
    assert_eq!(second, FailedOutcome::Recorded { attempts: 2 });
    assert_eq!(seen, Some((Some(1), 2)));
    assert_eq!(pending().await, [1], "not on each attempt");

    // Parked at 2: a retry that fails again is announced again.
    let (third, _) = fail("404").await;
    assert_eq!(third, FailedOutcome::Recorded { attempts: 3 });
    assert_eq!(pending().await, [1, 3]);

    // A settled asset is not failed, and nothing is announced for it.
    ledger.record_stored(&stored("kept")).await.unwrap();
    let settled = ledger
        .record_failed_announcing(
            &attempt("kept", "404", false),
            Arc::new(move |_: Option<&AssetFailure>, attempts: u32| {
                Some(events::asset_failed(
                    ORDER,
                    &AssetId::from("kept"),
                    "404",
                    attempts,
                    "2024-05-01T12:00:00Z",
                ))
            }),
        )
        .await
        .unwrap();
    assert_eq!(settled, FailedOutcome::Settled(AssetState::Stored));
    assert_eq!(pending().await, [1, 3]);
}

async fn open_ids(ledger: &dyn Ledger, now: &str) -> Vec<u64> {
    let open = ledger.open_orders(now).await.expect("open orders");
    open.iter().map(|o| o.order_id.0).collect()
}

async fn order_with(ledger: &dyn Ledger, id: u64, sweep_until: Option<&str>, purged: bool) {
    ledger
        .upsert_order(&OrderRecord {
            order_id: Some(OrderId(id)),
            last_status: Some("UPDATED".into()),
            sweep_until: sweep_until.map(str::to_owned),
            purged_at: purged.then(|| "2024-05-01T00:00:00Z".to_owned()),
            ..OrderRecord::default()
        })
        .await
        .expect("upsert order");
}

async fn open_orders_follow_the_marker_the_holds_purges_and_closures(ledger: &dyn Ledger) {
    let now = "2024-05-01T10:00:00Z";
    order_with(ledger, 1, Some(OPEN_FOREVER), false).await;
    order_with(ledger, 2, Some("2024-05-01T10:00:00Z"), false).await;
    order_with(ledger, 3, Some("2024-05-01T09:59:59Z"), false).await;
    order_with(ledger, 4, Some(OPEN_FOREVER), false).await;
    order_with(ledger, 4, None, true).await; // then cancelled
    order_with(ledger, 5, None, false).await; // never marked
    assert_eq!(open_ids(ledger, now).await, [1, 2]);

    // Holds open an order past its time, or one never recorded, but never a
    // purged one; holding twice is one hold, releasing twice is fine.
    ledger.hold_open(OrderId(3), "failed").await.unwrap();
    ledger.hold_open(OrderId(3), "failed").await.unwrap();
    ledger.hold_open(OrderId(3), "other").await.unwrap();
    ledger.hold_open(OrderId(4), "failed").await.unwrap();
    ledger.hold_open(OrderId(9), "failed").await.unwrap();
    assert_eq!(open_ids(ledger, now).await, [1, 2, 3, 9]);
    ledger.release_hold(OrderId(3), "failed").await.unwrap();
    assert_eq!(open_ids(ledger, now).await, [1, 2, 3, 9]);
    ledger.release_hold(OrderId(3), "other").await.unwrap();
    ledger.release_hold(OrderId(3), "other").await.unwrap();
    assert_eq!(open_ids(ledger, now).await, [1, 2, 9]);
    // Holds are not assets.
    assert!(ledger.order_assets(OrderId(9)).await.unwrap().is_empty());
    assert!(
        ledger.hold_open(OrderId(9), "").await.is_err(),
        "a hold needs a reason"
    );

    ledger
        .mark_swept(OrderId(1), "2024-05-01T09:00:00Z")
        .await
        .unwrap();
    let open = ledger.open_orders(now).await.unwrap();
    assert_eq!(open[0].swept_at.as_deref(), Some("2024-05-01T09:00:00Z"));

    // Misses close the order (its holds too); a push opens it again.
    ledger.hold_open(OrderId(1), "failed").await.unwrap();
    let first = ledger.sweep_missed(OrderId(1), 2, now).await.unwrap();
    assert_eq!((first.misses, first.closed), (1, false));
    ledger.sweep_found(OrderId(1)).await.unwrap();
    ledger.sweep_missed(OrderId(1), 2, now).await.unwrap();
    let closed = ledger.sweep_missed(OrderId(1), 2, now).await.unwrap();
    assert_eq!((closed.misses, closed.closed), (2, true));
    assert_eq!(open_ids(ledger, now).await, [2, 9]);
    order_with(ledger, 1, Some(OPEN_FOREVER), false).await;
    assert_eq!(open_ids(ledger, now).await, [1, 2, 9]);
    let record = ledger.order(OrderId(1)).await.unwrap().unwrap();
    assert_eq!((record.sweep_misses, record.sweep_closed_at), (0, None));
    assert_eq!(record.last_status.as_deref(), Some("UPDATED"));
}

async fn an_order_with_events_to_announce_is_listed_even_purged_or_closed(ledger: &dyn Ledger) {
    let now = "2024-05-01T10:00:00Z";
    let at = "2024-05-01T09:00:00Z";
    // 1: purged with its order.purged still to announce; 2: closed by
    // misses with an asset.deleted to announce; 3: past its time, with a
    // stored file to announce (recorded in the same write as the file);
    // 4: purged, everything announced.
    order_with(ledger, 1, None, true).await;
    let purged = events::order_purged(OrderId(1), "CANCELLED", &[], at);
    ledger.record_announcement(&purged).await.unwrap();

    let mut record = stored("a2");
    record.order_id = OrderId(2);
    ledger.record_stored(&record).await.unwrap();
    order_with(ledger, 2, Some(OPEN_FOREVER), false).await;
    let key = record.key.clone().unwrap();
    let deleted = events::asset_deleted(OrderId(2), &record.asset_id, &key, at);
    let marked = ledger.mark_deleted_announcing(OrderId(2), &record.asset_id, at, Some(&deleted));
    marked.await.unwrap();
    ledger.sweep_missed(OrderId(2), 1, now).await.unwrap();

    order_with(ledger, 3, Some("2024-05-01T09:59:59Z"), false).await;
    let mut record = stored("a3");
    record.order_id = OrderId(3);
    let stored_event = events::asset_stored(&record, None, None, at).unwrap();
    let recorded = ledger.record_stored_announcing(&record, Some(&stored_event));
    assert_eq!(recorded.await.unwrap(), RecordOutcome::Recorded);

    order_with(ledger, 4, None, true).await;
    let done = events::order_purged(OrderId(4), "REFUNDED", &[], at);
    ledger.record_announcement(&done).await.unwrap();
    ledger.announcement_sent(&done, now).await.unwrap();

    // Distributor messages belong to no order.
    let body = br#"{"content": {"id": "m1", "message": "Planregisteret er nede",
        "type": "CUSTOMER"}, "eventAction": "Created", "eventType": "DistributorMessages"}"#;
    let Ok(kode::model::Push::Distributor(received)) = kode::model::Push::from_slice(body) else {
        panic!("a distributor message");
    };
    let distributor = events::distributor_message(&received, at);
    let message = message("m1", "Created", "Planregisteret er nede");
    let kept = ledger.record_message_announcing(&message, Some(&distributor));
    kept.await.unwrap();

    assert_eq!(open_ids(ledger, now).await, [1, 2, 3]);

    for (order, event) in [(1, &purged), (2, &deleted), (3, &stored_event)] {
        let pending = ledger
            .pending_announcements(EventScope::Order(OrderId(order)))
            .await
            .unwrap();
        assert_eq!(pending, std::slice::from_ref(event), "order {order}");
        ledger.announcement_sent(event, now).await.unwrap();
    }
    assert!(open_ids(ledger, now).await.is_empty(), "announced: closed");
    // Said once: an order event is not remembered again after it was sent.
    let again = ledger.record_announcement(&purged).await.unwrap();
    assert_eq!(again, RecordOutcome::AlreadyRecorded);
    assert!(open_ids(ledger, now).await.is_empty());
}
