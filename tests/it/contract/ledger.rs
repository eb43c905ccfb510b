//! The ledger contract: the same checks on `SqliteLedger` (a temp file) and
//! `DynamoLedger` (moto), so that what passes for `kode serve` holds for the
//! Lambdas too. Adapter-only behaviour (DynamoDB paging, SQLite totals) is
//! tested beside each adapter.

use kode::model::{
    AssetId, AssetRecord, AssetState, MessageRecord, ObjectKey, OrderId, OrderLineId, OrderRecord,
    SubOrderId,
};
use kode::store::aws::DynamoLedger;
use kode::store::local::SqliteLedger;
use kode::store::{Ledger, RecordOutcome};

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
