//! Bodies we send: `POST /kode/v1/orders/{kind}` and `POST /kode/v1/prices/{kind}`
//! (kode-api.md §4 and §5.1). Every value is validated when it is built, so a
//! request that exists is one KODE can be sent; bad input is reported with the
//! reason before anything goes over the wire.

mod cadastre;
mod geojson;
mod share;

use serde::Serialize;
use serde_json::{Map, Value};

pub use cadastre::Cadastre;
pub use geojson::{GeoJsonInput, Polygon, SpatialReference};
pub use share::{OrganizationNumber, ShareNumber};

use super::OrderKind;

/// Why a request could not be built. Never retryable: the input must change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("cadastre {input:?}: {reason} (expected all five parts knr-gnr-bnr-fnr-snr, like 0301-207-45-0-0)")]
    Cadastre { input: String, reason: String },
    #[error("organisation number {input:?}: {reason}")]
    OrganizationNumber { input: String, reason: String },
    #[error("share number {input:?}: {reason}")]
    ShareNumber { input: String, reason: String },
    #[error("spatial reference {0:?} is not supported: use 25833 (ETRS89 / UTM 33N) or 25832 (ETRS89 / UTM 32N)")]
    SpatialReference(String),
    #[error("GeoJSON: {0}")]
    GeoJson(String),
    #[error("product code {input:?}: {reason}")]
    ProductCode { input: String, reason: String },
    #[error("at least one product is required")]
    NoProducts,
    #[error("{0} must not be empty")]
    Empty(&'static str),
    #[error("postal code {0:?} must be four digits, like 0155")]
    PostalCode(String),
    #[error("e-mail address {0:?} has no '@'")]
    Email(String),
}

impl RequestError {
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// A product code such as `WI03010033`: letters, digits, `-` and `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ProductCode(String);

impl ProductCode {
    pub fn parse(input: &str) -> Result<Self, RequestError> {
        let code = input.trim();
        let err = |reason: &str| RequestError::ProductCode {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        if code.is_empty() {
            return Err(err("is empty"));
        }
        if code.len() > 64 {
            return Err(err("is longer than 64 characters"));
        }
        if !code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(err("may only hold letters, digits, '-' and '_'"));
        }
        Ok(Self(code.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for ProductCode {
    type Err = RequestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl std::fmt::Display for ProductCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One entry of `products`: a code and its product-specific options
/// (e.g. `{"system": "UTM"}` for a map product).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProductSelection {
    pub code: ProductCode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Map<String, Value>>,
}

impl ProductSelection {
    pub fn new(code: ProductCode) -> Self {
        Self { code, data: None }
    }

    pub fn with_data(code: ProductCode, data: Map<String, Value>) -> Self {
        Self {
            code,
            data: Some(data),
        }
    }
}

/// `orderData`: its shape depends on the endpoint, and KODE tells the shapes
/// apart by path, not by a tag, so none is sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged, rename_all_fields = "camelCase")]
pub enum OrderData {
    Cadastre {
        /// `"{street address}, {postal code} {postal place}"`.
        #[serde(skip_serializing_if = "Option::is_none")]
        address: Option<String>,
        cadastre: Cadastre,
    },
    Share {
        organization_number: OrganizationNumber,
        share_number: ShareNumber,
    },
    Map {
        geometry: Polygon,
        spatial_reference: SpatialReference,
    },
}

impl OrderData {
    /// Cadastre order data; an address, when given, must not be blank.
    pub fn cadastre(cadastre: Cadastre, address: Option<&str>) -> Result<Self, RequestError> {
        let address = match address.map(str::trim) {
            Some("") => return Err(RequestError::Empty("address")),
            other => other.map(str::to_owned),
        };
        Ok(OrderData::Cadastre { address, cadastre })
    }

    /// Map order data from a GeoJSON file; `requested` (e.g. a flag) must agree
    /// with the CRS the file names, and 25833 is used when neither says.
    pub fn map(
        input: GeoJsonInput,
        requested: Option<SpatialReference>,
    ) -> Result<Self, RequestError> {
        let spatial_reference = input.spatial_reference(requested)?;
        Ok(OrderData::Map {
            geometry: input.polygon,
            spatial_reference,
        })
    }

    /// The endpoint (`/orders/{kind}`, `/prices/{kind}`) this data belongs to.
    pub fn kind(&self) -> OrderKind {
        match self {
            OrderData::Cadastre { .. } => OrderKind::Cadastre,
            OrderData::Share { .. } => OrderKind::Share,
            OrderData::Map { .. } => OrderKind::Map,
        }
    }
}

/// Delivery contact; every field optional (kode-api.md §5.1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryInformation {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address2: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address3: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
}

impl DeliveryInformation {
    fn is_empty(&self) -> bool {
        *self == DeliveryInformation::default()
    }

    fn validate(&self) -> Result<(), RequestError> {
        if let Some(code) = &self.postal_code {
            if code.len() != 4 || !code.bytes().all(|b| b.is_ascii_digit()) {
                return Err(RequestError::PostalCode(code.clone()));
            }
        }
        if let Some(email) = &self.email {
            if !email.contains('@') {
                return Err(RequestError::Email(email.clone()));
            }
        }
        Ok(())
    }
}

/// The body of `POST /kode/v1/orders/{kind}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateOrderRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery_information: Option<DeliveryInformation>,
    order_data: OrderData,
    products: Vec<ProductSelection>,
    reference: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    technical_reference: Option<String>,
}

impl CreateOrderRequest {
    /// `reference` groups orders (typically the assignment key) and is the
    /// billing reference, so it is required and must not be blank.
    pub fn new(
        order_data: OrderData,
        products: Vec<ProductSelection>,
        reference: &str,
    ) -> Result<Self, RequestError> {
        Ok(Self {
            delivery_information: None,
            order_data,
            products: non_empty_products(products)?,
            reference: non_blank(reference, "reference")?,
            technical_reference: None,
        })
    }

    /// Our own unique id for the order, echoed by KODE in pushes.
    pub fn with_technical_reference(mut self, reference: &str) -> Result<Self, RequestError> {
        self.technical_reference = Some(non_blank(reference, "technical reference")?);
        Ok(self)
    }

    /// An all-empty contact is left out of the body rather than sent as `{}`.
    pub fn with_delivery_information(
        mut self,
        delivery: DeliveryInformation,
    ) -> Result<Self, RequestError> {
        delivery.validate()?;
        self.delivery_information = (!delivery.is_empty()).then_some(delivery);
        Ok(self)
    }

    pub fn kind(&self) -> OrderKind {
        self.order_data.kind()
    }

    pub fn reference(&self) -> &str {
        &self.reference
    }

    pub fn technical_reference(&self) -> Option<&str> {
        self.technical_reference.as_deref()
    }
}

/// The body of `POST /kode/v1/prices/{kind}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PriceRequest {
    order_data: OrderData,
    products: Vec<ProductSelection>,
}

impl PriceRequest {
    pub fn new(
        order_data: OrderData,
        products: Vec<ProductSelection>,
    ) -> Result<Self, RequestError> {
        Ok(Self {
            order_data,
            products: non_empty_products(products)?,
        })
    }

    pub fn kind(&self) -> OrderKind {
        self.order_data.kind()
    }
}

fn non_empty_products(
    products: Vec<ProductSelection>,
) -> Result<Vec<ProductSelection>, RequestError> {
    if products.is_empty() {
        Err(RequestError::NoProducts)
    } else {
        Ok(products)
    }
}

fn non_blank(value: &str, what: &'static str) -> Result<String, RequestError> {
    let value = value.trim();
    if value.is_empty() {
        Err(RequestError::Empty(what))
    } else {
        Ok(value.to_owned())
    }
}

#[cfg(test)]
mod tests;
