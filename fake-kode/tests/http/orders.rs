//! Orders as the fake serves them, in each documented edition of the payload.

use fake_kode::{samples, AssetSpec, Edition, FakeKode, OrderSpec};
use serde_json::json;

use crate::{get_json, post_json, token};

#[tokio::test]
async fn get_order_renders_the_current_edition_with_files_at_both_levels() {
    let fake = FakeKode::start().await;
    let order = samples::meglerpakke_order(700);
    let package_line = order.sub_orders[0].lines[0].id;
    fake.add_order(order);
    let access = token(&fake).await;
    let (status, body) = get_json(&fake, &access, "/kode/v1/orders/700").await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], 700);
    assert_eq!(body["status"], "NEW");
    assert_eq!(body["dateOrdered"], "14.03.2024 09:12:40");
    let sub = &body["orders"][0];
    assert_eq!(sub["supplierName"], "Infoland kommune");
    let sub_asset = &sub["assets"][0];
    assert_eq!(sub_asset["assetStatus"], "OK");
    let id = sub_asset["id"].as_str().unwrap_or_default();
    assert_eq!(sub_asset["downloadUrl"], fake.asset_download_url(id));
    let lines = sub["orderLines"].as_array().cloned().unwrap_or_default();
    assert_eq!(lines[0]["productType"], "PACKAGE");
    assert_eq!(lines[0]["priceVat"], 1850.0);
    assert_eq!(lines[1]["packageLineId"], package_line);
    assert_eq!(lines[1]["dateStatus"], "15.03.2024");
    assert!(lines[1]["assets"][0]["filename"]
        .as_str()
        .is_some_and(|f| f.contains('Æ')));
}

#[tokio::test]
async fn old_edition_uses_iso_dates_and_code_objects_without_line_assets() {
    let fake = FakeKode::start().await;
    fake.add_order(samples::meglerpakke_order(701));
    fake.set_edition(Edition::Old);
    let access = token(&fake).await;
    let (_, body) = get_json(&fake, &access, "/kode/v1/orders/701").await;
    assert_eq!(body["dateOrdered"], "2024-03-14T09:12:40+0100");
    let line = &body["orders"][0]["orderLines"][1];
    assert_eq!(line["status"]["code"], "FINISHED");
    assert_eq!(
        line["productType"],
        json!({ "code": "0", "name": "NORMAL" })
    );
    assert!(line.get("assets").is_none() && line.get("packageLineId").is_none());
    assert!(line.get("dateStatus").is_none());
    // Sub-order files stay visible in the old edition.
    assert_eq!(
        body["orders"][0]["assets"].as_array().map(Vec::len),
        Some(2)
    );
}

#[tokio::test]
async fn scripted_changes_show_in_the_next_get() {
    let fake = FakeKode::start().await;
    fake.add_order(OrderSpec::new(800));
    fake.add_asset(
        800,
        801,
        None,
        AssetSpec::ok("a1", "kart.pdf", &b"%PDF"[..]),
    );
    fake.set_asset_status("a1", "DELETED");
    fake.set_order_status(800, "CANCELLED");
    fake.set_asset_download_url("a1", "http://example.invalid/a1");
    let access = token(&fake).await;
    let (_, body) = get_json(&fake, &access, "/kode/v1/orders/800").await;
    assert_eq!(body["status"], "CANCELLED");
    let asset = &body["orders"][0]["assets"][0];
    assert_eq!(asset["assetStatus"], "DELETED");
    assert_eq!(asset["downloadUrl"], "http://example.invalid/a1");
}

#[tokio::test]
async fn unknown_order_is_404_with_a_message() {
    let fake = FakeKode::start().await;
    let access = token(&fake).await;
    let (status, body) = get_json(&fake, &access, "/kode/v1/orders/123").await;
    assert_eq!(status, 404);
    assert_eq!(body["message"], "Order 123 not found");
}

#[tokio::test]
async fn create_order_validates_then_creates_a_gettable_order() {
    let fake = FakeKode::start().await;
    let access = token(&fake).await;
    let (status, body) = post_json(&fake, &access, "/kode/v1/orders/cadastre",
        &json!({ "orderData": { "cadastre": "0301-207-45-0-0" }, "products": [{ "code": "WI03010033" }] })).await;
    assert_eq!(status, 400);
    assert!(body["message"]
        .as_str()
        .is_some_and(|m| m.contains("reference")));
    assert!(fake.created_orders().is_empty());

    let request = json!({
        "orderData": { "address": "Storgata 12, 0155 Oslo", "cadastre": "0301-207-45-0-0" },
        "products": [{ "code": "WI03010033" }],
        "reference": "OPPDRAG-2024-0042", "technicalReference": "acme-7f3c2a",
    });
    let (status, created) = post_json(&fake, &access, "/kode/v1/orders/cadastre", &request).await;
    assert_eq!(status, 200);
    assert_eq!(created["status"], "NEW");
    assert_eq!(created["orders"][0]["technicalReference"], "acme-7f3c2a");
    assert_eq!(
        created["orders"][0]["orderLines"].as_array().map(Vec::len),
        Some(4)
    );
    assert_eq!(
        fake.created_orders(),
        vec![("cadastre".to_owned(), request)]
    );

    let id = created["id"].as_u64().unwrap_or_default();
    let (status, fetched) = get_json(&fake, &access, &format!("/kode/v1/orders/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(fetched, created);
}

#[tokio::test]
async fn prices_answer_per_product_and_in_total() {
    let fake = FakeKode::start().await;
    let access = token(&fake).await;
    let request = json!({
        "orderData": { "geometry": { "type": "Polygon", "coordinates": [] }, "spatialReference": "25833" },
        "products": [{ "code": "WI03016101", "data": { "format": "UTM" } }, { "code": "WI03010400" }],
    });
    let (status, body) = post_json(&fake, &access, "/kode/v1/prices/map", &request).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["products"][0],
        json!({ "code": "WI03016101", "priceNet": 800.0, "priceVat": 1000.0 })
    );
    assert_eq!(body["priceNet"], 1040.0);
    assert_eq!(body["priceVat"], 1300.0);
    assert_eq!(fake.price_requests(), vec![("map".to_owned(), request)]);
}
