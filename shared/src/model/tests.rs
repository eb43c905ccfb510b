//! Every example body of `docs/kode-api.md`, in each documented variant,
//! parsed into the model (fixtures in `shared/tests/fixtures/`).

use serde::Deserialize;

use super::*;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../../tests/fixtures/", $name))
    };
}

fn parse<T: serde::de::DeserializeOwned>(json: &str) -> T {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"))
}

fn utc(date: &Option<KodeDate>) -> String {
    date.as_ref()
        .and_then(KodeDate::instant)
        .map(|t| t.to_string())
        .unwrap_or_else(|| panic!("{date:?} has no instant"))
}

#[test]
fn products_with_package_children() {
    let products: Vec<Product> = parse(fixture!("products.json"));
    assert_eq!(products.len(), 1);
    let p = &products[0];
    assert_eq!(p.code, "WI03010033");
    assert_eq!(p.name, "Meglerpakke");
    assert_eq!(p.description.as_deref(), Some("Pakken inneholder:"));
    assert_eq!(p.delivery.as_ref().unwrap().code, "DIGITAL");
    assert_eq!(
        p.input_type.as_ref().unwrap().name.as_deref(),
        Some("Matrikkel")
    );
    let price = p.price.unwrap();
    assert_eq!(price.sales_price_net, Some(1480.0));
    assert_eq!(price.sales_price_vat, Some(1850.0));
    assert_eq!(p.status.as_ref().unwrap().code, "ACTIVE");
    assert!(p.is_package());
    let children: Vec<(&str, &str)> = p
        .children
        .iter()
        .map(|c| (c.code.as_str(), c.name.as_str()))
        .collect();
    assert_eq!(
        children,
        [
            ("WI03010900", "Godkjente bygningstegninger"),
            ("WI03010400", "Grunnkart")
        ]
    );
}

#[test]
fn products_tolerate_missing_and_null_fields() {
    let products: Vec<Product> = parse(
        r#"[{"code":"WI03016101","name":"Kartutsnitt","type":"NORMAL","children":null,"price":null,"extra":1},
            {"code":"X"}]"#,
    );
    assert!(!products[0].is_package());
    assert_eq!(products[0].product_type.as_ref().unwrap().code, "NORMAL");
    assert!(products[0].children.is_empty() && products[0].price.is_none());
    assert_eq!(products[1].name, "");
}

#[test]
fn price_quote_is_read_leniently() {
    let quote: PriceQuote = parse(
        r#"{"products":[{"code":"WI03016101","priceNet":400,"priceVat":500.0}],"priceNet":400,"priceVat":500}"#,
    );
    assert_eq!(quote.price_vat, Some(500.0));
    assert_eq!(quote.products[0].code, "WI03016101");
    assert_eq!(quote.products[0].price_net, Some(400.0));
    let empty: PriceQuote = parse("{}");
    assert_eq!(empty, PriceQuote::default());
}

#[test]
fn create_response_current_edition() {
    let order: Order = parse(fixture!("order_create_current.json"));
    assert_eq!(order.id, OrderId(2345678));
    assert_eq!(order.status.as_deref(), Some("NEW"));
    assert_eq!(order.price_net, Some(1480.0));
    assert_eq!(order.price_vat, Some(1850.0));
    assert_eq!(
        order.date_ordered.as_ref().unwrap().raw(),
        "14.03.2024 09:12:40"
    );
    assert_eq!(utc(&order.date_ordered), "2024-03-14T08:12:40Z");
    let sub = &order.orders[0];
    assert_eq!(sub.id, SubOrderId(2345679));
    assert_eq!(sub.supplier_name.as_deref(), Some("Oslo kommune"));
    assert_eq!(sub.technical_reference.as_deref(), Some("acme-7f3c2a"));
    let [package, child] = &sub.order_lines[..] else {
        panic!("expected two lines");
    };
    assert_eq!(package.product_type(), Some("PACKAGE"));
    assert_eq!(package.package_line_id, None);
    assert_eq!(package.status_code(), Some("NEW"));
    assert_eq!(child.product_type(), Some("NORMAL"));
    assert_eq!(child.package_line_id, Some(OrderLineId(13579001)));
    assert_eq!(child.price_vat, Some(0.0));
    assert_eq!(utc(&child.date_status), "2024-03-13T23:00:00Z");
    assert_eq!(order.assets().count(), 0);
}

#[test]
fn create_response_old_edition_with_object_status_and_product_type() {
    let order: Order = parse(fixture!("order_create_old.json"));
    assert_eq!(order.id, OrderId(1664984));
    assert_eq!(utc(&order.date_ordered), "2021-01-28T08:10:15Z");
    let sub = &order.orders[0];
    assert_eq!(sub.id, SubOrderId(2640649));
    assert_eq!(sub.technical_reference, None);
    let package = &sub.order_lines[0];
    let child = &sub.order_lines[1];
    assert_eq!(package.product_type(), Some("PACKAGE"));
    assert_eq!(child.product_type(), Some("NORMAL"));
    assert_eq!(child.status_code(), Some("NEW"));
    assert_eq!(
        child.status.as_ref().unwrap().name.as_deref(),
        Some("New order. Has not been processed yet.")
    );
    assert!(
        child.assets.is_empty() && child.date_status.is_none() && child.package_line_id.is_none()
    );
}

#[test]
fn old_order_line_on_its_own() {
    let line: OrderLine = parse(
        r#"{ "id": 13579002,
  "status": { "code": "NEW", "name": "New order. Has not been processed yet." },
  "product": "WI03010900", "productName": "Godkjente bygningstegninger",
  "productType": { "code": "0", "name": "NORMAL" },
  "mediaType": "Datafil", "delivery": "Elektronisk", "priceNet": 0, "priceVat": 0 }"#,
    );
    assert_eq!(line.id, OrderLineId(13579002));
    assert_eq!(line.product_type(), Some("NORMAL"));
    assert_eq!(line.media_type.as_deref(), Some("Datafil"));
    let numeric: OrderLine = parse(r#"{"id":1,"productType":{"code":1,"name":"PACKAGE"}}"#);
    assert_eq!(numeric.product_type(), Some("PACKAGE"));
}

#[test]
fn get_order_walks_assets_at_both_levels() {
    let order: Order = parse(fixture!("order_get.json"));
    assert_eq!(order.status.as_deref(), Some("PROGRESS"));
    let assets: Vec<_> = order
        .assets()
        .map(|(at, a)| {
            (
                at.sub_order,
                at.order_line,
                a.id.as_str(),
                a.asset_status.clone(),
            )
        })
        .collect();
    assert_eq!(
        assets,
        [
            (
                SubOrderId(2345679),
                None,
                "4e7d1c2b9a8f4e3d2c1b0a9f8e7d6c5b",
                AssetStatus::Deleted
            ),
            (
                SubOrderId(2345679),
                Some(OrderLineId(13579002)),
                "9f2c4e1a7b3d4c5e8f90a1b2c3d4e5f6",
                AssetStatus::Ok
            ),
        ]
    );
    let (_, line_asset) = order.assets().nth(1).unwrap();
    assert_eq!(
        line_asset.display_name(),
        "Godkjente-bygningstegninger-Storgata-12.pdf"
    );
    assert_eq!(
        line_asset.product_category.as_deref(),
        Some("KOMMUNAL_INFORMASJON")
    );
    assert_eq!(
        line_asset.download_url,
        "https://beta-api.ambita.com/shopping/v2/assets/9f2c4e1a7b3d4c5e8f90a1b2c3d4e5f6"
    );
}

#[test]
fn null_assets_and_unknown_fields_are_tolerated() {
    let order: Order = parse(
        r#"{"id":"7","status":{"code":"FINISHED"},"surprise":true,
            "orders":[{"id":8,"assets":null,"orderLines":[{"id":9,"assets":null}]}]}"#,
    );
    assert_eq!(order.id, OrderId(7));
    assert_eq!(order.status.as_deref(), Some("FINISHED"));
    assert_eq!(order.assets().count(), 0);
}

#[test]
fn asset_example_keeps_the_misspelt_category() {
    let asset: Asset = parse(fixture!("asset.json"));
    assert_eq!(asset.id.as_str(), "4e7d1c2b9a8f4e3d2c1b0a9f8e7d6c5b");
    assert_eq!(asset.name.as_deref(), Some("Reguleringsplan_0301_2019.pdf"));
    assert_eq!(asset.asset_status, AssetStatus::Ok);
    assert_eq!(
        asset.product_category.as_deref(),
        Some("PRODUCT_UTEN_KATEGORI")
    );
    let unknown: Asset =
        parse(r#"{"id":"x","downloadUrl":"https://h/x","assetStatus":"QUARANTINED"}"#);
    assert_eq!(
        unknown.asset_status,
        AssetStatus::Unknown("QUARANTINED".into())
    );
}

#[test]
fn flex_files_use_url_status_and_category() {
    #[derive(Deserialize)]
    struct Files {
        files: Vec<Asset>,
    }
    let files: Files = parse(fixture!("flex_files.json"));
    let first = &files.files[0];
    assert_eq!(
        first.download_url,
        "https://beta-api.ambita.com/shopping/v2/assets/a1b2c3d4e5f60718293a4b5c6d7e8f90"
    );
    assert_eq!(first.asset_status, AssetStatus::Ok);
    assert_eq!(first.product_category.as_deref(), Some("VEDTEKTER"));
    // First edition: only id, name, url.
    let second = &files.files[1];
    assert_eq!(second.asset_status, AssetStatus::Ok);
    assert_eq!(second.product_category, None);
    assert_eq!(second.display_name(), "Salgsoppgave.pdf");
}

fn order_push(json: &str) -> OrderPush {
    match Push::from_slice(json.as_bytes()) {
        Ok(Push::Order(p)) => p,
        other => panic!("expected an order push, got {other:?}"),
    }
}

#[test]
fn order_push_current_edition() {
    let push = order_push(fixture!("push_order.json"));
    assert_eq!(push.order_id, OrderId(2345678));
    assert_eq!(push.status, PushStatus::Updated);
    assert_eq!(push.reference.as_deref(), Some("OPPDRAG-2024-0042"));
    assert_eq!(push.technical_reference.as_deref(), Some("acme-7f3c2a"));
}

#[test]
fn order_push_first_edition_with_order_id_and_update() {
    let push = order_push(fixture!("push_order_first_edition.json"));
    assert_eq!(push.order_id, OrderId(2345678));
    assert_eq!(push.status, PushStatus::Updated);
}

#[test]
fn order_push_every_status_and_an_unknown_one() {
    for (raw, expected) in [
        ("NEW", PushStatus::New),
        ("FINISHED", PushStatus::Finished),
        ("CANCELLED", PushStatus::Cancelled),
        ("REFUNDED", PushStatus::Refunded),
        ("PROCESSING", PushStatus::Unknown("PROCESSING".into())),
    ] {
        let push = order_push(&format!(r#"{{"orderCollectionId":1,"status":"{raw}"}}"#));
        assert_eq!(push.status, expected);
    }
    assert!(PushStatus::Refunded.purges_files() && !PushStatus::Finished.purges_files());
}

fn distributor(json: &str) -> DistributorMessage {
    match Push::from_slice(json.as_bytes()) {
        Ok(Push::Distributor(m)) => m,
        other => panic!("expected a distributor message, got {other:?}"),
    }
}

#[test]
fn distributor_message_current_nesting() {
    let m = distributor(fixture!("distributor_message.json"));
    assert_eq!(m.id, "6d1f4a2e-93b8-4c57-a0e1-2b7c9d3f5e84");
    assert_eq!(m.event_action, "Created");
    assert_eq!(m.message_type, DistributorMessageType::Customer);
    assert_eq!(m.message, "Planregisteret er utilgjengelig lørdag 08-12.");
    assert_eq!(m.municipality_name.as_deref(), Some("OSLO"));
    assert_eq!(m.municipality_number.as_deref(), Some("0301"));
    assert_eq!(utc(&m.date_created), "2024-03-08T23:00:00Z");
}

#[test]
fn distributor_message_body_nesting() {
    let m = distributor(fixture!("distributor_message_body.json"));
    assert_eq!(m.id, "b7e3a9d1-2c4f-4e6a-9b8d-1f0e2d3c4b5a");
    assert_eq!(m.message_type, DistributorMessageType::Distributor);
    assert_eq!(m.organization_code.as_deref(), Some("K9999INFOLAND"));
    assert_eq!(m.municipality_number, None);
    assert_eq!(m.date_created, None);
}
