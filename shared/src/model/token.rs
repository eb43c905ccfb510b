//! `POST /authentication/v2/token` responses.

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
