//! Orders rendered as KODE's JSON, in either published edition
//! (docs/kode-api.md sections 5.2 and 5.3).

use serde_json::{json, Value};

use crate::samples::{catalog_price, municipality_of};
use crate::spec::{AssetSpec, Edition, LineSpec, OrderSpec};

/// Fixed, plausible timestamps: tests compare bodies, not clocks.
const ORDERED: (&str, &str) = ("14.03.2024 09:12:40", "2024-03-14T09:12:40+0100");
const STATUS: (&str, &str) = ("15.03.2024 11:02:17", "2024-03-15T11:02:17+0100");
const LINE_DATE: &str = "15.03.2024";

/// The order collection; `download_url` maps an asset id to its URL.
pub(crate) fn order(
    order: &OrderSpec,
    edition: Edition,
    download_url: &dyn Fn(&str) -> String,
) -> Value {
    let date = |pair: (&'static str, &'static str)| match edition {
        Edition::Current => pair.0,
        Edition::Old => pair.1,
    };
    let (net, gross) = order
        .sub_orders
        .iter()
        .flat_map(|s| &s.lines)
        .map(line_price)
        .fold((0.0, 0.0), |(n, g), (ln, lg)| (n + ln, g + lg));
    let sub_orders: Vec<Value> = order
        .sub_orders
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "supplierName": s.supplier_name,
                "user": "Acme API-bruker",
                "technicalReference": order.technical_reference,
                "assets": assets(&s.assets, download_url),
                "orderLines": s.lines.iter().map(|l| line(l, edition, download_url)).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "id": order.id,
        "status": order.status,
        "priceNet": net,
        "priceVat": gross,
        "dateOrdered": date(ORDERED),
        "dateStatus": date(STATUS),
        "orders": sub_orders,
    })
}

fn line(line: &LineSpec, edition: Edition, download_url: &dyn Fn(&str) -> String) -> Value {
    // Lines with files delivered are done; the rest still wait.
    let status = if line.assets.is_empty() {
        "NEW"
    } else {
        "FINISHED"
    };
    let is_package = line.product_type == "PACKAGE";
    let (net, gross) = line_price(line);
    let mut value = json!({
        "id": line.id,
        "product": line.product,
        "productName": line.product_name,
        "mediaType": if is_package { "Ukjent" } else { "Datafil" },
        "delivery": "Elektronisk",
        "priceNet": net,
        "priceVat": gross,
    });
    let fields = match edition {
        Edition::Current => json!({
            "status": status,
            "productType": line.product_type,
            "dateStatus": LINE_DATE,
            "packageLineId": line.package_line_id,
            "assets": assets(&line.assets, download_url),
        }),
        Edition::Old => json!({
            "status": { "code": status, "name": status_name(status) },
            "productType": { "code": if is_package { "1" } else { "0" }, "name": line.product_type },
        }),
    };
    if let (Value::Object(target), Value::Object(extra)) = (&mut value, fields) {
        target.extend(extra);
    }
    value
}

fn status_name(code: &str) -> &'static str {
    match code {
        "NEW" => "New order. Has not been processed yet.",
        _ => "Order line is finished.",
    }
}

fn assets(assets: &[AssetSpec], download_url: &dyn Fn(&str) -> String) -> Vec<Value> {
    assets
        .iter()
        .map(|a| {
            json!({
                "id": a.id,
                "name": a.name,
                "filename": a.filename,
                "downloadUrl": download_url(&a.id),
                "assetStatus": a.status,
                "productCategory": a.category,
            })
        })
        .collect()
}

/// The package line carries the price; lines inside a package show 0.
fn line_price(line: &LineSpec) -> (f64, f64) {
    if line.package_line_id.is_some() {
        return (0.0, 0.0);
    }
    municipality_of(&line.product)
        .and_then(|m| catalog_price(&m, &line.product))
        .unwrap_or((0.0, 0.0))
}
