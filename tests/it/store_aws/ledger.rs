//! `DynamoLedger` against moto, beyond the ledger contract (`contract/ledger.rs`):
//! paging, a missing table, and what the message item holds.

use kode::model::{AssetId, OrderId, OrderLineId, SubOrderId};
use kode::model::{AssetRecord, AssetState, MessageRecord, ObjectKey};
use kode::store::aws::DynamoLedger;
use kode::store::{Ledger, RecordOutcome};

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
