//! `kode price cadastre|share|map`: what an order would cost.

use clap::{Args, Subcommand};
use kode::model::PriceRequest;
use serde_json::Value;

use super::input::{CadastreArgs, MapArgs, ProductArgs, ShareArgs};
use crate::error::{request, CliError};
use crate::output::{self, money, Table};
use crate::settings::{GlobalArgs, Settings};

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  kode price cadastre --cadastre 0301-207-45-0-0 --product WI03010033\n  kode price map --geojson area.geojson --product WI03016101"
)]
pub struct PriceArgs {
    #[command(subcommand)]
    kind: PriceKind,
}

#[derive(Subcommand, Debug)]
enum PriceKind {
    /// Price by cadastre unit (matrikkel)
    #[command(
        after_help = "Example:\n  kode price cadastre --cadastre 0301-207-45-0-0 --product WI03010033"
    )]
    Cadastre {
        #[command(flatten)]
        data: CadastreArgs,
        #[command(flatten)]
        common: PriceCommon,
    },
    /// Price by housing-cooperative share
    #[command(
        after_help = "Example:\n  kode price share --organization-number 948677202 --share-number 57 --product WI03010150"
    )]
    Share {
        #[command(flatten)]
        data: ShareArgs,
        #[command(flatten)]
        common: PriceCommon,
    },
    /// Price by area (GeoJSON polygon); map products are priced by area
    #[command(
        after_help = "Example:\n  kode price map --geojson area.geojson --product WI03016101 --product-data '{\"system\":\"UTM\"}'"
    )]
    Map {
        #[command(flatten)]
        data: MapArgs,
        #[command(flatten)]
        common: PriceCommon,
    },
}

#[derive(Args, Debug)]
struct PriceCommon {
    #[command(flatten)]
    products: ProductArgs,
    /// Print KODE's response as it came
    #[arg(long)]
    json: bool,
    /// Print the request body and send nothing (no token request either)
    #[arg(long)]
    dry_run: bool,
}

pub async fn run(args: PriceArgs, global: &GlobalArgs) -> Result<(), CliError> {
    let (order_data, common) = match &args.kind {
        PriceKind::Cadastre { data, common } => (data.order_data()?, common),
        PriceKind::Share { data, common } => (data.order_data(), common),
        PriceKind::Map { data, common } => (data.order_data()?, common),
    };
    let body = PriceRequest::new(order_data, common.products.selections()?)
        .map_err(request("--product"))?;
    if common.dry_run {
        eprintln!("dry run: POST /kode/v1/prices/{} not sent", body.kind());
        output::print_json(&body)?;
        return Ok(());
    }
    let settings = Settings::load(global)?;
    let client = settings.client().await?;
    let response = client
        .price(body.kind(), &body, settings.deadline())
        .await?;
    if common.json {
        output::print_json(&response)?;
    } else {
        output::print(&render(&response))?;
    }
    Ok(())
}

/// The response shape is undocumented (kode-api.md §4): show per-product
/// `priceNet`/`priceVat` and totals when present, else the JSON itself.
fn render(response: &Value) -> String {
    let number = |v: &Value, key: &str| v.get(key).and_then(Value::as_f64);
    let Some(products) = response.get("products").and_then(Value::as_array) else {
        return serde_json::to_string_pretty(response).unwrap_or_default() + "\n";
    };
    let mut table = Table::new(&["CODE", "PRICE NET", "PRICE INCL. VAT"]);
    for p in products {
        table.row(vec![
            p.get("code")
                .and_then(Value::as_str)
                .unwrap_or("-")
                .to_owned(),
            money(number(p, "priceNet")),
            money(number(p, "priceVat")),
        ]);
    }
    table.row(vec![
        "TOTAL".to_owned(),
        money(number(response, "priceNet")),
        money(number(response, "priceVat")),
    ]);
    table.render("")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn render_lists_products_and_total() {
        let text = super::render(
            &json!({"products": [{"code": "WI1", "priceNet": 100, "priceVat": 125.0}],
            "priceNet": 100, "priceVat": 125}),
        );
        assert_eq!(
            text,
            "CODE   PRICE NET  PRICE INCL. VAT\nWI1    100.00     125.00\nTOTAL  100.00     125.00\n"
        );
    }

    #[test]
    fn render_shows_unknown_shapes_as_json() {
        assert_eq!(
            super::render(&json!({"total": 5})),
            "{\n  \"total\": 5\n}\n"
        );
    }
}
