use serde_json::{json, Value};

use super::*;
use crate::model::AssetState;
use crate::model::Push;
use crate::names::object_key;

const ORDER: OrderId = OrderId(2_345_678);
const ASSET: &str = "9f3c1e2a7b6d4c58a1e0f2b3c4d5e6f7";
const OTHER_ASSET: &str = "4a8d2c6e0f1b3a5c7e9d1f2a4b6c8e0d";
const AT: &str = "2024-05-01T10:00:00Z";

fn stored_record() -> AssetRecord {
    let asset = AssetId::from(ASSET);
    AssetRecord {
        order_id: ORDER,
        asset_id: asset.clone(),
        state: AssetState::Stored,
        key: Some(object_key(ORDER, &asset, "Reguleringskart.pdf")),
        sub_order_id: Some(SubOrderId(11)),
        order_line_id: Some(OrderLineId(21)),
        bytes: Some(48_213),
        sha256: Some("5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef".into()),
        content_type: Some("application/pdf".into()),
        name: Some("Reguleringskart.pdf".into()),
        category: Some("Kart".into()),
        stored_at: Some(AT.into()),
        deleted_at: None,
        failure: None,
    }
}

fn key(name: &str) -> ObjectKey {
    object_key(ORDER, &AssetId::from(ASSET), name)
}

fn message() -> DistributorMessage {
    let body = include_str!("../../tests/fixtures/distributor_message.json");
    match Push::from_slice(body.as_bytes()) {
        Ok(Push::Distributor(message)) => message,
        other => panic!("not a distributor message: {other:?}"),
    }
}

/// The known input behind each documented example.
fn example(event_type: EventType) -> Event {
    match event_type {
        EventType::AssetStored => asset_stored(
            &stored_record(),
            Some("OPPDRAG-2024-0042"),
            Some("kode-push-assets-123456789012"),
            AT,
        )
        .unwrap(),
        EventType::AssetDeleted => asset_deleted(
            ORDER,
            &AssetId::from(ASSET),
            &key("Reguleringskart.pdf"),
            AT,
        ),
        EventType::AssetFailed => asset_failed(
            ORDER,
            &AssetId::from(ASSET),
            "download answered 404 Not Found",
            5,
            AT,
        ),
        EventType::OrderCompleted => order_completed(
            ORDER,
            Some("OPPDRAG-2024-0042"),
            &[
                object_key(ORDER, &AssetId::from(OTHER_ASSET), "Situasjonskart.pdf"),
                key("Reguleringskart.pdf"),
            ],
            AT,
        ),
        EventType::OrderPurged => {
            order_purged(ORDER, "CANCELLED", &[key("Reguleringskart.pdf")], AT)
        }
        EventType::DistributorMessage => distributor_message(&message(), AT),
    }
}

fn schema(event_type: EventType) -> Value {
    let text = match event_type {
        EventType::AssetStored => include_str!("../../../docs/events/asset.stored.json"),
        EventType::AssetDeleted => include_str!("../../../docs/events/asset.deleted.json"),
        EventType::AssetFailed => include_str!("../../../docs/events/asset.failed.json"),
        EventType::OrderCompleted => include_str!("../../../docs/events/order.completed.json"),
        EventType::OrderPurged => include_str!("../../../docs/events/order.purged.json"),
        EventType::DistributorMessage => {
            include_str!("../../../docs/events/distributor.message.json")
        }
    };
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{event_type} schema: {e}"))
}

#[test]
fn each_documented_example_is_what_the_code_sends() {
    for event_type in EventType::ALL {
        let schema = schema(event_type);
        assert_eq!(schema["title"], event_type.name());
        assert_eq!(
            schema["examples"][0],
            example(event_type).data_json(),
            "docs/events/{event_type}.json example"
        );
    }
}

/// Not a full validator: it catches a schema that drifted from the code
/// (a field added, renamed or retyped on one side only).
#[test]
fn each_schema_describes_exactly_the_fields_of_its_example() {
    for event_type in EventType::ALL {
        let schema = schema(event_type);
        let properties = schema["properties"].as_object().unwrap();
        let data = example(event_type).data_json();
        let data = data.as_object().unwrap();
        for field in schema["required"].as_array().unwrap() {
            let field = field.as_str().unwrap();
            assert!(
                data.contains_key(field),
                "{event_type}: required {field} missing"
            );
        }
        for (field, value) in data {
            let property = properties
                .get(field)
                .unwrap_or_else(|| panic!("{event_type}: {field} not in the schema"));
            let expected = property["type"].as_str().unwrap_or("any");
            let actual = match value {
                Value::String(_) => "string",
                Value::Number(_) => "integer",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
                Value::Bool(_) => "boolean",
                Value::Null => "null",
            };
            assert_eq!(expected, actual, "{event_type}: type of {field}");
        }
        assert_eq!(schema["additionalProperties"], json!(false), "{event_type}");
    }
}

#[test]
fn ids_are_derived_from_what_is_announced() {
    let ids: Vec<String> = EventType::ALL
        .into_iter()
        .map(|t| example(t).id.0)
        .collect();
    assert_eq!(
        ids,
        [
            format!("2345678:{ASSET}:stored"),
            format!("2345678:{ASSET}:deleted"),
            format!("2345678:{ASSET}:failed:{AT}"),
            "2345678:completed".to_owned(),
            "2345678:purged".to_owned(),
            "distributor:6d1f4a2e-93b8-4c57-a0e1-2b7c9d3f5e84:Created".to_owned(),
        ]
    );
    // The same change announced twice has the same id.
    assert_eq!(
        example(EventType::AssetStored),
        example(EventType::AssetStored)
    );
}

#[test]
fn the_webhook_body_is_type_timestamp_and_data() {
    let event = example(EventType::AssetDeleted);
    let body: Value = serde_json::from_str(&event.webhook_body()).unwrap();
    assert_eq!(
        body,
        json!({
            "type": "asset.deleted",
            "timestamp": AT,
            "data": {
                "eventId": format!("2345678:{ASSET}:deleted"),
                "orderId": 2_345_678,
                "assetId": ASSET,
                "key": format!("orders/2345678/{ASSET}/Reguleringskart.pdf"),
            },
        })
    );
}

#[test]
fn events_read_back_from_the_ledger_as_they_were() {
    for event_type in EventType::ALL {
        let event = example(event_type);
        let mut data = event.data_json();
        data.as_object_mut().unwrap().remove("eventId");
        let back = Event::from_parts(
            event.id.as_str(),
            event_type.name(),
            &event.timestamp,
            &data.to_string(),
        )
        .unwrap();
        assert_eq!(back, event);
        assert_eq!(EventType::parse(event_type.name()), Some(event_type));
    }
    assert!(Event::from_parts("x", "asset.renamed", AT, "{}").is_err());
}

#[test]
fn order_events_list_at_most_100_keys_and_stay_far_below_256_kb() {
    // The longest key the naming rules allow: a shortened asset id and a
    // 200-byte file name.
    let long_asset = AssetId("x".repeat(400));
    let keys: Vec<ObjectKey> = (0..250)
        .map(|i| {
            object_key(
                ORDER,
                &long_asset,
                &format!("{i:03}{}.pdf", "å".repeat(100)),
            )
        })
        .collect();
    let event = order_completed(ORDER, Some(&"r".repeat(200)), &keys, AT);
    let EventData::OrderCompleted(data) = &event.data else {
        unreachable!()
    };
    assert_eq!((data.files, data.keys.len()), (250, MAX_KEYS));
    assert_eq!(data.keys[0], keys[0], "the first keys, in order");
    let size = event.data_json().to_string().len();
    assert!(size < 64 * 1024, "{size} bytes");
}

#[test]
fn a_record_without_key_or_digest_announces_nothing() {
    let mut record = stored_record();
    record.sha256 = None;
    assert_eq!(asset_stored(&record, None, None, AT), None);
}

#[test]
fn local_events_carry_no_bucket() {
    let event = asset_stored(&stored_record(), None, None, AT).unwrap();
    let data = event.data_json();
    assert!(data.get("bucket").is_none() && data.get("reference").is_none());
    assert_eq!(event.scope(), EventScope::Order(ORDER));
    assert_eq!(
        example(EventType::DistributorMessage).scope(),
        EventScope::Distributor
    );
}
