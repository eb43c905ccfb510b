//! `kode products`: what can be ordered in a municipality.

use clap::Args;
use kode::model::{MunicipalityNumber, Product};

use crate::error::CliError;
use crate::output::{self, clip, money, Table};
use crate::settings::{GlobalArgs, Settings};

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  kode products --municipality 0301\n  kode products --municipality 9999 --json > products.json"
)]
pub struct ProductsArgs {
    /// Municipality number, four digits with its leading zero (0301 = Oslo)
    #[arg(long, value_name = "NNNN", value_parser = MunicipalityNumber::parse)]
    municipality: MunicipalityNumber,
    /// Print KODE's response as it came
    #[arg(long)]
    json: bool,
}

pub async fn run(args: ProductsArgs, global: &GlobalArgs) -> Result<(), CliError> {
    let settings = Settings::load(global)?;
    let client = settings.client().await?;
    if args.json {
        let path = format!("/kode/v1/products?municipality={}", args.municipality);
        let raw = client.get_json(&path, settings.deadline()).await?;
        output::print_json(&raw)?;
    } else {
        let products = client
            .products(&args.municipality, settings.deadline())
            .await?;
        output::print(&table(&products))?;
    }
    Ok(())
}

fn table(products: &[Product]) -> String {
    if products.is_empty() {
        return "No products.\n".to_owned();
    }
    let code =
        |c: &Option<kode::model::CodeName>| c.as_ref().map_or("-", |c| c.code.as_str()).to_owned();
    let mut table = Table::new(&[
        "CODE",
        "NAME",
        "TYPE",
        "DELIVERY",
        "PRICE INCL. VAT",
        "STATUS",
        "CHILDREN",
    ]);
    for p in products {
        table.row(vec![
            p.code.clone(),
            clip(&p.name, 40),
            code(&p.product_type),
            code(&p.delivery),
            money(p.price.as_ref().and_then(|p| p.sales_price_vat)),
            code(&p.status),
            p.children.len().to_string(),
        ]);
    }
    table.render("")
}
