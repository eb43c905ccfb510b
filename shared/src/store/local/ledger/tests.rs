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
