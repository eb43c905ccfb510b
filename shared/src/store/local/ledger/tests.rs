//! `SqliteLedger` beyond the ledger contract: message listing, totals, reopening.

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
        failure: None,
    }
}

fn attempt(order: u64, asset: &str, reason: &str, transient: bool) -> FailedAttempt {
    FailedAttempt {
        order_id: OrderId(order),
        asset_id: AssetId::from(asset),
        reason: reason.into(),
        at: "2025-03-01T11:00:00Z".into(),
        transient,
    }
}

fn purge_mark(order: u64) -> OrderRecord {
    OrderRecord {
        order_id: Some(OrderId(order)),
        purged_at: Some("2025-03-01T12:00:00Z".into()),
        ..OrderRecord::default()
    }
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

#[tokio::test]
async fn failed_attempts_are_counted_and_the_last_reason_kept() {
    let (_dir, ledger) = ledger().await;
    let first = ledger
        .record_failed(&attempt(1, "a1", "404", false))
        .await
        .unwrap();
    let second = ledger
        .record_failed(&attempt(1, "a1", "503", true))
        .await
        .unwrap();
    assert_eq!(first, FailedOutcome::Recorded { attempts: 1 });
    assert_eq!(second, FailedOutcome::Recorded { attempts: 2 });

    let records = ledger.order_assets(OrderId(1)).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].state, AssetState::Failed);
    assert_eq!(
        records[0].failure,
        Some(AssetFailure {
            reason: "503".into(),
            attempts: 2,
            last_attempt_at: "2025-03-01T11:00:00Z".into(),
            transient: true,
        })
    );
}

#[tokio::test]
async fn a_failure_never_overwrites_stored_or_deleted() {
    let (_dir, ledger) = ledger().await;
    ledger.record_stored(&stored(1, "a1", 5)).await.unwrap();
    ledger
        .mark_deleted(OrderId(1), &AssetId::from("a2"), "2025-03-02T00:00:00Z")
        .await
        .unwrap();

    assert_eq!(
        ledger
            .record_failed(&attempt(1, "a1", "404", false))
            .await
            .unwrap(),
        FailedOutcome::Settled(AssetState::Stored)
    );
    assert_eq!(
        ledger
            .record_failed(&attempt(1, "a2", "404", false))
            .await
            .unwrap(),
        FailedOutcome::Settled(AssetState::Deleted)
    );
    let states: Vec<AssetState> = ledger
        .order_assets(OrderId(1))
        .await
        .unwrap()
        .iter()
        .map(|r| r.state)
        .collect();
    assert_eq!(states, [AssetState::Stored, AssetState::Deleted]);
}

#[tokio::test]
async fn a_success_or_a_deletion_replaces_failed() {
    let (_dir, ledger) = ledger().await;
    ledger
        .record_failed(&attempt(1, "a1", "503", true))
        .await
        .unwrap();
    ledger
        .record_failed(&attempt(1, "a2", "404", false))
        .await
        .unwrap();

    assert_eq!(
        ledger.record_stored(&stored(1, "a1", 5)).await.unwrap(),
        RecordOutcome::Recorded
    );
    assert_eq!(
        ledger
            .mark_deleted(OrderId(1), &AssetId::from("a2"), "2025-03-02T00:00:00Z")
            .await
            .unwrap(),
        RecordOutcome::Recorded
    );
    let records = ledger.order_assets(OrderId(1)).await.unwrap();
    assert_eq!(records[0], stored(1, "a1", 5));
    assert_eq!(records[1].state, AssetState::Deleted);
    assert_eq!(records[1].failure, None);
}

#[tokio::test]
async fn a_purged_order_never_gets_a_new_stored_entry() {
    let (_dir, ledger) = ledger().await;
    ledger.record_stored(&stored(1, "before", 5)).await.unwrap();
    ledger
        .record_failed(&attempt(1, "failed", "503", true))
        .await
        .unwrap();
    ledger.upsert_order(&purge_mark(1)).await.unwrap();

    for asset in ["late", "failed"] {
        assert_eq!(
            ledger.record_stored(&stored(1, asset, 5)).await.unwrap(),
            RecordOutcome::OrderPurged,
            "{asset}"
        );
    }
    // A replay of what was stored before the purge is still recognised.
    assert_eq!(
        ledger.record_stored(&stored(1, "before", 5)).await.unwrap(),
        RecordOutcome::AlreadyRecorded
    );
    let stored_ids: Vec<String> = ledger
        .order_assets(OrderId(1))
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.state == AssetState::Stored)
        .map(|r| r.asset_id.to_string())
        .collect();
    assert_eq!(stored_ids, ["before"]);
    // Other orders are not affected.
    assert_eq!(
        ledger.record_stored(&stored(2, "late", 5)).await.unwrap(),
        RecordOutcome::Recorded
    );
}

#[tokio::test]
async fn a_ledger_from_before_the_failed_state_is_upgraded_with_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE assets (
                order_id INTEGER NOT NULL, asset_id TEXT NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('STORED', 'DELETED')),
                object_key TEXT, sub_order_id INTEGER, order_line_id INTEGER,
                bytes INTEGER, sha256 TEXT, content_type TEXT, name TEXT,
                category TEXT, stored_at TEXT, deleted_at TEXT,
                PRIMARY KEY (order_id, asset_id));
             INSERT INTO assets (order_id, asset_id, state, object_key, bytes, stored_at)
                VALUES (1, 'old', 'STORED', 'orders/1/old/x.pdf', 3, '2025-01-01T00:00:00Z');",
        )
        .unwrap();
    }
    let ledger = SqliteLedger::open(&path).await.unwrap();
    let records = ledger.order_assets(OrderId(1)).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].state, AssetState::Stored);
    assert_eq!(records[0].bytes, Some(3));
    assert_eq!(
        ledger
            .record_failed(&attempt(1, "new", "404", false))
            .await
            .unwrap(),
        FailedOutcome::Recorded { attempts: 1 }
    );
    drop(ledger);
    // Opening again finds the new table and leaves it be.
    let again = SqliteLedger::open(&path).await.unwrap();
    assert_eq!(again.order_assets(OrderId(1)).await.unwrap().len(), 2);
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
    order_with(&ledger, 1, Some(crate::model::OPEN_FOREVER), false).await;
    order_with(&ledger, 2, Some("2024-05-01T10:00:00Z"), false).await;
    order_with(&ledger, 3, Some("2024-05-01T09:59:59Z"), false).await;
    order_with(&ledger, 4, Some(crate::model::OPEN_FOREVER), false).await;
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
    order_with(&ledger, 1, Some(crate::model::OPEN_FOREVER), false).await;
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
    assert_eq!(open_ids(&ledger, &crate::model::stamp(now)).await, [1, 2]);
    let in_20_days = now
        .checked_add(jiff::SignedDuration::from_hours(24 * 20))
        .unwrap();
    assert_eq!(
        open_ids(&ledger, &crate::model::stamp(in_20_days)).await,
        [1]
    );
    // Opening it again changes nothing.
    drop(ledger);
    let ledger = SqliteLedger::open(&path).await.unwrap();
    assert_eq!(open_ids(&ledger, &crate::model::stamp(now)).await, [1, 2]);
}
