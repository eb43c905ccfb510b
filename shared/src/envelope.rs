//! The queue messages, the contract between their writers (intake, the
//! sweep) and processing: the webhook's
//! `{"v":1,"kind":"order"|"distributor","receivedAt":RFC3339,"push":<body>}`
//! and the sweeper's `{"v":1,"kind":"sweep","sweptAt":RFC3339,"orderId":<id>}`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{OrderId, Push, PushError, PushKind};

pub const ENVELOPE_VERSION: u32 = 1;

/// Why a queue message is not a usable envelope. Never retryable: the same
/// bytes fail the same way.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("invalid queue message: {0}")]
    Malformed(String),
    /// The envelope holds something that is not a push.
    #[error("invalid push in queue message: {0}")]
    Push(#[from] PushError),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub v: u32,
    pub kind: PushKind,
    /// RFC 3339, when the webhook accepted the push.
    pub received_at: String,
    /// The push body as received.
    pub push: Value,
}

/// A validated envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedEnvelope {
    pub received_at: String,
    pub push: Push,
}

/// The sweeper's message: sync the order as if its last recorded push came
/// again (see `crate::sweep`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepEnvelope {
    pub v: u32,
    /// Always `"sweep"`.
    pub kind: String,
    /// RFC 3339, when the sweeper sent it.
    pub swept_at: String,
    pub order_id: OrderId,
}

pub const SWEEP_KIND: &str = "sweep";

impl SweepEnvelope {
    pub fn new(order_id: OrderId, swept_at: String) -> SweepEnvelope {
        SweepEnvelope {
            v: ENVELOPE_VERSION,
            kind: SWEEP_KIND.to_owned(),
            swept_at,
            order_id,
        }
    }

    pub fn encode(&self) -> String {
        // A struct of strings and a number always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Any message of the push queue, validated.
#[derive(Debug, Clone, PartialEq)]
pub enum QueueMessage {
    Push(ParsedEnvelope),
    Sweep(SweepEnvelope),
}

/// Parses a queue message body: a sweep, or else a push envelope
/// ([`Envelope::parse`]).
pub fn parse_message(body: &str) -> Result<QueueMessage, EnvelopeError> {
    #[derive(Deserialize)]
    struct Kind {
        kind: Option<String>,
    }
    let is_sweep =
        serde_json::from_str::<Kind>(body).is_ok_and(|k| k.kind.as_deref() == Some(SWEEP_KIND));
    if !is_sweep {
        return Envelope::parse(body).map(QueueMessage::Push);
    }
    let sweep: SweepEnvelope = serde_json::from_str(body)
        .map_err(|e| EnvelopeError::Malformed(format!("not a sweep message: {e}")))?;
    if sweep.v != ENVELOPE_VERSION {
        return Err(EnvelopeError::Malformed(format!(
            "sweep message version {} is not supported (expected {ENVELOPE_VERSION})",
            sweep.v
        )));
    }
    Ok(QueueMessage::Sweep(sweep))
}

impl Envelope {
    pub fn new(kind: PushKind, received_at: String, push: Value) -> Envelope {
        Envelope {
            v: ENVELOPE_VERSION,
            kind,
            received_at,
            push,
        }
    }

    /// Writes the queue message for an accepted push. The body is spliced in
    /// verbatim rather than re-serialised, so the processor sees exactly what
    /// KODE sent (key order, number spelling) and the webhook spends no time
    /// re-encoding. It must already have been parsed as JSON, which also
    /// proves it is UTF-8.
    pub fn encode_raw(kind: PushKind, received_at: jiff::Timestamp, body: &str) -> String {
        let kind = match kind {
            PushKind::Order => "order",
            PushKind::Distributor => "distributor",
        };
        let received_at = received_at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        let body = body.trim();
        let mut out = String::with_capacity(body.len() + 80);
        out.push_str(r#"{"v":"#);
        out.push_str(&ENVELOPE_VERSION.to_string());
        out.push_str(r#","kind":""#);
        out.push_str(kind);
        out.push_str(r#"","receivedAt":""#);
        out.push_str(&received_at);
        out.push_str(r#"","push":"#);
        out.push_str(body);
        out.push('}');
        out
    }

    /// Parses a queue message body and validates the push inside it again
    /// (the queue may hold messages from an older webhook).
    pub fn parse(body: &str) -> Result<ParsedEnvelope, EnvelopeError> {
        let envelope: Envelope = serde_json::from_str(body)
            .map_err(|e| EnvelopeError::Malformed(format!("not an envelope: {e}")))?;
        if envelope.v != ENVELOPE_VERSION {
            return Err(EnvelopeError::Malformed(format!(
                "envelope version {} is not supported (expected {ENVELOPE_VERSION})",
                envelope.v
            )));
        }
        // A body embedded as a JSON string is accepted too.
        let push = match &envelope.push {
            Value::String(text) => Push::from_slice(text.as_bytes())?,
            value => Push::from_value(value)?,
        };
        if push.kind() != envelope.kind {
            return Err(EnvelopeError::Malformed(format!(
                "envelope kind {:?} does not match its push ({:?})",
                envelope.kind,
                push.kind()
            )));
        }
        Ok(ParsedEnvelope {
            received_at: envelope.received_at,
            push,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::{OrderId, PushStatus};

    fn body(v: Value) -> String {
        v.to_string()
    }

    #[test]
    fn order_envelope_parses() {
        let parsed = Envelope::parse(&body(json!({
            "v": 1, "kind": "order", "receivedAt": "2024-05-02T10:00:00Z",
            "push": {"orderCollectionId": "123", "status": "UPDATED"}
        })))
        .unwrap();
        assert_eq!(parsed.received_at, "2024-05-02T10:00:00Z");
        match parsed.push {
            Push::Order(p) => {
                assert_eq!(p.order_id, OrderId(123));
                assert_eq!(p.status, PushStatus::Updated);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn envelope_written_by_new_round_trips() {
        let push = json!({"orderId": 9, "status": "NEW"});
        let text =
            serde_json::to_string(&Envelope::new(PushKind::Order, "t".into(), push)).unwrap();
        assert!(matches!(
            Envelope::parse(&text).unwrap().push,
            Push::Order(_)
        ));
    }

    #[test]
    fn bad_envelopes_are_permanent_errors() {
        let cases = [
            "not json".to_owned(),
            "{}".to_owned(),
            body(
                json!({"v": 2, "kind": "order", "receivedAt": "t", "push": {"orderId": 1, "status": "NEW"}}),
            ),
            body(json!({"v": 1, "kind": "order", "receivedAt": "t", "push": {"status": "NEW"}})),
            body(
                json!({"v": 1, "kind": "distributor", "receivedAt": "t", "push": {"orderId": 1, "status": "NEW"}}),
            ),
            body(
                json!({"v": 1, "kind": "parcel", "receivedAt": "t", "push": {"orderId": 1, "status": "NEW"}}),
            ),
        ];
        for case in cases {
            let err = Envelope::parse(&case).unwrap_err();
            let processing = crate::process::ProcessError::from(err);
            assert!(!processing.is_retryable(), "{case}: {processing}");
        }
    }

    #[test]
    fn sweep_messages_round_trip_and_bad_ones_are_permanent_errors() {
        let text = SweepEnvelope::new(OrderId(42), "2024-05-01T10:00:00Z".into()).encode();
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            json!({"v": 1, "kind": "sweep", "sweptAt": "2024-05-01T10:00:00Z", "orderId": 42})
        );
        match parse_message(&text).unwrap() {
            QueueMessage::Sweep(s) => assert_eq!(s.order_id, OrderId(42)),
            other => panic!("{other:?}"),
        }
        let push = body(json!({"v": 1, "kind": "order", "receivedAt": "t",
            "push": {"orderId": 3, "status": "NEW"}}));
        assert!(matches!(parse_message(&push), Ok(QueueMessage::Push(_))));
        for bad in [
            json!({"v": 1, "kind": "sweep", "sweptAt": "t"}),
            json!({"v": 2, "kind": "sweep", "sweptAt": "t", "orderId": 1}),
            json!({"v": 1, "kind": "sweep", "sweptAt": "t", "orderId": "x"}),
        ] {
            let err = parse_message(&body(bad.clone())).unwrap_err();
            let processing = crate::process::ProcessError::from(err);
            assert!(!processing.is_retryable(), "{bad}: {processing}");
        }
    }

    #[test]
    fn the_webhook_writes_what_the_processor_reads() {
        let at: jiff::Timestamp = "2024-05-01T10:20:30.123456Z".parse().unwrap();
        let body = " {\"orderId\": \"42\", \"status\":\"UPDATE\"}\n";
        let text = Envelope::encode_raw(PushKind::Order, at, body);
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
        let parsed = Envelope::parse(&text).unwrap();
        assert_eq!(parsed.received_at, "2024-05-01T10:20:30.123Z");
        assert!(matches!(parsed.push, Push::Order(ref p) if p.order_id.0 == 42));
    }
}
