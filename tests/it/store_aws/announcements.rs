//! The DynamoDB ledger's pending announcements against moto: written in
//! one transaction with the change they report, and only with it.

use kode::events::{self, EventScope};
use kode::model::{AssetId, OrderId};
use kode::model::{AssetRecord, AssetState, MessageRecord, ObjectKey};
use kode::store::aws::DynamoLedger;
use kode::store::{Ledger, RecordOutcome};

use crate::support;

const ORDER: OrderId = OrderId(1_000_456);
const AT: &str = "2024-05-01T10:00:00Z";

async fn ledger() -> (DynamoLedger, aws_sdk_dynamodb::Client) {
    let config = support::aws_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = support::unique_name("ledger-events");
    support::create_ledger_table(&client, &table).await;
    (DynamoLedger::new(client.clone(), table), client)
}

fn stored(asset: &str) -> AssetRecord {
    AssetRecord {
        order_id: ORDER,
        asset_id: AssetId::from(asset),
        state: AssetState::Stored,
        key: Some(ObjectKey(format!("orders/{ORDER}/{asset}/Kart.pdf"))),
        sub_order_id: None,
        order_line_id: None,
        bytes: Some(10),
        sha256: Some("0f".repeat(32)),
        content_type: None,
        name: Some("Kart.pdf".into()),
        category: None,
        stored_at: Some(AT.into()),
        deleted_at: None,
        failure: None,
    }
}

fn ids(events: &[kode::events::Event]) -> Vec<String> {
    events.iter().map(|e| e.id.0.clone()).collect()
}

#[tokio::test]
async fn announcements_are_written_with_their_change_and_cleared_once_sent() {
    let (ledger, client) = ledger().await;
    let scope = EventScope::Order(ORDER);
    let record = stored("a1");
    let event = events::asset_stored(&record, Some("REF"), Some("bucket"), AT).unwrap();

    let first = ledger.record_stored_announcing(&record, Some(&event)).await;
    assert_eq!(first.unwrap(), RecordOutcome::Recorded);
    let replay = ledger.record_stored_announcing(&record, Some(&event)).await;
    assert_eq!(replay.unwrap(), RecordOutcome::AlreadyRecorded);
    let pending = ledger.pending_announcements(scope).await.unwrap();
    assert_eq!(pending, std::slice::from_ref(&event), "read back whole");
    // The asset listing is not disturbed by the announcement items.
    assert_eq!(
        ledger.order_assets(ORDER).await.unwrap(),
        vec![record.clone()]
    );

    let key = record.key.clone().unwrap();
    // Items come back by id; pending announcements in the order of their
    // changes.
    let later = "2024-05-02T10:00:00Z";
    let deleted = events::asset_deleted(ORDER, &record.asset_id, &key, later);
    let outcome = ledger
        .mark_deleted_announcing(ORDER, &record.asset_id, later, Some(&deleted))
        .await
        .unwrap();
    assert_eq!(outcome, RecordOutcome::Recorded);
    let again = ledger
        .mark_deleted_announcing(ORDER, &record.asset_id, AT, Some(&deleted))
        .await
        .unwrap();
    assert_eq!(again, RecordOutcome::AlreadyRecorded);
    // A never-stored asset gets its tombstone and no announcement.
    let never = AssetId::from("never");
    let tombstone = events::asset_deleted(ORDER, &never, &key, AT);
    let outcome = ledger
        .mark_deleted_announcing(ORDER, &never, AT, Some(&tombstone))
        .await
        .unwrap();
    assert_eq!(outcome, RecordOutcome::Recorded);
    assert_eq!(
        ledger.order_assets(ORDER).await.unwrap()[1].state,
        AssetState::Deleted
    );

    let pending = ledger.pending_announcements(scope).await.unwrap();
    assert_eq!(
        ids(&pending),
        [format!("{ORDER}:a1:stored"), format!("{ORDER}:a1:deleted")]
    );
    for event in &pending {
        ledger.announcement_sent(event, AT).await.unwrap();
    }
    assert!(ledger
        .pending_announcements(scope)
        .await
        .unwrap()
        .is_empty());

    let _ = client
        .delete_table()
        .table_name(ledger.table())
        .send()
        .await;
}

#[tokio::test]
async fn order_and_message_events_are_remembered_once() {
    let (ledger, client) = ledger().await;
    let completed = events::order_completed(ORDER, None, &[], AT);
    assert_eq!(
        ledger.record_announcement(&completed).await.unwrap(),
        RecordOutcome::Recorded
    );
    ledger.announcement_sent(&completed, AT).await.unwrap();
    assert_eq!(
        ledger.record_announcement(&completed).await.unwrap(),
        RecordOutcome::AlreadyRecorded,
        "still known after it was sent"
    );
    assert!(ledger
        .pending_announcements(EventScope::Order(ORDER))
        .await
        .unwrap()
        .is_empty());

    let message = MessageRecord {
        id: "m-1".into(),
        event_action: "Created".into(),
        message_type: "CUSTOMER".into(),
        message: "Planregisteret er nede".into(),
        municipality_name: None,
        municipality_number: None,
        organization_code: None,
        date_created: None,
        received_at: AT.into(),
    };
    let push = serde_json::json!({
        "eventType": "DistributorMessages", "eventAction": "Created",
        "content": {"id": "m-1", "type": "CUSTOMER", "message": "Planregisteret er nede"},
    });
    let kode::model::Push::Distributor(parsed) = kode::model::Push::from_value(&push).unwrap()
    else {
        unreachable!()
    };
    let event = events::distributor_message(&parsed, AT);
    for expected in [RecordOutcome::Recorded, RecordOutcome::AlreadyRecorded] {
        let outcome = ledger
            .record_message_announcing(&message, Some(&event))
            .await
            .unwrap();
        assert_eq!(outcome, expected);
    }
    let pending = ledger
        .pending_announcements(EventScope::Distributor)
        .await
        .unwrap();
    assert_eq!(ids(&pending), ["distributor:m-1:Created"]);
    ledger.announcement_sent(&pending[0], AT).await.unwrap();
    assert!(ledger
        .pending_announcements(EventScope::Distributor)
        .await
        .unwrap()
        .is_empty());

    let _ = client
        .delete_table()
        .table_name(ledger.table())
        .send()
        .await;
}
