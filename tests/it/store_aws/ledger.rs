//! `DynamoLedger` against moto, beyond the ledger contract (`contract/ledger.rs`):
//! paging, a missing table, and what the message item holds.

use kode::model::{
    AssetFailure, AssetRecord, AssetState, FailedAttempt, MessageRecord, ObjectKey, OrderRecord,
};
use kode::model::{AssetId, OrderId, OrderLineId, SubOrderId};
use kode::store::aws::DynamoLedger;
use kode::store::{FailedOutcome, Ledger, RecordOutcome};

use crate::support;

const ORDER: OrderId = OrderId(1_000_123);

async fn ledger() -> (DynamoLedger, aws_sdk_dynamodb::Client) {
    let config = support::aws_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = support::unique_name("ledger");
    support::create_ledger_table(&client, &table).await;
    (DynamoLedger::new(client.clone(), table), client)
}

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
        category: Some("Kart".into()),
        stored_at: Some("2024-05-01T10:00:00Z".into()),
        deleted_at: None,
        failure: None,
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

#[tokio::test]
async fn order_assets_reads_every_page() {
    let (ledger, client) = ledger().await;
    // Six items of ~300 KB: more than one 1 MB query page.
    let big_name = "x".repeat(300 * 1024);
    for i in 0..6 {
        let mut record = stored(&format!("big{i}"));
        record.name = Some(big_name.clone());
        ledger.record_stored(&record).await.unwrap();
    }
    let first_page = client
        .query()
        .table_name(ledger.table())
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("ORDER#{ORDER}")),
        )
        .send()
        .await
        .unwrap();
    assert!(
        first_page.last_evaluated_key().is_some(),
        "the query must span pages"
    );

    assert_eq!(ledger.order_assets(ORDER).await.unwrap().len(), 6);
}

#[tokio::test]
async fn a_distributor_message_is_stored_once_per_event_action() {
    let (ledger, client) = ledger().await;
    let message = MessageRecord {
        id: "msg-1".into(),
        event_action: "CREATED".into(),
        message_type: "INFO".into(),
        message: "Kommunen har stengt for bestillinger i påsken".into(),
        municipality_name: Some("Bærum".into()),
        municipality_number: Some("3024".into()),
        organization_code: None,
        date_created: Some("2024-03-20T08:00:00Z".into()),
        received_at: "2024-03-20T08:00:01Z".into(),
    };
    let mut replay = message.clone();
    replay.message = "changed".into();
    let mut updated = message.clone();
    updated.event_action = "UPDATED".into();

    assert_eq!(
        ledger.record_message(&message).await.unwrap(),
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

    let item = client
        .get_item()
        .table_name(ledger.table())
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("DISTMSG#msg-1".into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("CREATED".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .expect("message item");
    assert_eq!(
        item["message"].as_s().unwrap(),
        "Kommunen har stengt for bestillinger i påsken",
        "the first delivery is kept"
    );
    assert_eq!(item["municipalityName"].as_s().unwrap(), "Bærum");
}

#[tokio::test]
async fn a_missing_table_is_a_permanent_error() {
    let config = support::aws_config().await;
    let ledger = DynamoLedger::new(
        aws_sdk_dynamodb::Client::new(&config),
        support::unique_name("no-such-table"),
    );
    let err = ledger.order_assets(ORDER).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
}

#[tokio::test]
async fn failed_attempts_are_counted_and_the_last_reason_kept() {
    let (ledger, _) = ledger().await;
    assert_eq!(
        ledger
            .record_failed(&attempt("a1", "404", false))
            .await
            .unwrap(),
        FailedOutcome::Recorded { attempts: 1 }
    );
    assert_eq!(
        ledger
            .record_failed(&attempt("a1", "503", true))
            .await
            .unwrap(),
        FailedOutcome::Recorded { attempts: 2 }
    );
    let assets = ledger.order_assets(ORDER).await.unwrap();
    assert_eq!(assets.len(), 1);
    assert_eq!(assets[0].state, AssetState::Failed);
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

#[tokio::test]
async fn a_failure_never_overwrites_stored_or_deleted_and_both_replace_it() {
    let (ledger, _) = ledger().await;
    ledger.record_stored(&stored("kept")).await.unwrap();
    ledger
        .mark_deleted(ORDER, &AssetId::from("gone"), "2024-05-02T00:00:00Z")
        .await
        .unwrap();
    assert_eq!(
        ledger
            .record_failed(&attempt("kept", "404", false))
            .await
            .unwrap(),
        FailedOutcome::Settled(AssetState::Stored)
    );
    assert_eq!(
        ledger
            .record_failed(&attempt("gone", "404", false))
            .await
            .unwrap(),
        FailedOutcome::Settled(AssetState::Deleted)
    );

    ledger
        .record_failed(&attempt("later", "503", true))
        .await
        .unwrap();
    ledger
        .record_failed(&attempt("withdrawn", "404", false))
        .await
        .unwrap();
    assert_eq!(
        ledger.record_stored(&stored("later")).await.unwrap(),
        RecordOutcome::Recorded
    );
    ledger
        .mark_deleted(ORDER, &AssetId::from("withdrawn"), "2024-05-02T00:00:00Z")
        .await
        .unwrap();

    let assets = ledger.order_assets(ORDER).await.unwrap();
    let state = |id: &str| assets.iter().find(|r| r.asset_id.as_str() == id).unwrap();
    assert_eq!(state("kept"), &stored("kept"));
    assert_eq!(state("gone").state, AssetState::Deleted);
    assert_eq!(state("later"), &stored("later"));
    assert_eq!(state("withdrawn").state, AssetState::Deleted);
    assert_eq!(state("withdrawn").failure, None);
}

#[tokio::test]
async fn a_purged_order_never_gets_a_new_stored_entry() {
    let (ledger, _) = ledger().await;
    ledger.record_stored(&stored("before")).await.unwrap();
    ledger
        .record_failed(&attempt("failed", "503", true))
        .await
        .unwrap();
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
}

async fn open_ids(ledger: &DynamoLedger, now: &str) -> Vec<u64> {
    let open = ledger.open_orders(now).await.expect("open orders");
    open.iter().map(|o| o.order_id.0).collect()
}

async fn order_with(ledger: &DynamoLedger, id: u64, sweep_until: Option<&str>, purged: bool) {
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

#[tokio::test]
async fn open_orders_come_from_the_index_with_holds_purges_and_closures() {
    let (ledger, client) = ledger().await;
    let now = "2024-05-01T10:00:00Z";
    let forever = kode::model::OPEN_FOREVER;
    order_with(&ledger, 1, Some(forever), false).await;
    order_with(&ledger, 2, Some("2024-05-01T10:00:00Z"), false).await;
    order_with(&ledger, 3, Some("2024-05-01T09:59:59Z"), false).await;
    order_with(&ledger, 4, Some(forever), false).await;
    order_with(&ledger, 4, None, true).await; // then cancelled
    order_with(&ledger, 5, None, false).await; // never marked
    assert_eq!(open_ids(&ledger, now).await, [1, 2]);

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
    // Holds are not assets.
    assert!(ledger.order_assets(OrderId(9)).await.unwrap().is_empty());

    ledger
        .mark_swept(OrderId(1), "2024-05-01T09:00:00Z")
        .await
        .unwrap();
    let open = ledger.open_orders(now).await.unwrap();
    assert_eq!(open[0].swept_at.as_deref(), Some("2024-05-01T09:00:00Z"));

    ledger.hold_open(OrderId(1), "events").await.unwrap();
    let first = ledger.sweep_missed(OrderId(1), 2, now).await.unwrap();
    assert_eq!((first.misses, first.closed), (1, false));
    ledger.sweep_found(OrderId(1)).await.unwrap();
    ledger.sweep_found(OrderId(1)).await.unwrap();
    ledger.sweep_missed(OrderId(1), 2, now).await.unwrap();
    let closed = ledger.sweep_missed(OrderId(1), 2, now).await.unwrap();
    assert_eq!((closed.misses, closed.closed), (2, true));
    assert_eq!(open_ids(&ledger, now).await, [2, 9]);
    order_with(&ledger, 1, Some(forever), false).await;
    assert_eq!(open_ids(&ledger, now).await, [1, 2, 9]);
    let record = ledger.order(OrderId(1)).await.unwrap().unwrap();
    assert_eq!((record.sweep_misses, record.sweep_closed_at), (0, None));
    assert_eq!(record.last_status.as_deref(), Some("UPDATED"));

    let _ = client
        .delete_table()
        .table_name(ledger.table())
        .send()
        .await;
}
