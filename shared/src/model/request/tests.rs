//! Order requests: every documented body shape built and serialised as KODE expects.

use serde_json::{json, Value};

use super::*;

fn products(codes: &[&str]) -> Vec<ProductSelection> {
    codes
        .iter()
        .map(|c| ProductSelection::new(ProductCode::parse(c).unwrap()))
        .collect()
}

fn map_polygon() -> Value {
    json!({ "type": "Polygon", "coordinates": [[ [597210.0, 6643120.0],
      [597210.0, 6643420.0], [597610.0, 6643420.0], [597610.0, 6643120.0],
      [597210.0, 6643120.0] ]] })
}

fn geojson_err(value: Value) -> String {
    GeoJsonInput::from_value(&value).unwrap_err().to_string()
}

#[test]
fn cadastre_order_serialises_as_documented() {
    let data = OrderData::cadastre(
        Cadastre::parse("0301-207-45-0-0").unwrap(),
        Some("Storgata 12, 0155 Oslo"),
    )
    .unwrap();
    let delivery = DeliveryInformation {
        name: Some("Kari Megler".into()),
        company_name: Some("Eiendomsmegler Acme AS".into()),
        email: Some("kari@acme.example".into()),
        phone: Some("+4791234567".into()),
        address: Some("Postboks 12".into()),
        postal_code: Some("0101".into()),
        ..Default::default()
    };
    let request = CreateOrderRequest::new(data, products(&["WI03010033"]), "OPPDRAG-2024-0042")
        .unwrap()
        .with_technical_reference("acme-7f3c2a")
        .unwrap()
        .with_delivery_information(delivery)
        .unwrap();
    assert_eq!(request.kind(), OrderKind::Cadastre);
    // kode-api.md §5.1, cadastre example.
    let expected = json!({
      "deliveryInformation": { "name": "Kari Megler", "companyName": "Eiendomsmegler Acme AS",
        "email": "kari@acme.example", "phone": "+4791234567",
        "address": "Postboks 12", "postalCode": "0101" },
      "orderData": { "address": "Storgata 12, 0155 Oslo", "cadastre": "0301-207-45-0-0" },
      "products": [ { "code": "WI03010033" } ],
      "reference": "OPPDRAG-2024-0042",
      "technicalReference": "acme-7f3c2a"
    });
    assert_eq!(serde_json::to_value(&request).unwrap(), expected);
}

#[test]
fn share_order_sends_numbers_and_omits_absent_fields() {
    let data = OrderData::Share {
        organization_number: OrganizationNumber::parse("948677202").unwrap(),
        share_number: ShareNumber::parse("57").unwrap(),
    };
    let request =
        CreateOrderRequest::new(data, products(&["WI03010150"]), "OPPDRAG-2024-0043").unwrap();
    assert_eq!(request.kind(), OrderKind::Share);
    let expected = json!({"orderData": {"organizationNumber": 948677202, "shareNumber": 57},
        "products": [{"code": "WI03010150"}], "reference": "OPPDRAG-2024-0043"});
    assert_eq!(serde_json::to_value(&request).unwrap(), expected);
}

#[test]
fn map_price_request_serialises_as_documented() {
    let input = GeoJsonInput::from_value(&map_polygon()).unwrap();
    let data = OrderData::map(input, None).unwrap();
    let mut format = serde_json::Map::new();
    format.insert("format".into(), json!("UTM"));
    let product = ProductSelection::with_data(ProductCode::parse("WI03016101").unwrap(), format);
    let request = PriceRequest::new(data, vec![product]).unwrap();
    assert_eq!(request.kind(), OrderKind::Map);
    // kode-api.md §4.
    let expected = json!({ "orderData": { "geometry": map_polygon(), "spatialReference": "25833" },
      "products": [ { "code": "WI03016101", "data": { "format": "UTM" } } ] });
    assert_eq!(serde_json::to_value(&request).unwrap(), expected);
}

#[test]
fn empty_delivery_information_is_left_out() {
    let data = OrderData::cadastre(Cadastre::parse("9999-1-2-0-0").unwrap(), None).unwrap();
    let request = CreateOrderRequest::new(data, products(&["P1"]), "R")
        .unwrap()
        .with_delivery_information(DeliveryInformation::default())
        .unwrap();
    let body = serde_json::to_value(&request).unwrap();
    assert_eq!(body.get("deliveryInformation"), None);
    assert_eq!(body["orderData"], json!({"cadastre": "9999-1-2-0-0"}));
}

#[test]
fn cadastre_keeps_leading_zero_and_normalises_parts() {
    let c = Cadastre::parse(" 0301-0207-45-0-0 ").unwrap();
    assert_eq!(c.municipality.as_str(), "0301");
    assert_eq!(c.to_string(), "0301-207-45-0-0");
}

#[test]
fn cadastre_rejects_malformed_input_with_reason() {
    for (bad, reason) in [
        ("0301-207-45", "has 3 part(s), not 5"),
        ("301-207-45-0-0", "four digits"),
        (
            "0301-207-x-0-0",
            "bnr \"x\" is not a non-negative whole number",
        ),
        ("0301-207--0-0", "bnr \"\" is not"),
        ("0301-207-45-0--1", "has 6 part(s)"),
        (
            "0301-99999999999-45-0-0",
            "gnr \"99999999999\" is too large",
        ),
        ("0301/207/45/0/0", "has 1 part(s)"),
    ] {
        let err = Cadastre::parse(bad).unwrap_err().to_string();
        assert!(err.contains(reason), "{bad}: {err}");
        assert!(
            err.contains("0301-207-45-0-0"),
            "error shows the format: {err}"
        );
    }
}

#[test]
fn organisation_number_checks_length_and_check_digit() {
    assert_eq!(
        OrganizationNumber::parse("948677202").unwrap().get(),
        948677202
    );
    assert_eq!(
        OrganizationNumber::parse("948 677 202").unwrap().get(),
        948677202
    );
    for (bad, reason) in [
        ("94867720", "nine digits"),
        ("9486772020", "nine digits"),
        ("94867720x", "nine digits"),
        ("048677202", "start with 0"),
        ("948677203", "check digit"),
    ] {
        let err = OrganizationNumber::parse(bad).unwrap_err().to_string();
        assert!(err.contains(reason), "{bad}: {err}");
    }
}

#[test]
fn share_number_must_be_a_positive_whole_number() {
    assert_eq!(ShareNumber::parse("57").unwrap().get(), 57);
    for bad in ["", "fifty", "-3", "5.5", "0", "99999999999999999999999"] {
        assert!(ShareNumber::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn spatial_reference_accepts_epsg_spellings_and_defaults_to_33() {
    assert_eq!(
        SpatialReference::parse("25832").unwrap(),
        SpatialReference::Utm32
    );
    assert_eq!(
        SpatialReference::parse("EPSG:25833").unwrap(),
        SpatialReference::Utm33
    );
    assert_eq!(SpatialReference::default().as_str(), "25833");
    assert!(SpatialReference::parse("4326").is_err());
}

#[test]
fn geojson_feature_and_single_feature_collection_are_unwrapped() {
    let feature = json!({"type": "Feature", "properties": {}, "geometry": map_polygon()});
    let collection = json!({"type": "FeatureCollection", "features": [feature.clone()]});
    let plain = GeoJsonInput::from_value(&map_polygon()).unwrap();
    assert_eq!(GeoJsonInput::from_value(&feature).unwrap(), plain);
    assert_eq!(GeoJsonInput::from_value(&collection).unwrap(), plain);
}

#[test]
fn geojson_rejects_other_geometries_and_counts() {
    let line = json!({"type": "LineString", "coordinates": [[597210.0, 6643120.0], [597610.0, 6643420.0]]});
    assert!(geojson_err(line.clone()).contains("LineString"));
    let in_feature = json!({"type": "Feature", "geometry": line});
    assert!(geojson_err(in_feature).contains("LineString"));
    let feature = json!({"type": "Feature", "geometry": map_polygon()});
    let two = json!({"type": "FeatureCollection", "features": [feature.clone(), feature]});
    assert!(geojson_err(two).contains("holds 2 features"));
    let none = json!({"type": "FeatureCollection", "features": []});
    assert!(geojson_err(none).contains("holds 0 features"));
    assert!(GeoJsonInput::parse("{not json").is_err());
}

#[test]
fn geojson_rings_must_be_closed_long_enough_and_finite() {
    let open = json!({"type": "Polygon", "coordinates": [[[597210.0, 6643120.0],
        [597210.0, 6643420.0], [597610.0, 6643420.0], [597610.0, 6643120.0]]]});
    assert!(geojson_err(open).contains("not closed"));
    let short = json!({"type": "Polygon", "coordinates": [[[597210.0, 6643120.0],
        [597210.0, 6643420.0], [597210.0, 6643120.0]]]});
    assert!(geojson_err(short).contains("at least 4"));
    let text = json!({"type": "Polygon", "coordinates": [[[597210.0, "x"],
        [597210.0, 6643420.0], [597610.0, 6643420.0], [597210.0, "x"]]]});
    assert!(geojson_err(text).contains("ring 1: position 1"));
    let flat = json!({"type": "Polygon", "coordinates": [[[597210.0, 6643120.0],
        [597310.0, 6643120.0], [597410.0, 6643120.0], [597210.0, 6643120.0]]]});
    assert!(geojson_err(flat).contains("no area"));
    let degrees = json!({"type": "Polygon", "coordinates": [[[10.7, 59.9],
        [10.8, 59.9], [10.8, 60.0], [10.7, 59.9]]]});
    assert!(geojson_err(degrees).contains("longitude/latitude"));
}

#[test]
fn geojson_crs_must_agree_with_the_requested_reference() {
    let mut named = map_polygon();
    named["crs"] = json!({"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::25832"}});
    let input = GeoJsonInput::from_value(&named).unwrap();
    assert_eq!(
        input.spatial_reference(None).unwrap(),
        SpatialReference::Utm32
    );
    assert!(input
        .spatial_reference(Some(SpatialReference::Utm33))
        .is_err());
    named["crs"]["properties"]["name"] = json!("urn:ogc:def:crs:OGC:1.3:CRS84");
    assert!(geojson_err(named).contains("CRS84"));
}

#[test]
fn requests_need_products_a_reference_and_valid_contacts() {
    let data = || OrderData::cadastre(Cadastre::parse("0301-1-2-0-0").unwrap(), None).unwrap();
    assert_eq!(
        CreateOrderRequest::new(data(), vec![], "R").unwrap_err(),
        RequestError::NoProducts
    );
    assert_eq!(
        CreateOrderRequest::new(data(), products(&["P"]), "  ").unwrap_err(),
        RequestError::Empty("reference")
    );
    assert!(OrderData::cadastre(Cadastre::parse("0301-1-2-0-0").unwrap(), Some(" ")).is_err());
    let bad_postal = DeliveryInformation {
        postal_code: Some("155".into()),
        ..Default::default()
    };
    assert!(CreateOrderRequest::new(data(), products(&["P"]), "R")
        .unwrap()
        .with_delivery_information(bad_postal)
        .is_err());
    assert!(ProductCode::parse("WI 0301").is_err());
    assert!(ProductCode::parse("").is_err());
}
