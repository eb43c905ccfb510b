//! The queue message of an accepted push (see "Push intake" in DESIGN.md).

use crate::model::PushKind;

/// `{"v":1,"kind":...,"receivedAt":...,"push":<body as received>}`.
///
/// The body is spliced in verbatim rather than re-serialised, so the
/// processor sees exactly what KODE sent (key order, number spelling). It
/// must already have been parsed as JSON, which also proves it is UTF-8.
pub(crate) fn envelope(kind: PushKind, received_at: jiff::Timestamp, body: &str) -> String {
    let kind = match kind {
        PushKind::Order => "order",
        PushKind::Distributor => "distributor",
    };
    let received_at = received_at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ");
    let body = body.trim();
    let mut out = String::with_capacity(body.len() + 80);
    out.push_str(r#"{"v":1,"kind":""#);
    out.push_str(kind);
    out.push_str(r#"","receivedAt":""#);
    out.push_str(&received_at.to_string());
    out.push_str(r#"","push":"#);
    out.push_str(body);
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn envelope_wraps_the_body_as_received() {
        let at: jiff::Timestamp = "2024-05-01T10:20:30.123456Z".parse().unwrap();
        let body = " {\"orderId\": \"42\", \"status\":\"UPDATE\"}\n";
        let text = envelope(PushKind::Order, at, body);
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value,
            json!({
                "v": 1,
                "kind": "order",
                "receivedAt": "2024-05-01T10:20:30.123Z",
                "push": {"orderId": "42", "status": "UPDATE"}
            })
        );
        assert!(text.ends_with("\"status\":\"UPDATE\"}}"));
    }
}
