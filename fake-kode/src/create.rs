//! Validation of create-order and price requests, and the order a valid
//! create request produces (a line per product, children under packages).

use serde_json::Value;

use crate::samples::{find_product, municipality_of, supplier_name};
use crate::spec::{LineSpec, OrderSpec, SubOrderSpec};

/// The path segment of `/kode/v1/{orders,prices}/{kind}`.
pub(crate) fn known_kind(kind: &str) -> bool {
    matches!(kind, "cadastre" | "share" | "map")
}

/// A checked create request.
pub(crate) struct CreateRequest {
    pub(crate) reference: String,
    pub(crate) technical_reference: Option<String>,
    pub(crate) products: Vec<String>,
}

/// Checks `orderData` for the kind, `products` and `reference`; the error is
/// the message for a 400.
pub(crate) fn validate_create(kind: &str, body: &Value) -> Result<CreateRequest, String> {
    let order_data = body
        .get("orderData")
        .filter(|v| v.is_object())
        .ok_or("orderData is required and must be an object")?;
    validate_order_data(kind, order_data)?;
    let products = validate_products(body)?;
    let reference = body
        .get("reference")
        .and_then(Value::as_str)
        .filter(|r| !r.trim().is_empty())
        .ok_or("reference is required")?;
    let technical_reference = match body.get("technicalReference") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("technicalReference must be a string".into()),
    };
    Ok(CreateRequest {
        reference: reference.to_owned(),
        technical_reference,
        products,
    })
}

/// `products`: a non-empty array of `{code, data?}` with catalogue codes.
pub(crate) fn validate_products(body: &Value) -> Result<Vec<String>, String> {
    let list = body
        .get("products")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or("products must be a non-empty array")?;
    list.iter()
        .map(|p| {
            let code = p
                .get("code")
                .and_then(Value::as_str)
                .ok_or("every product needs a code")?;
            if p.get("data")
                .is_some_and(|d| !d.is_object() && !d.is_null())
            {
                return Err(format!("data of product {code} must be an object"));
            }
            find_product(code)
                .map(|_| code.to_owned())
                .ok_or_else(|| format!("Unknown product {code}"))
        })
        .collect()
}

fn validate_order_data(kind: &str, data: &Value) -> Result<(), String> {
    match kind {
        "cadastre" => {
            let cadastre = data
                .get("cadastre")
                .and_then(Value::as_str)
                .ok_or("orderData.cadastre is required")?;
            let parts: Vec<&str> = cadastre.split('-').collect();
            let numeric = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
            if parts.len() != 5 || !parts.iter().all(numeric) {
                return Err(format!(
                    "orderData.cadastre must be knr-gnr-bnr-fnr-snr, got {cadastre:?}"
                ));
            }
            Ok(())
        }
        "share" => {
            for field in ["organizationNumber", "shareNumber"] {
                if !data.get(field).is_some_and(Value::is_number) {
                    return Err(format!("orderData.{field} must be a number"));
                }
            }
            Ok(())
        }
        "map" => {
            let polygon = data
                .get("geometry")
                .filter(|g| g.get("type").and_then(Value::as_str) == Some("Polygon"))
                .and_then(|g| g.get("coordinates"))
                .is_some_and(Value::is_array);
            if !polygon {
                return Err("orderData.geometry must be a GeoJSON Polygon".into());
            }
            match data.get("spatialReference").and_then(Value::as_str) {
                Some("25833" | "25832") => Ok(()),
                _ => Err("orderData.spatialReference must be \"25833\" or \"25832\"".into()),
            }
        }
        other => Err(format!("Unknown order type {other}")),
    }
}

/// The order a valid request creates; `ids` hands out fresh ids.
pub(crate) fn build_order(request: CreateRequest, mut ids: impl FnMut() -> u64) -> OrderSpec {
    let id = ids();
    let municipality = request
        .products
        .first()
        .and_then(|c| municipality_of(c))
        .unwrap_or_default();
    let mut lines = Vec::new();
    for code in &request.products {
        let Some(product) = find_product(code) else {
            continue;
        };
        let line_id = ids();
        lines.push(LineSpec {
            id: line_id,
            product: code.clone(),
            product_name: product.name.into(),
            product_type: if product.package { "PACKAGE" } else { "NORMAL" }.into(),
            package_line_id: None,
            assets: Vec::new(),
        });
        let prefix = &code[..code.len() - product.suffix.len()];
        for child in product.children {
            let child_code = format!("{prefix}{child}");
            lines.push(LineSpec {
                id: ids(),
                product_name: find_product(&child_code).map_or("", |p| p.name).into(),
                product: child_code,
                product_type: "NORMAL".into(),
                package_line_id: Some(line_id),
                assets: Vec::new(),
            });
        }
    }
    OrderSpec {
        id,
        status: "NEW".into(),
        reference: request.reference,
        technical_reference: request.technical_reference,
        sub_orders: vec![SubOrderSpec {
            id: ids(),
            supplier_name: supplier_name(&municipality),
            assets: Vec::new(),
            lines,
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cadastre_needs_five_numeric_parts() {
        let body = |c: &str| json!({ "orderData": { "cadastre": c }, "products": [{ "code": "WI03010033" }], "reference": "R" });
        assert!(validate_create("cadastre", &body("0301-207-45-0-0")).is_ok());
        assert!(validate_create("cadastre", &body("0301-207-45")).is_err());
    }

    #[test]
    fn package_expands_into_child_lines() {
        let request = CreateRequest {
            reference: "R".into(),
            technical_reference: None,
            products: vec!["WI03010033".into()],
        };
        let mut next = 10;
        let order = build_order(request, || {
            next += 1;
            next
        });
        let lines = &order.sub_orders[0].lines;
        assert_eq!(lines.len(), 4);
        assert_eq!(order.sub_orders[0].supplier_name, "Oslo kommune");
        assert!(lines[1..]
            .iter()
            .all(|l| l.package_line_id == Some(lines[0].id)));
        assert_eq!(lines[2].product, "WI03010400");
    }

    #[test]
    fn unknown_products_and_missing_reference_are_rejected() {
        let body = json!({ "orderData": { "organizationNumber": 948677202, "shareNumber": 57 }, "products": [{ "code": "NOPE" }], "reference": "R" });
        assert_eq!(
            validate_create("share", &body).err().as_deref(),
            Some("Unknown product NOPE")
        );
        let body = json!({ "orderData": { "organizationNumber": 948677202, "shareNumber": 57 }, "products": [{ "code": "WI03010150" }] });
        assert!(validate_create("share", &body).is_err());
    }
}
