//! The transport-independent HTTP request and response of the push intake:
//! the Lambda handler and `kode serve` both translate to and from these.

use std::fmt;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use serde_json::Value;

/// The id of one HTTP request: the SQS deduplication id of its push.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    /// The transport's id (API Gateway / Function URL `requestId`) when it is
    /// usable as an SQS deduplication id (1–128 printable ASCII characters),
    /// else a fresh UUID: every HTTP request must get its own id, never one
    /// derived from the body.
    pub fn from_transport(id: Option<&str>) -> RequestId {
        match id {
            Some(id)
                if !id.is_empty()
                    && id.len() <= 128
                    && id.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                RequestId(id.to_owned())
            }
            _ => RequestId::fresh(),
        }
    }

    pub fn fresh() -> RequestId {
        RequestId(uuid::Uuid::new_v4().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One HTTP request as received, body already decoded from any transport
/// encoding (base64).
#[derive(Clone)]
pub struct IntakeRequest {
    pub method: Method,
    pub path: String,
    /// Decoded query parameters in order; may carry the push secret (`token`).
    pub query: Vec<(String, String)>,
    /// May carry the push secret (`Authorization`).
    pub headers: HeaderMap,
    pub body: Bytes,
    pub request_id: RequestId,
}

/// Deliberately omits query and headers: both may carry the push secret.
impl fmt::Debug for IntakeRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntakeRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("body_bytes", &self.body.len())
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

/// Decodes a raw query string (`a=1&token=x%2By`) into pairs.
pub fn query_pairs(raw: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// What to answer. The body is always JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct IntakeResponse {
    pub status: StatusCode,
    pub body: Value,
    /// The `Allow` header of a 405.
    pub allow: Option<&'static str>,
}

impl IntakeResponse {
    pub const CONTENT_TYPE: &'static str = "application/json";

    pub(crate) fn json(status: StatusCode, body: Value) -> IntakeResponse {
        IntakeResponse {
            status,
            body,
            allow: None,
        }
    }

    pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> IntakeResponse {
        IntakeResponse::json(status, serde_json::json!({ "error": message.into() }))
    }

    pub fn body_string(&self) -> String {
        self.body.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_request_ids_are_kept_when_usable_as_dedup_ids() {
        assert_eq!(
            RequestId::from_transport(Some("LV7fzho-PHcEJPw=")).as_str(),
            "LV7fzho-PHcEJPw="
        );
    }

    #[test]
    fn missing_or_unusable_request_ids_become_fresh_uuids() {
        for id in [None, Some(""), Some("has space"), Some(&*"x".repeat(129))] {
            let fresh = RequestId::from_transport(id);
            assert!(uuid::Uuid::parse_str(fresh.as_str()).is_ok(), "{id:?}");
        }
        assert_ne!(RequestId::fresh(), RequestId::fresh());
    }

    #[test]
    fn query_pairs_are_percent_decoded() {
        assert_eq!(
            query_pairs("a=1&token=x%2By%26z"),
            vec![("a".into(), "1".into()), ("token".into(), "x+y&z".into())]
        );
    }

    #[test]
    fn debug_output_leaves_out_query_and_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Bearer s3cret".parse().unwrap());
        let request = IntakeRequest {
            method: Method::POST,
            path: "/push".into(),
            query: vec![("token".into(), "s3cret".into())],
            headers,
            body: Bytes::new(),
            request_id: RequestId::fresh(),
        };
        assert!(!format!("{request:?}").contains("s3cret"));
    }
}
