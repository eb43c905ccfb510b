//! Identifier newtypes. KODE sends numeric ids sometimes as JSON numbers and
//! sometimes as strings of digits; both are accepted.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! numeric_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_digits(s).map($name)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_u64(self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_any(NumericIdVisitor).map($name)
            }
        }
    };
}

numeric_id!(
    /// The order collection id: `orderCollectionId` (or `orderId`) in pushes,
    /// top-level `id` in order responses, `{id}` of `GET /kode/v1/orders/{id}`.
    OrderId
);
numeric_id!(
    /// A sub-order (`orders[].id`): one per delivering municipality.
    SubOrderId
);
numeric_id!(
    /// An order line (`orders[].orderLines[].id`).
    OrderLineId
);

/// Digits only: `u64::from_str` would also take a leading `+`.
fn parse_digits(s: &str) -> Result<u64, std::num::ParseIntError> {
    if s.starts_with('+') {
        return "+".parse::<u64>();
    }
    s.parse()
}

struct NumericIdVisitor;

impl<'de> Visitor<'de> for NumericIdVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative integer id, as a number or a string of digits")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom(format!("negative id {v}")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
        if v.fract() == 0.0 && v >= 0.0 && v < u64::MAX as f64 {
            Ok(v as u64)
        } else {
            Err(E::custom(format!("id {v} is not a whole number")))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        parse_digits(v.trim()).map_err(|_| E::custom(format!("id {v:?} is not a number")))
    }
}

/// An asset id: an opaque string (32 hex-like characters in the examples).
/// A numeric id is accepted and kept as its decimal text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AssetId(pub String);

impl AssetId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AssetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for AssetId {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl<'de> Deserialize<'de> for AssetId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AssetIdVisitor;
        impl Visitor<'_> for AssetIdVisitor {
            type Value = AssetId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an asset id string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AssetId, E> {
                if v.is_empty() {
                    return Err(E::custom("empty asset id"));
                }
                Ok(AssetId(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<AssetId, E> {
                Ok(AssetId(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<AssetId, E> {
                Ok(AssetId(v.to_string()))
            }
        }
        deserializer.deserialize_any(AssetIdVisitor)
    }
}

/// A Norwegian municipality number: four digits, leading zero kept (`0301`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MunicipalityNumber(String);

impl MunicipalityNumber {
    /// Accepts exactly four ASCII digits.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "municipality number must be four digits, like 0301 (got {s:?})"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MunicipalityNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_id_accepts_number_and_digit_string() {
        let a: OrderId = serde_json::from_str("2345678").unwrap();
        let b: OrderId = serde_json::from_str("\"2345678\"").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "2345678");
    }

    #[test]
    fn order_id_rejects_non_numeric() {
        for bad in ["\"abc\"", "-1", "1.5", "\"+5\"", "\"\"", "true", "null"] {
            assert!(serde_json::from_str::<OrderId>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn asset_id_keeps_text_and_accepts_numbers() {
        let a: AssetId = serde_json::from_str("\"4e7d1c2b\"").unwrap();
        assert_eq!(a.as_str(), "4e7d1c2b");
        let n: AssetId = serde_json::from_str("42").unwrap();
        assert_eq!(n.as_str(), "42");
    }

    #[test]
    fn municipality_keeps_leading_zero() {
        assert_eq!(MunicipalityNumber::parse("0301").unwrap().as_str(), "0301");
        assert!(MunicipalityNumber::parse("301").is_err());
        assert!(MunicipalityNumber::parse("03O1").is_err());
    }
}
