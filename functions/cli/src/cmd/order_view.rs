//! An order as text: status, then per sub-order its lines and its files.

use std::collections::BTreeMap;
use std::fmt::Write;

use kode::model::{Asset, AssetId, Order, OrderLine, SubOrder};

use crate::output::{clip, money, Table};

/// Where each asset is stored, per the ledger; `None` when no store is
/// configured (the column is left out).
pub type Places = BTreeMap<AssetId, String>;

/// How a FAILED asset shows in the STORED column: parked ones are no longer
/// tried by themselves (`kode sync ORDER --retry-failed` tries them).
pub fn failed_place(parked: bool, attempts: u32, reason: &str) -> String {
    let state = if parked { "PARKED" } else { "FAILED" };
    format!("{state} after {attempts} attempt(s): {reason}")
}

pub fn render(order: &Order, places: Option<&Places>) -> String {
    let mut out = format!(
        "Order {}  status {}\n",
        order.id,
        order.status.as_deref().unwrap_or("-")
    );
    let mut facts = Vec::new();
    if let Some(d) = &order.date_ordered {
        facts.push(format!("ordered {d}"));
    }
    if let Some(d) = &order.date_status {
        facts.push(format!("status since {d}"));
    }
    if order.price_net.is_some() || order.price_vat.is_some() {
        facts.push(format!(
            "price {} net, {} incl. VAT",
            money(order.price_net),
            money(order.price_vat)
        ));
    }
    if !facts.is_empty() {
        let _ = writeln!(out, "{}", facts.join(", "));
    }
    if order.orders.is_empty() {
        out.push_str("\nNo sub-orders.\n");
    }
    for sub in &order.orders {
        out.push('\n');
        out.push_str(&sub_order(sub, places));
    }
    out
}

fn sub_order(sub: &SubOrder, places: Option<&Places>) -> String {
    let mut out = format!(
        "Sub-order {}  {}",
        sub.id,
        sub.supplier_name.as_deref().unwrap_or("(supplier unknown)")
    );
    if let Some(r) = &sub.technical_reference {
        let _ = write!(out, "  technical reference {r}");
    }
    out.push('\n');
    if sub.order_lines.is_empty() {
        out.push_str("  No order lines.\n");
    } else {
        let mut lines = Table::new(&["LINE", "STATUS", "TYPE", "PRODUCT", "NAME", "IN PACKAGE"]);
        for line in &sub.order_lines {
            lines.row(line_cells(line));
        }
        out.push_str(&lines.render("  "));
    }
    let assets: Vec<(String, &Asset)> = sub
        .assets
        .iter()
        .map(|a| ("sub-order".to_owned(), a))
        .chain(sub.order_lines.iter().flat_map(|line| {
            line.assets
                .iter()
                .map(move |a| (format!("line {}", line.id), a))
        }))
        .collect();
    if assets.is_empty() {
        out.push_str("\n  No files delivered yet.\n");
    } else {
        let mut headers = vec!["ASSET", "STATUS", "ON", "CATEGORY", "FILE"];
        if places.is_some() {
            headers.push("STORED");
        }
        let mut table = Table::new(&headers);
        for (on, asset) in assets {
            let mut cells = vec![
                asset.id.to_string(),
                asset.asset_status.to_string(),
                on,
                asset.product_category.clone().unwrap_or_else(|| "-".into()),
                asset.display_name().to_owned(),
            ];
            if let Some(places) = places {
                cells.push(places.get(&asset.id).cloned().unwrap_or_else(|| "-".into()));
            }
            table.row(cells);
        }
        out.push('\n');
        out.push_str(&table.render("  "));
    }
    out
}

fn line_cells(line: &OrderLine) -> Vec<String> {
    let text = |v: Option<&str>| v.unwrap_or("-").to_owned();
    vec![
        line.id.to_string(),
        text(line.status_code()),
        text(line.product_type()),
        text(line.product.as_deref()),
        clip(line.product_name.as_deref().unwrap_or("-"), 40),
        line.package_line_id
            .map_or_else(|| "-".to_owned(), |id| id.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_lines_and_assets_at_both_levels() {
        let order: Order = serde_json::from_value(serde_json::json!({
            "id": 2345678, "status": "PROGRESS", "priceNet": 1480.0, "priceVat": 1850,
            "orders": [{ "id": 2345679, "supplierName": "Oslo kommune",
              "assets": [{"id": "a1", "filename": "Situasjonskart.pdf", "downloadUrl": "u", "assetStatus": "OK"}],
              "orderLines": [{ "id": 13579002, "status": "FINISHED", "product": "WI03010900",
                "productName": "Godkjente bygningstegninger", "productType": "NORMAL",
                "packageLineId": 13579001,
                "assets": [{"id": "a2", "filename": "Tegninger.pdf", "downloadUrl": "u",
                  "assetStatus": "DELETED", "productCategory": "KOMMUNAL_INFORMASJON"}] }] }]
        }))
        .unwrap();
        let text = render(&order, None);
        assert!(
            text.starts_with(
                "Order 2345678  status PROGRESS\nprice 1480.00 net, 1850.00 incl. VAT\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "  13579002  FINISHED  NORMAL  WI03010900  Godkjente bygningstegninger  13579001\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "  a1     OK       sub-order      -                     Situasjonskart.pdf\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("  a2     DELETED  line 13579002  KOMMUNAL_INFORMASJON  Tegninger.pdf\n"),
            "{text}"
        );
    }

    #[test]
    fn stored_column_shows_place_deleted_or_dash() {
        let order: Order = serde_json::from_value(serde_json::json!({
            "id": 1, "status": "FINISHED",
            "orders": [{ "id": 2, "assets": [
                {"id": "a1", "filename": "Kart.pdf", "downloadUrl": "u", "assetStatus": "OK"},
                {"id": "a2", "filename": "Plan.pdf", "downloadUrl": "u", "assetStatus": "DELETED"},
                {"id": "a3", "filename": "Ny.pdf", "downloadUrl": "u", "assetStatus": "OK"}] }]
        }))
        .unwrap();
        assert!(!render(&order, None).contains("STORED"));
        let places = Places::from([
            (
                AssetId::from("a1"),
                "s3://b/orders/1/a1/Kart.pdf".to_owned(),
            ),
            (AssetId::from("a2"), "deleted".to_owned()),
        ]);
        let text = render(&order, Some(&places));
        let row = |id: &str| {
            text.lines()
                .find(|l| l.trim_start().starts_with(id))
                .unwrap_or_else(|| panic!("{id} missing:\n{text}"))
                .split_whitespace()
                .last()
                .unwrap()
                .to_owned()
        };
        assert!(text.contains("FILE      STORED\n"), "{text}");
        assert_eq!(row("a1"), "s3://b/orders/1/a1/Kart.pdf");
        assert_eq!(row("a2"), "deleted");
        assert_eq!(row("a3"), "-");
    }

    #[test]
    fn failed_and_parked_assets_show_with_their_reason() {
        let order: Order = serde_json::from_value(serde_json::json!({
            "id": 1, "status": "FINISHED",
            "orders": [{ "id": 2, "assets": [
                {"id": "a1", "filename": "Kart.pdf", "downloadUrl": "u", "assetStatus": "OK"},
                {"id": "a2", "filename": "Plan.pdf", "downloadUrl": "u", "assetStatus": "OK"}] }]
        }))
        .unwrap();
        let places = Places::from([
            (
                AssetId::from("a1"),
                failed_place(false, 2, "KODE answered 404 for u: gone"),
            ),
            (
                AssetId::from("a2"),
                failed_place(true, 10, "refused download from evil.test"),
            ),
        ]);
        let text = render(&order, Some(&places));
        assert!(
            text.contains("Kart.pdf  FAILED after 2 attempt(s): KODE answered 404 for u: gone\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "Plan.pdf  PARKED after 10 attempt(s): refused download from evil.test\n"
            ),
            "{text}"
        );
    }
}
