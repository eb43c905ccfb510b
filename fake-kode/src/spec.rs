//! What a test scripts: orders, sub-orders, lines and assets, plus the small
//! vocabulary types of the fake (endpoints, editions, credentials).

use crate::content::AssetContent;

/// The endpoint families the fake serves; faults and counters are per family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Token,
    GetOrder,
    Products,
    Prices,
    CreateOrder,
    Asset,
}

/// Which published edition of the order JSON the fake renders.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Edition {
    /// `dd.MM.yyyy HH:mm:ss` dates, string line `status`/`productType`,
    /// `packageLineId`, `dateStatus` and `assets` on lines.
    #[default]
    Current,
    /// ISO dates with `+0100`, `{code,name}` objects for line `status` and
    /// `productType`, no `assets`/`packageLineId`/`dateStatus` on lines.
    Old,
}

/// The credentials the token endpoint accepts.
#[derive(Clone, PartialEq, Eq)]
pub struct FakeCredentials {
    pub client_id: String,
    pub client_secret: String,
    pub username: String,
    pub password: String,
}

impl FakeCredentials {
    pub(crate) fn fixed() -> FakeCredentials {
        FakeCredentials {
            client_id: "fake-kode-client".into(),
            client_secret: "fake-kode-client-secret".into(),
            username: "fake-kode-user".into(),
            password: "fake-kode-password".into(),
        }
    }
}

// Hand-written so that a test printing the struct does not teach anyone to
// log credentials.
impl std::fmt::Debug for FakeCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeCredentials")
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// An order collection as the fake serves it.
#[derive(Clone, Debug)]
pub struct OrderSpec {
    pub id: u64,
    pub status: String,
    pub reference: String,
    pub technical_reference: Option<String>,
    pub sub_orders: Vec<SubOrderSpec>,
}

impl OrderSpec {
    /// Status `NEW`, one sub-order (id `id + 1`, "Oslo kommune"), no lines.
    pub fn new(id: u64) -> OrderSpec {
        OrderSpec {
            id,
            status: "NEW".into(),
            reference: format!("OPPDRAG-{id}"),
            technical_reference: None,
            sub_orders: vec![SubOrderSpec {
                id: id + 1,
                supplier_name: "Oslo kommune".into(),
                assets: Vec::new(),
                lines: Vec::new(),
            }],
        }
    }

    pub(crate) fn assets_mut(&mut self) -> impl Iterator<Item = &mut AssetSpec> {
        self.sub_orders.iter_mut().flat_map(|s| {
            s.assets
                .iter_mut()
                .chain(s.lines.iter_mut().flat_map(|l| l.assets.iter_mut()))
        })
    }

    pub(crate) fn assets(&self) -> impl Iterator<Item = &AssetSpec> {
        self.sub_orders.iter().flat_map(|s| {
            s.assets
                .iter()
                .chain(s.lines.iter().flat_map(|l| l.assets.iter()))
        })
    }
}

/// One supplier's part of an order (`orders[]` in KODE's JSON).
#[derive(Clone, Debug)]
pub struct SubOrderSpec {
    pub id: u64,
    pub supplier_name: String,
    pub assets: Vec<AssetSpec>,
    pub lines: Vec<LineSpec>,
}

/// An order line (`orderLines[]`).
#[derive(Clone, Debug)]
pub struct LineSpec {
    pub id: u64,
    pub product: String,
    pub product_name: String,
    /// `NORMAL` or `PACKAGE`.
    pub product_type: String,
    pub package_line_id: Option<u64>,
    pub assets: Vec<AssetSpec>,
}

/// A delivered file.
#[derive(Clone, Debug)]
pub struct AssetSpec {
    pub id: String,
    pub name: String,
    pub filename: String,
    /// `OK`, `DELETED`, or anything a test wants to try.
    pub status: String,
    pub category: String,
    pub content: AssetContent,
}

impl AssetSpec {
    /// An `OK` asset named `filename` in category `PLAN_KART_REGULERING`.
    pub fn ok(id: &str, filename: &str, content: impl Into<bytes::Bytes>) -> AssetSpec {
        AssetSpec {
            id: id.into(),
            name: filename.into(),
            filename: filename.into(),
            status: "OK".into(),
            category: "PLAN_KART_REGULERING".into(),
            content: AssetContent::Bytes(content.into()),
        }
    }
}
