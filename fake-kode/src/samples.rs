//! Ready-made data: the product catalogue, a Meglerpakke order with files at
//! both levels, and hostile file names.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::spec::{AssetSpec, LineSpec, OrderSpec, SubOrderSpec};

/// A catalogue entry. Codes embed the municipality like KODE's do
/// (`WI0301...` is an Oslo product), so `WI{municipality}{suffix}`.
pub(crate) struct Product {
    pub(crate) suffix: &'static str,
    pub(crate) name: &'static str,
    pub(crate) input: (&'static str, &'static str),
    pub(crate) package: bool,
    pub(crate) net: f64,
    /// Suffixes of the products a package contains.
    pub(crate) children: &'static [&'static str],
}

const CATALOGUE: &[Product] = &[
    Product {
        suffix: "0033",
        name: "Meglerpakke",
        input: ("CADASTRE", "Matrikkel"),
        package: true,
        net: 1480.0,
        children: &["0900", "0400", "0500"],
    },
    Product {
        suffix: "0900",
        name: "Godkjente bygningstegninger",
        input: ("CADASTRE", "Matrikkel"),
        package: false,
        net: 520.0,
        children: &[],
    },
    Product {
        suffix: "0400",
        name: "Grunnkart",
        input: ("CADASTRE", "Matrikkel"),
        package: false,
        net: 240.0,
        children: &[],
    },
    Product {
        suffix: "0500",
        name: "Reguleringsplan",
        input: ("CADASTRE", "Matrikkel"),
        package: false,
        net: 400.0,
        children: &[],
    },
    Product {
        suffix: "6101",
        name: "Situasjonskart",
        input: ("MAP", "Kart"),
        package: false,
        net: 800.0,
        children: &[],
    },
    Product {
        suffix: "0150",
        name: "Borettslagsinformasjon",
        input: ("SHARE", "Andel"),
        package: false,
        net: 360.0,
        children: &[],
    },
];

/// Norwegian VAT: `priceVat`/`salesPriceVat` is the gross price.
pub(crate) fn gross(net: f64) -> f64 {
    net * 1.25
}

/// The municipality a product code belongs to (`WI99990033` -> `9999`).
pub(crate) fn municipality_of(code: &str) -> Option<String> {
    let digits = code.strip_prefix("WI")?;
    (digits.len() == 8 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits[..4].to_owned())
}

/// The catalogue entry for a product code.
pub(crate) fn find_product(code: &str) -> Option<&'static Product> {
    let municipality = municipality_of(code)?;
    let suffix = &code[2 + municipality.len()..];
    CATALOGUE.iter().find(|p| p.suffix == suffix)
}

pub(crate) fn catalog_price(municipality: &str, code: &str) -> Option<(f64, f64)> {
    let p = find_product(code).filter(|_| code.get(2..6) == Some(municipality))?;
    Some((p.net, gross(p.net)))
}

pub(crate) fn supplier_name(municipality: &str) -> String {
    match municipality {
        "9999" => "Infoland kommune".into(),
        "0301" => "Oslo kommune".into(),
        m => format!("Kommune {m}"),
    }
}

/// Products JSON array for a municipality (Meglerpakke PACKAGE with children, a map product, a share product).
pub fn products(municipality: &str) -> Value {
    let code = |suffix: &str| format!("WI{municipality}{suffix}");
    let name_of = |suffix: &str| {
        CATALOGUE
            .iter()
            .find(|p| p.suffix == suffix)
            .map_or("", |p| p.name)
    };
    let list: Vec<Value> = CATALOGUE
        .iter()
        .map(|p| {
            let children: Vec<Value> = p
                .children
                .iter()
                .map(|c| json!({ "code": code(c), "name": name_of(c) }))
                .collect();
            let (type_code, type_name) = if p.package {
                ("PACKAGE", "Pakke")
            } else {
                ("NORMAL", "Enkeltprodukt")
            };
            json!({
                "code": code(p.suffix),
                "name": p.name,
                "description": if p.package { "Pakken inneholder:" } else { p.name },
                "delivery": { "code": "DIGITAL", "name": "Elektronisk" },
                "inputType": { "code": p.input.0, "name": p.input.1 },
                "price": { "salesPriceNet": p.net, "salesPriceVat": gross(p.net) },
                "status": { "code": "ACTIVE", "name": "Aktivt" },
                "type": { "code": type_code, "name": type_name },
                "children": children,
            })
        })
        .collect();
    Value::Array(list)
}

/// Meglerpakke order in municipality 9999 "Infoland": sub-order with 1-2
/// assets at sub-order level, a PACKAGE line + 2-3 child lines with assets,
/// Norwegian file names (æøå), PDFs with real-looking small content.
pub fn meglerpakke_order(id: u64) -> OrderSpec {
    let asset = |n: u64, name: &str, filename: &str, category: &str, title: &str| AssetSpec {
        category: category.into(),
        name: name.into(),
        ..AssetSpec::ok(&asset_id(id, n), filename, pdf(title))
    };
    let line = |n: u64, suffix: &str, assets: Vec<AssetSpec>| {
        let product = find_product(&format!("WI9999{suffix}"));
        LineSpec {
            id: id * 1000 + n,
            product: format!("WI9999{suffix}"),
            product_name: product.map_or("", |p| p.name).into(),
            product_type: if product.is_some_and(|p| p.package) {
                "PACKAGE"
            } else {
                "NORMAL"
            }
            .into(),
            package_line_id: (n > 1).then_some(id * 1000 + 1),
            assets,
        }
    };
    OrderSpec {
        id,
        status: "NEW".into(),
        reference: format!("OPPDRAG-2024-{id}"),
        technical_reference: Some(format!("demo-{id}")),
        sub_orders: vec![SubOrderSpec {
            id: id + 1,
            supplier_name: supplier_name("9999"),
            assets: vec![
                asset(
                    1,
                    "eiendomsinfo_9999_12_34.pdf",
                    "Eiendomsinformasjon-Storgata-12-Infoland.pdf",
                    "KOMMUNAL_INFORMASJON",
                    "Eiendomsinformasjon Storgata 12",
                ),
                asset(
                    2,
                    "avgifter_2024.pdf",
                    "Kommunale-avgifter-Åsveien-3.pdf",
                    "KOMMUNAL_INFORMASJON",
                    "Kommunale avgifter 2024",
                ),
            ],
            lines: vec![
                line(1, "0033", Vec::new()),
                line(
                    2,
                    "0900",
                    vec![asset(
                        3,
                        "tegninger_gnr12_bnr34.pdf",
                        "Godkjente-bygningstegninger-Ærfuglveien-5.pdf",
                        "FERDIGATTEST_OG_MIDLERTIDIG_BRUKSTILLATELSE",
                        "Godkjente bygningstegninger",
                    )],
                ),
                line(
                    3,
                    "0400",
                    vec![asset(
                        4,
                        "grunnkart_12_34.pdf",
                        "Grunnkart-Øvre-Sætervei-7.pdf",
                        "PLAN_KART_REGULERING",
                        "Grunnkart gnr 12 bnr 34",
                    )],
                ),
                line(
                    4,
                    "0500",
                    vec![asset(
                        5,
                        "plan_2019_07.pdf",
                        "Reguleringsplan-Søndre-Ås-2019.pdf",
                        "PLAN_KART_REGULERING",
                        "Reguleringsplan 2019-07",
                    )],
                ),
            ],
        }],
    }
}

/// File names for hostile-name tests: "../../etc/passwd", names with control
/// chars and U+202E, a 300-byte name, "Reguleringsplan_Bærum_Østre_Ålgård.pdf", ".hidden", "", "a/b\\c.pdf".
pub fn hostile_file_names() -> Vec<String> {
    vec![
        "../../etc/passwd".into(),
        "Planutsnitt\u{0}\r\n\u{1b}[31m.pdf".into(),
        "faktura\u{202E}fdp.exe".into(),
        format!("{}.pdf", "x".repeat(296)),
        "Reguleringsplan_Bærum_Østre_Ålgård.pdf".into(),
        ".hidden".into(),
        String::new(),
        "a/b\\c.pdf".into(),
    ]
}

/// A 32-hex asset id, stable for (order, n) and distinct across orders.
fn asset_id(order_id: u64, n: u64) -> String {
    hex::encode(&Sha256::digest(format!("{order_id}-{n}"))[..16])
}

/// A small well-formed one-page PDF showing `title` (ASCII).
pub(crate) fn pdf(title: &str) -> Vec<u8> {
    let text = format!("BT /F1 18 Tf 72 770 Td ({title}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_owned(),
        format!("<< /Length {} >>\nstream\n{text}\nendstream", text.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    let mut out = String::from("%PDF-1.4\n");
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.push_str(&format!("{} 0 obj\n{body}\nendobj\n", i + 1));
    }
    let xref = out.len();
    out.push_str(&format!(
        "xref\n0 {}\n0000000000 65535 f \n",
        objects.len() + 1
    ));
    for o in offsets {
        out.push_str(&format!("{o:010} 00000 n \n"));
    }
    out.push_str(&format!(
        "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    ));
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_order_has_files_at_both_levels_and_unique_ids() {
        let order = meglerpakke_order(100);
        let ids: std::collections::HashSet<_> = order.assets().map(|a| a.id.clone()).collect();
        assert_eq!(ids.len(), 5);
        let sub = &order.sub_orders[0];
        assert!(!sub.assets.is_empty());
        assert_eq!(sub.lines[0].product_type, "PACKAGE");
        assert!(sub.lines[1..]
            .iter()
            .all(|l| l.package_line_id == Some(sub.lines[0].id)));
        let other: std::collections::HashSet<_> = meglerpakke_order(101)
            .assets()
            .map(|a| a.id.clone())
            .collect();
        assert!(ids.is_disjoint(&other));
    }

    #[test]
    fn products_embed_the_municipality_and_price_with_vat() {
        let list = products("0301");
        let package = &list[0];
        assert_eq!(package["code"], "WI03010033");
        assert_eq!(package["type"]["code"], "PACKAGE");
        assert_eq!(package["children"].as_array().map(Vec::len), Some(3));
        assert_eq!(package["price"]["salesPriceVat"], 1850.0);
        assert_eq!(catalog_price("0301", "WI03010033"), Some((1480.0, 1850.0)));
        assert_eq!(catalog_price("0301", "WI99990033"), None);
    }

    #[test]
    fn sample_pdf_is_well_formed() {
        let bytes = pdf("Grunnkart");
        assert!(bytes.starts_with(b"%PDF-1.4"));
        assert!(bytes.ends_with(b"%%EOF\n"));
    }
}
