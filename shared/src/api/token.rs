//! `POST /authentication/v2/token` responses: the token and its lifetime
//! as KODE grants them (auth code only; never logged).

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};

use crate::secret::Secret;

#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: Secret,
    #[serde(default)]
    pub token_type: Option<String>,
    /// Seconds. Tokens are opaque, so this is the only source of expiry.
    #[serde(default)]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub refresh_token: Option<Secret>,
    #[serde(default)]
    pub scope: Scopes,
}

/// Granted scopes: a JSON array in every KODE example, a space-separated
/// string in RFC 6749. Both are accepted; scopes are never checked client side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(pub Vec<String>);

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScopesVisitor;
        impl<'de> Visitor<'de> for ScopesVisitor {
            type Value = Scopes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array of scopes or a space-separated string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scopes, E> {
                Ok(Scopes(v.split_whitespace().map(str::to_owned).collect()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scopes, E> {
                Ok(Scopes::default())
            }
            fn visit_none<E: de::Error>(self) -> Result<Scopes, E> {
                Ok(Scopes::default())
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Scopes, A::Error> {
                let mut scopes = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    scopes.push(s);
                }
                Ok(Scopes(scopes))
            }
        }
        deserializer.deserialize_any(ScopesVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../tests/fixtures/", $name))
        };
    }

    fn parse(json: &str) -> TokenResponse {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn token_response_with_scope_array() {
        let token = parse(fixture!("token_response.json"));
        assert_eq!(
            token.access_token.expose(),
            "c0a8e2f4-1b3d-4f5e-8a9b-0c1d2e3f4a5b"
        );
        assert_eq!(token.token_type.as_deref(), Some("Bearer"));
        assert_eq!(token.expires_in, Some(3600));
        assert_eq!(
            token.refresh_token.as_ref().map(|t| t.expose()),
            Some("5b1f0c9e-7d2a-4c61-9e0b-3f4a8d2c7e11")
        );
        assert_eq!(
            token.scope.0,
            [
                "kode.order.write",
                "kode.order.read",
                "kode.product.read",
                "kode.price.read"
            ]
        );
        let shown = format!("{token:?}");
        assert!(
            !shown.contains("c0a8e2f4") && !shown.contains("5b1f0c9e"),
            "{shown}"
        );
    }

    #[test]
    fn token_response_with_scope_string_and_no_refresh_token() {
        let token = parse(fixture!("token_response_scope_string.json"));
        assert_eq!(
            token.scope.0,
            ["shopping.read", "shopping.write", "productcatalog.read"]
        );
        assert!(token.refresh_token.is_none());
        let empty = parse(r#"{"access_token":"t","scope":[]}"#);
        assert!(empty.scope.0.is_empty());
        assert_eq!(empty.expires_in, None);
    }
}
