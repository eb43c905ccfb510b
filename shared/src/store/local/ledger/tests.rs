use super::*;

async fn ledger() -> (tempfile::TempDir, SqliteLedger) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = SqliteLedger::open(dir.path().join("ledger.sqlite"))
        .await
        .unwrap();
    (dir, ledger)
}

fn stored(order: u64, asset: &str, bytes: u64) -> AssetRecord {
    AssetRecord {
        order_id: OrderId(order),
        asset_id: AssetId::from(asset),
        state: AssetState::Stored,
        key: Some(ObjectKey(format!("orders/{order}/{asset}/Kart.pdf"))),
        sub_order_id: Some(SubOrderId(7)),
        order_line_id: Some(OrderLineId(9)),
        bytes: Some(bytes),
        sha256: Some("ab".repeat(32)),
        content_type: Some("application/pdf".into()),
        name: Some("Kart.pdf".into()),
        category: Some("MAP".into()),
        stored_at: Some("2025-03-01T10:00:00Z".into()),
        deleted_at: None,
    }
}

#[tokio::test]
async fn a_stored_asset_is_recorded_once_and_read_back_whole() {
    let (_dir, ledger) = ledger().await;
    let record = stored(1, "a1", 42);

    assert_eq!(
        ledger.record_stored(&record).await.unwrap(),
        RecordOutcome::Recorded
    );
    let mut replay = record.clone();
    replay.bytes = Some(99);
    assert_eq!(
        ledger.record_stored(&replay).await.unwrap(),
        RecordOutcome::AlreadyRecorded
    );

    assert_eq!(ledger.order_assets(OrderId(1)).await.unwrap(), vec![record]);
    assert!(ledger.order_assets(OrderId(2)).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_deleted_asset_is_never_resurrected() {
    let (_dir, ledger) = ledger().await;
    ledger.record_stored(&stored(1, "a1", 5)).await.unwrap();

    let first = ledger
        .mark_deleted(OrderId(1), &AssetId::from("a1"), "2025-03-02T00:00:00Z")
        .await
        .unwrap();
    let again = ledger
        .mark_deleted(OrderId(1), &AssetId::from("a1"), "2025-03-03T00:00:00Z")
        .await
        .unwrap();
    let restore = ledger.record_stored(&stored(1, "a1", 5)).await.unwrap();

    assert_eq!(first, RecordOutcome::Recorded);
    assert_eq!(again, RecordOutcome::AlreadyRecorded);
    assert_eq!(restore, RecordOutcome::AlreadyDeleted);
    let assets = ledger.order_assets(OrderId(1)).await.unwrap();
    assert_eq!(assets.len(), 1);
    assert_eq!(assets[0].state, AssetState::Deleted);
    assert_eq!(
        assets[0].deleted_at.as_deref(),
        Some("2025-03-02T00:00:00Z")
    );
    // The history of what was stored stays readable.
    assert_eq!(assets[0].bytes, Some(5));
    assert!(assets[0].key.is_some());
}

#[tokio::test]
async fn deleting_an_unknown_asset_leaves_a_tombstone_that_blocks_storing() {
    let (_dir, ledger) = ledger().await;

    let outcome = ledger
        .mark_deleted(OrderId(1), &AssetId::from("ghost"), "2025-03-02T00:00:00Z")
        .await
        .unwrap();

    assert_eq!(outcome, RecordOutcome::Recorded);
    let assets = ledger.order_assets(OrderId(1)).await.unwrap();
    assert_eq!(assets[0].state, AssetState::Deleted);
    assert_eq!(assets[0].key, None);
    assert_eq!(
        ledger.record_stored(&stored(1, "ghost", 1)).await.unwrap(),
        RecordOutcome::AlreadyDeleted
    );
}

#[tokio::test]
async fn record_stored_refuses_a_deleted_record_and_changes_nothing() {
    let (_dir, ledger) = ledger().await;
    let mut record = stored(1, "a1", 5);
    record.state = AssetState::Deleted;

    assert!(ledger.record_stored(&record).await.is_err());
    assert!(ledger.order_assets(OrderId(1)).await.unwrap().is_empty());
}

#[tokio::test]
async fn upsert_order_overwrites_set_fields_and_keeps_finish_and_purge_times() {
    let (_dir, ledger) = ledger().await;
    ledger
        .upsert_order(&OrderRecord {
            order_id: Some(OrderId(5)),
            last_status: Some("NEW".into()),
            reference: Some("Oppdrag 12".into()),
            technical_reference: Some("tech-1".into()),
            updated_at: Some("t1".into()),
            ..OrderRecord::default()
        })
        .await
        .unwrap();
    ledger
        .upsert_order(&OrderRecord {
            order_id: Some(OrderId(5)),
            last_status: Some("FINISHED".into()),
            finished_at: Some("t2".into()),
            updated_at: Some("t2".into()),
            ..OrderRecord::default()
        })
        .await
        .unwrap();
    ledger
        .upsert_order(&OrderRecord {
            order_id: Some(OrderId(5)),
            last_status: Some("CANCELLED".into()),
            finished_at: Some("t3".into()),
            purged_at: Some("t3".into()),
            updated_at: Some("t3".into()),
            ..OrderRecord::default()
        })
        .await
        .unwrap();
    ledger
        .upsert_order(&OrderRecord {
            order_id: Some(OrderId(5)),
            purged_at: Some("t4".into()),
            ..OrderRecord::default()
        })
        .await
        .unwrap();

    let order = ledger.order(OrderId(5)).await.unwrap().unwrap();
    assert_eq!(
        order,
        OrderRecord {
            order_id: Some(OrderId(5)),
            last_status: Some("CANCELLED".into()),
            reference: Some("Oppdrag 12".into()),
            technical_reference: Some("tech-1".into()),
            finished_at: Some("t2".into()),
            purged_at: Some("t3".into()),
            updated_at: Some("t3".into()),
            ..OrderRecord::default()
        }
    );
    assert_eq!(ledger.order(OrderId(6)).await.unwrap(), None);
    assert_eq!(ledger.orders().await.unwrap(), vec![order]);
}

#[tokio::test]
async fn upsert_order_without_an_id_is_refused() {
    let (_dir, ledger) = ledger().await;
    assert!(ledger.upsert_order(&OrderRecord::default()).await.is_err());
    assert!(ledger.orders().await.unwrap().is_empty());
}

fn message(id: &str, action: &str, text: &str) -> MessageRecord {
    MessageRecord {
        id: id.into(),
        event_action: action.into(),
        message_type: "DISTRIBUTOR".into(),
        message: text.into(),
        municipality_name: Some("Bærum".into()),
        municipality_number: Some("3201".into()),
        organization_code: None,
        date_created: None,
        received_at: "2025-03-01T10:00:00Z".into(),
    }
}

#[tokio::test]
async fn a_message_is_stored_once_per_id_and_event_action() {
    let (_dir, ledger) = ledger().await;

    let first = ledger
        .record_message(&message("m1", "CREATED", "Driftsmelding"))
        .await
        .unwrap();
    let replay = ledger
        .record_message(&message("m1", "CREATED", "changed"))
        .await
        .unwrap();
    let update = ledger
        .record_message(&message("m1", "UPDATED", "Oppdatert"))
        .await
        .unwrap();

    assert_eq!(first, RecordOutcome::Recorded);
    assert_eq!(replay, RecordOutcome::AlreadyRecorded);
    assert_eq!(update, RecordOutcome::Recorded);
    let all = ledger.messages().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0], message("m1", "CREATED", "Driftsmelding"));
    assert_eq!(all[1].event_action, "UPDATED");
}

#[tokio::test]
async fn totals_count_stored_and_deleted_files_and_stored_bytes() {
    let (_dir, ledger) = ledger().await;
    ledger.record_stored(&stored(1, "a", 100)).await.unwrap();
    ledger.record_stored(&stored(1, "b", 20)).await.unwrap();
    ledger.record_stored(&stored(2, "c", 3)).await.unwrap();
    ledger
        .mark_deleted(OrderId(1), &AssetId::from("b"), "t")
        .await
        .unwrap();
    ledger
        .mark_deleted(OrderId(2), &AssetId::from("never-stored"), "t")
        .await
        .unwrap();
    for id in [1, 2] {
        ledger
            .upsert_order(&OrderRecord {
                order_id: Some(OrderId(id)),
                ..OrderRecord::default()
            })
            .await
            .unwrap();
    }

    assert_eq!(
        ledger.totals().await.unwrap(),
        LedgerTotals {
            orders: 2,
            files_stored: 2,
            files_deleted: 1,
            bytes_stored: 103,
        }
    );
}

#[tokio::test]
async fn records_survive_reopening_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    {
        let ledger = SqliteLedger::open(&path).await.unwrap();
        ledger.record_stored(&stored(1, "a1", 5)).await.unwrap();
    }
    let ledger = SqliteLedger::open(&path).await.unwrap();
    assert_eq!(
        ledger.record_stored(&stored(1, "a1", 5)).await.unwrap(),
        RecordOutcome::AlreadyRecorded
    );
}

async fn open_ids(ledger: &SqliteLedger, now: &str) -> Vec<u64> {
    let open = ledger.open_orders(now).await.unwrap();
    open.iter().map(|o| o.order_id.0).collect()
}

async fn order_with(ledger: &SqliteLedger, id: u64, sweep_until: Option<&str>, purged: bool) {
    ledger
        .upsert_order(&OrderRecord {
            order_id: Some(OrderId(id)),
            sweep_until: sweep_until.map(str::to_owned),
            purged_at: purged.then(|| "2024-05-01T00:00:00Z".to_owned()),
            ..OrderRecord::default()
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn open_orders_follow_the_marker_the_holds_purges_and_closures() {
    let (_dir, ledger) = ledger().await;
    let now = "2024-05-01T10:00:00Z";
    order_with(&ledger, 1, Some(crate::sweep::OPEN_FOREVER), false).await;
    order_with(&ledger, 2, Some("2024-05-01T10:00:00Z"), false).await;
    order_with(&ledger, 3, Some("2024-05-01T09:59:59Z"), false).await;
    order_with(&ledger, 4, Some(crate::sweep::OPEN_FOREVER), false).await;
    order_with(&ledger, 4, None, true).await; // then cancelled
    order_with(&ledger, 5, None, false).await; // never marked
    assert_eq!(open_ids(&ledger, now).await, [1, 2]);

    // Holds open an order past its time, or one never recorded, but never a
    // purged one; releasing twice is fine.
    ledger.hold_open(OrderId(3), "failed:a").await.unwrap();
    ledger.hold_open(OrderId(3), "failed:a").await.unwrap();
    ledger.hold_open(OrderId(3), "events").await.unwrap();
    ledger.hold_open(OrderId(4), "events").await.unwrap();
    ledger.hold_open(OrderId(9), "events").await.unwrap();
    assert_eq!(open_ids(&ledger, now).await, [1, 2, 3, 9]);
    ledger.release_hold(OrderId(3), "failed:a").await.unwrap();
    assert_eq!(open_ids(&ledger, now).await, [1, 2, 3, 9]);
    ledger.release_hold(OrderId(3), "events").await.unwrap();
    ledger.release_hold(OrderId(3), "events").await.unwrap();
    assert_eq!(open_ids(&ledger, now).await, [1, 2, 9]);

    ledger
        .mark_swept(OrderId(1), "2024-05-01T09:00:00Z")
        .await
        .unwrap();
    let open = ledger.open_orders(now).await.unwrap();
    assert_eq!(open[0].swept_at.as_deref(), Some("2024-05-01T09:00:00Z"));

    // Misses close the order (its holds too); a push opens it again.
    ledger.hold_open(OrderId(1), "events").await.unwrap();
    let first = ledger.sweep_missed(OrderId(1), 2, now).await.unwrap();
    assert_eq!((first.misses, first.closed), (1, false));
    ledger.sweep_found(OrderId(1)).await.unwrap();
    ledger.sweep_missed(OrderId(1), 2, now).await.unwrap();
    let closed = ledger.sweep_missed(OrderId(1), 2, now).await.unwrap();
    assert_eq!((closed.misses, closed.closed), (2, true));
    assert_eq!(open_ids(&ledger, now).await, [2, 9]);
    order_with(&ledger, 1, Some(crate::sweep::OPEN_FOREVER), false).await;
    assert_eq!(open_ids(&ledger, now).await, [1, 2, 9]);
    let record = ledger.order(OrderId(1)).await.unwrap().unwrap();
    assert_eq!((record.sweep_misses, record.sweep_closed_at), (0, None));
}

#[tokio::test]
async fn a_ledger_from_before_the_sweep_gets_its_orders_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE orders (order_id INTEGER PRIMARY KEY, last_status TEXT, \
             reference TEXT, technical_reference TEXT, finished_at TEXT, purged_at TEXT, \
             updated_at TEXT);
             INSERT INTO orders (order_id, last_status) VALUES (1, 'UPDATED');
             INSERT INTO orders (order_id, last_status) VALUES (2, 'FINISHED');
             INSERT INTO orders (order_id, last_status, purged_at) VALUES (3, 'CANCELLED', 't');
             INSERT INTO orders (order_id, last_status) VALUES (4, 'REFUNDED');",
        )
        .unwrap();
    }
    let ledger = SqliteLedger::open(&path).await.unwrap();
    let now = jiff::Timestamp::now();
    assert_eq!(open_ids(&ledger, &crate::sweep::stamp(now)).await, [1, 2]);
    let in_20_days = now
        .checked_add(jiff::SignedDuration::from_hours(24 * 20))
        .unwrap();
    assert_eq!(
        open_ids(&ledger, &crate::sweep::stamp(in_20_days)).await,
        [1]
    );
    // Opening it again changes nothing.
    drop(ledger);
    let ledger = SqliteLedger::open(&path).await.unwrap();
    assert_eq!(open_ids(&ledger, &crate::sweep::stamp(now)).await, [1, 2]);
}
