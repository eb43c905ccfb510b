//! `GET /kode/v1/products` and price answers.

use serde::{Deserialize, Deserializer, Serialize};

use super::CodeName;

/// One orderable product of a municipality. Every `code` is an open
/// vocabulary (`DIGITAL`, `CADASTRE`, `ACTIVE`, `PACKAGE`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    pub code: String,
    /// Norwegian display text.
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub delivery: Option<CodeName>,
    #[serde(default)]
    pub input_type: Option<CodeName>,
    #[serde(default)]
    pub price: Option<ProductPrice>,
    #[serde(default)]
    pub status: Option<CodeName>,
    #[serde(rename = "type", default)]
    pub product_type: Option<CodeName>,
    /// The products a package contains.
    #[serde(default, deserialize_with = "null_as_default")]
    pub children: Vec<ProductChild>,
}

impl Product {
    pub fn is_package(&self) -> bool {
        self.product_type
            .as_ref()
            .is_some_and(|t| t.code.eq_ignore_ascii_case("PACKAGE"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductPrice {
    #[serde(default)]
    pub sales_price_net: Option<f64>,
    /// The gross price, VAT included (not the VAT amount).
    #[serde(default)]
    pub sales_price_vat: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductChild {
    pub code: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
}

/// The answer of `POST /kode/v1/prices/{kind}`. Undocumented: read
/// leniently from the raw JSON (the client returns that raw JSON too).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PriceQuote {
    #[serde(default)]
    pub price_net: Option<f64>,
    /// Gross, VAT included.
    #[serde(default)]
    pub price_vat: Option<f64>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub products: Vec<ProductQuote>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductQuote {
    pub code: String,
    #[serde(default)]
    pub price_net: Option<f64>,
    #[serde(default)]
    pub price_vat: Option<f64>,
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
