//! Flags that describe what to price or order, shared by `kode price` and
//! `kode order create`. Single values are checked by clap's value parsers
//! (wrong input never reaches the network); combinations are checked here.

use std::path::PathBuf;

use clap::Args;
use kode::model::{
    Cadastre, DeliveryInformation, GeoJsonInput, OrderData, OrganizationNumber, ProductCode,
    ProductSelection, ShareNumber, SpatialReference,
};
use serde_json::{Map, Value};

use crate::error::{request, CliError};

#[derive(Args, Debug)]
pub struct CadastreArgs {
    /// Cadastre unit, all five parts knr-gnr-bnr-fnr-snr (e.g. 0301-207-45-0-0)
    #[arg(long, value_name = "KNR-GNR-BNR-FNR-SNR")]
    pub cadastre: Cadastre,
    /// Street address: "{street}, {postal code} {postal place}"
    #[arg(long, value_name = "ADDRESS")]
    pub address: Option<String>,
}

impl CadastreArgs {
    pub fn order_data(&self) -> Result<OrderData, CliError> {
        OrderData::cadastre(self.cadastre.clone(), self.address.as_deref())
            .map_err(request("--address"))
    }
}

#[derive(Args, Debug)]
pub struct ShareArgs {
    /// The housing cooperative's organisation number (9 digits)
    #[arg(long, value_name = "ORGNR")]
    pub organization_number: OrganizationNumber,
    /// The share (andel) number in the cooperative
    #[arg(long, value_name = "N")]
    pub share_number: ShareNumber,
}

impl ShareArgs {
    pub fn order_data(&self) -> OrderData {
        OrderData::Share {
            organization_number: self.organization_number,
            share_number: self.share_number,
        }
    }
}

#[derive(Args, Debug)]
pub struct MapArgs {
    /// GeoJSON file with the area: a Polygon, or a Feature/FeatureCollection holding one
    #[arg(long, value_name = "FILE")]
    pub geojson: PathBuf,
    /// EPSG code of the coordinates: 25833 (UTM 33N) or 25832 (UTM 32N)
    /// [default: the file's "crs", else 25833]
    #[arg(long, value_name = "EPSG")]
    pub spatial_reference: Option<SpatialReference>,
}

impl MapArgs {
    pub fn order_data(&self) -> Result<OrderData, CliError> {
        let text = std::fs::read_to_string(&self.geojson).map_err(|e| {
            CliError::invalid(
                "--geojson",
                format!("cannot read {}: {e}", self.geojson.display()),
            )
        })?;
        let input = GeoJsonInput::parse(&text).map_err(|e| {
            CliError::invalid("--geojson", format!("{}: {e}", self.geojson.display()))
        })?;
        OrderData::map(input, self.spatial_reference).map_err(request("--spatial-reference"))
    }
}

#[derive(Args, Debug)]
pub struct ProductArgs {
    /// Product code (repeat for several products)
    #[arg(long = "product", value_name = "CODE", required = true)]
    pub products: Vec<ProductCode>,
    /// Product options as a JSON object: CODE=JSON, or only JSON when there is
    /// one --product (e.g. '{"system":"UTM"}')
    #[arg(long = "product-data", value_name = "[CODE=]JSON")]
    pub product_data: Vec<String>,
}

impl ProductArgs {
    pub fn selections(&self) -> Result<Vec<ProductSelection>, CliError> {
        let mut data: Vec<Option<Map<String, Value>>> = vec![None; self.products.len()];
        for raw in &self.product_data {
            let (index, json) = self.target(raw)?;
            if data[index].is_some() {
                return Err(CliError::invalid(
                    "--product-data",
                    format!("given twice for product {}", self.products[index]),
                ));
            }
            let object = match serde_json::from_str::<Value>(json) {
                Ok(Value::Object(object)) => object,
                Ok(_) => return Err(CliError::invalid("--product-data", "must be a JSON object")),
                Err(e) => {
                    return Err(CliError::invalid(
                        "--product-data",
                        format!("not valid JSON: {e}"),
                    ))
                }
            };
            data[index] = Some(object);
        }
        Ok(self
            .products
            .iter()
            .zip(data)
            .map(|(code, data)| ProductSelection {
                code: code.clone(),
                data,
            })
            .collect())
    }

    /// Which product a `--product-data` value belongs to, and its JSON text.
    fn target<'a>(&self, raw: &'a str) -> Result<(usize, &'a str), CliError> {
        let raw = raw.trim();
        if raw.starts_with('{') {
            return match self.products.len() {
                1 => Ok((0, raw)),
                _ => Err(CliError::invalid(
                    "--product-data",
                    "with several --product values, write CODE=JSON to say which product it is for",
                )),
            };
        }
        let (code, json) = raw
            .split_once('=')
            .ok_or_else(|| CliError::invalid("--product-data", "expected CODE=JSON or JSON"))?;
        let code = code.trim();
        self.products
            .iter()
            .position(|p| p.as_str() == code)
            .map(|i| (i, json))
            .ok_or_else(|| {
                CliError::invalid(
                    "--product-data",
                    format!("{code:?} is not one of the --product codes"),
                )
            })
    }
}

#[derive(Args, Debug, Default)]
pub struct DeliveryArgs {
    /// Delivery contact: name
    #[arg(long, value_name = "NAME")]
    pub delivery_name: Option<String>,
    /// Delivery contact: company name
    #[arg(long, value_name = "COMPANY")]
    pub delivery_company: Option<String>,
    /// Delivery contact: e-mail address
    #[arg(long, value_name = "EMAIL")]
    pub delivery_email: Option<String>,
    /// Delivery contact: phone number
    #[arg(long, value_name = "PHONE")]
    pub delivery_phone: Option<String>,
    /// Delivery contact: postal address
    #[arg(long, value_name = "ADDRESS")]
    pub delivery_address: Option<String>,
    /// Delivery contact: postal code (4 digits)
    #[arg(long, value_name = "NNNN")]
    pub delivery_postal_code: Option<String>,
}

impl DeliveryArgs {
    pub fn information(&self) -> DeliveryInformation {
        DeliveryInformation {
            name: self.delivery_name.clone(),
            company_name: self.delivery_company.clone(),
            email: self.delivery_email.clone(),
            phone: self.delivery_phone.clone(),
            address: self.delivery_address.clone(),
            postal_code: self.delivery_postal_code.clone(),
            ..DeliveryInformation::default()
        }
    }
}
