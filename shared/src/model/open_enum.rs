//! Open enums: KODE may add values at any time, so an unknown value is kept
//! as `Unknown(raw)` instead of failing the whole payload.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// Declares an enum that (de)serialises from a string, matching known
/// spellings case-insensitively and keeping anything else as `Unknown`.
macro_rules! open_enum {
    (
        $(#[$doc:meta])*
        pub enum $name:ident {
            $($(#[$vdoc:meta])* $variant:ident => $canonical:literal $(| $alias:literal)*,)+
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
            /// A value this version does not know, kept verbatim.
            Unknown(String),
        }

        impl $name {
            pub fn parse(raw: &str) -> Self {
                let upper = raw.trim().to_ascii_uppercase();
                $(
                    if upper == $canonical $(|| upper == $alias)* {
                        return $name::$variant;
                    }
                )+
                $name::Unknown(raw.to_owned())
            }

            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $canonical,)+
                    $name::Unknown(raw) => raw,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let code = $crate::model::CodeName::deserialize(deserializer)?;
                Ok($name::parse(&code.code))
            }
        }
    };
}
pub(crate) use open_enum;

/// A `{code, name}` pair. Older KODE editions send objects where newer ones
/// send a plain string; a plain string becomes a `code` without a `name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct CodeName {
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl CodeName {
    pub fn code(code: &str) -> Self {
        Self {
            code: code.to_owned(),
            name: None,
        }
    }
}

impl<'de> Deserialize<'de> for CodeName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CodeNameVisitor;
        impl<'de> Visitor<'de> for CodeNameVisitor {
            type Value = CodeName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an object with `code` and `name`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CodeName, E> {
                Ok(CodeName::code(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<CodeName, E> {
                Ok(CodeName::code(&v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CodeName, A::Error> {
                let mut code = None;
                let mut name = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "code" => code = Some(map.next_value::<CodeOrNumber>()?.0),
                        "name" => name = map.next_value::<Option<String>>()?,
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                let code = code
                    .or_else(|| name.clone())
                    .ok_or_else(|| de::Error::missing_field("code"))?;
                Ok(CodeName { code, name })
            }
        }
        deserializer.deserialize_any(CodeNameVisitor)
    }
}

/// `code` is a string in most payloads but `"0"`/`1` style numbers appear.
struct CodeOrNumber(String);

impl<'de> Deserialize<'de> for CodeOrNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        match value {
            serde_json::Value::String(s) => Ok(CodeOrNumber(s)),
            serde_json::Value::Number(n) => Ok(CodeOrNumber(n.to_string())),
            other => Err(de::Error::custom(format!("unexpected code {other}"))),
        }
    }
}
