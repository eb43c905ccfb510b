//! The order collection as returned by `GET /kode/v1/orders/{id}` and by the
//! create-order calls, in both published editions.

use serde::{Deserialize, Deserializer, Serialize};

use super::open_enum::open_enum;
use super::{AssetId, CodeName, KodeDate, OrderId, OrderLineId, SubOrderId};

open_enum! {
    /// `assetStatus` of a delivered file.
    pub enum AssetStatus {
        /// Available; may be downloaded.
        Ok => "OK",
        /// Withdrawn; the client must remove its copy.
        Deleted => "DELETED",
    }
}

/// A delivered file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Asset {
    pub id: AssetId,
    /// The file's exact name as uploaded to Ambita.
    #[serde(default)]
    pub name: Option<String>,
    /// A descriptive name Ambita generates from the product name.
    #[serde(default)]
    pub filename: Option<String>,
    /// Infoland Flex calls it `url`.
    #[serde(alias = "url")]
    pub download_url: String,
    /// Infoland Flex calls it `status`. Missing means available.
    #[serde(alias = "status", default = "asset_ok")]
    pub asset_status: AssetStatus,
    /// Open vocabulary; kept as sent. Infoland Flex calls it `category`.
    #[serde(alias = "category", default)]
    pub product_category: Option<String>,
}

fn asset_ok() -> AssetStatus {
    AssetStatus::Ok
}

impl Asset {
    /// The name used for storage: `filename`, else `name`, else the id.
    pub fn display_name(&self) -> &str {
        self.filename
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .or(self.name.as_deref().filter(|s| !s.trim().is_empty()))
            .unwrap_or(self.id.as_str())
    }
}

/// The order collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub id: OrderId,
    /// Open vocabulary (`NEW`, `PROGRESS`, ...): decisions are taken from the
    /// push status and asset statuses, never from this.
    #[serde(default, deserialize_with = "code_or_none")]
    pub status: Option<String>,
    #[serde(default)]
    pub price_net: Option<f64>,
    /// Gross price, VAT included.
    #[serde(default)]
    pub price_vat: Option<f64>,
    #[serde(default)]
    pub date_ordered: Option<KodeDate>,
    #[serde(default)]
    pub date_status: Option<KodeDate>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub orders: Vec<SubOrder>,
}

/// One sub-order per delivering municipality.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubOrder {
    pub id: SubOrderId,
    #[serde(default)]
    pub supplier_name: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub technical_reference: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub assets: Vec<Asset>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub order_lines: Vec<OrderLine>,
}

/// An order line; older editions send `status` and `productType` as objects
/// and have no `assets`, `packageLineId` or `dateStatus`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderLine {
    pub id: OrderLineId,
    #[serde(default)]
    pub status: Option<CodeName>,
    #[serde(default)]
    pub product: Option<String>,
    #[serde(default)]
    pub product_name: Option<String>,
    #[serde(default)]
    pub product_type: Option<CodeName>,
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub delivery: Option<String>,
    #[serde(default)]
    pub price_net: Option<f64>,
    #[serde(default)]
    pub price_vat: Option<f64>,
    #[serde(default)]
    pub date_status: Option<KodeDate>,
    #[serde(default)]
    pub package_line_id: Option<OrderLineId>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub assets: Vec<Asset>,
}

impl OrderLine {
    /// `NORMAL` or `PACKAGE`. The older object form has a numeric `code`
    /// (`"0"`/`"1"`) and the meaningful word in `name`.
    pub fn product_type(&self) -> Option<&str> {
        let pt = self.product_type.as_ref()?;
        if pt.code.bytes().all(|b| b.is_ascii_digit()) {
            pt.name.as_deref().or(Some(pt.code.as_str()))
        } else {
            Some(pt.code.as_str())
        }
    }

    pub fn status_code(&self) -> Option<&str> {
        self.status.as_ref().map(|s| s.code.as_str())
    }
}

/// Where an asset sits in the order: on a sub-order, or on one of its lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AssetLocation {
    pub sub_order: SubOrderId,
    pub order_line: Option<OrderLineId>,
}

impl Order {
    /// Every asset of the order, at sub-order level and at order-line level,
    /// in document order.
    pub fn assets(&self) -> impl Iterator<Item = (AssetLocation, &Asset)> {
        self.orders.iter().flat_map(|sub| {
            let at_sub = sub.assets.iter().map(move |a| {
                (
                    AssetLocation {
                        sub_order: sub.id,
                        order_line: None,
                    },
                    a,
                )
            });
            let at_lines = sub.order_lines.iter().flat_map(move |line| {
                line.assets.iter().map(move |a| {
                    (
                        AssetLocation {
                            sub_order: sub.id,
                            order_line: Some(line.id),
                        },
                        a,
                    )
                })
            });
            at_sub.chain(at_lines)
        })
    }
}

fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

fn code_or_none<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<CodeName>::deserialize(deserializer)?.map(|c| c.code))
}
