//! The three kinds of order input, each with its own create and price path.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderKind {
    /// By cadastre (matrikkel) `knr-gnr-bnr-fnr-snr`.
    Cadastre,
    /// By housing-cooperative organisation number and share number.
    Share,
    /// By a GeoJSON polygon.
    Map,
}

impl OrderKind {
    /// The path segment: `/kode/v1/orders/{segment}`, `/kode/v1/prices/{segment}`.
    pub fn path_segment(&self) -> &'static str {
        match self {
            OrderKind::Cadastre => "cadastre",
            OrderKind::Share => "share",
            OrderKind::Map => "map",
        }
    }
}

impl fmt::Display for OrderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path_segment())
    }
}
