//! `DynamoLedger` against moto: the conditional writes that keep a replay or
//! a concurrent run from storing twice or bringing a deleted file back.

use kode::model::{AssetId, OrderId, OrderLineId, SubOrderId};
use kode::store::aws::DynamoLedger;
use kode::store::{
    AssetRecord, AssetState, Ledger, MessageRecord, ObjectKey, OrderRecord, RecordOutcome,
};

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
    }
}

#[tokio::test]
async fn recording_an_asset_twice_keeps_the_first_record() {
    let (ledger, _) = ledger().await;
    let first = stored("a1");
    let mut replay = first.clone();
    replay.stored_at = Some("2024-05-02T10:00:00Z".into());

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

#[tokio::test]
async fn a_deleted_asset_cannot_be_recorded_again() {
    let (ledger, _) = ledger().await;
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

    let assets = ledger.order_assets(ORDER).await.unwrap();
    let mut expected = record.clone();
    expected.state = AssetState::Deleted;
    expected.deleted_at = Some(at.into());
    assert_eq!(
        assets,
        [expected],
        "key, size and hash stay; deletedAt is the first"
    );
}

#[tokio::test]
async fn deleting_a_never_stored_asset_leaves_a_tombstone() {
    let (ledger, _) = ledger().await;
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
        ledger.record_stored(&stored("never")).await.unwrap(),
        RecordOutcome::AlreadyDeleted
    );
}

#[tokio::test]
async fn order_assets_lists_only_that_orders_assets() {
    let (ledger, _) = ledger().await;
    for asset in ["a1", "a2", "a3"] {
        ledger.record_stored(&stored(asset)).await.unwrap();
    }
    let mut other = stored("b1");
    other.order_id = OrderId(42);
    ledger.record_stored(&other).await.unwrap();
    ledger
        .upsert_order(&OrderRecord {
            order_id: Some(ORDER),
            last_status: Some("NEW".into()),
            ..OrderRecord::default()
        })
        .await
        .unwrap();

    let mut ids: Vec<String> = ledger
        .order_assets(ORDER)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.asset_id.to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, ["a1", "a2", "a3"]);
    assert!(ledger.order_assets(OrderId(7)).await.unwrap().is_empty());
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
async fn upsert_order_overwrites_set_fields_and_keeps_finished_and_purged_times() {
    let (ledger, _) = ledger().await;
    assert_eq!(ledger.order(ORDER).await.unwrap(), None);
    ledger
        .upsert_order(&OrderRecord {
            order_id: Some(ORDER),
            last_status: Some("FINISHED".into()),
            reference: Some("Oppdrag 17".into()),
            technical_reference: Some("tech-17".into()),
            finished_at: Some("2024-05-01T10:00:00Z".into()),
            purged_at: None,
            updated_at: Some("2024-05-01T10:00:00Z".into()),
            sweep_until: Some("2024-05-15T10:00:00Z".into()),
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

    let order = ledger.order(ORDER).await.unwrap().expect("order record");
    assert_eq!(
        order,
        OrderRecord {
            order_id: Some(ORDER),
            last_status: Some("CANCELLED".into()),
            reference: Some("Oppdrag 17".into()),
            technical_reference: Some("tech-17".into()),
            finished_at: Some("2024-05-01T10:00:00Z".into()),
            purged_at: Some("2024-06-01T10:00:00Z".into()),
            updated_at: Some("2024-06-01T10:00:00Z".into()),
            // Purged: no longer open.
            ..OrderRecord::default()
        }
    );
}

#[tokio::test]
async fn upsert_order_without_an_order_id_is_refused() {
    let (ledger, _) = ledger().await;
    let err = ledger
        .upsert_order(&OrderRecord::default())
        .await
        .unwrap_err();
    assert!(!err.is_retryable());
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
    let forever = kode::sweep::OPEN_FOREVER;
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
