//! The one log line written per webhook request.

use std::time::Duration;

use http::StatusCode;

use super::{IntakeRequest, RequestId};
use crate::metrics::Metric;
use crate::model::{OrderId, PushKind};

/// How much of a rejected body is logged.
const LOGGED_BODY_CHARS: usize = 256;

/// What happened to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Health,
    MethodNotAllowed,
    Unauthorized,
    TooLarge,
    Invalid,
    QueueFailed,
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Health => "health",
            Outcome::MethodNotAllowed => "method_not_allowed",
            Outcome::Unauthorized => "unauthorized",
            Outcome::TooLarge => "too_large",
            Outcome::Invalid => "invalid",
            Outcome::QueueFailed => "queue_failed",
        }
    }

    /// The count a push with this outcome adds to; `None` for requests that
    /// are not pushes (health checks, other methods).
    pub fn metric(&self) -> Option<Metric> {
        match self {
            Outcome::Accepted => Some(Metric::PushesAccepted),
            Outcome::Unauthorized => Some(Metric::PushesUnauthorized),
            Outcome::TooLarge => Some(Metric::PushesTooLarge),
            Outcome::Invalid => Some(Metric::PushesInvalid),
            Outcome::QueueFailed => Some(Metric::PushesQueueFailed),
            Outcome::Health | Outcome::MethodNotAllowed => None,
        }
    }
}

/// The fields of the request's log line. Holds neither query, headers nor
/// the secret; a body only when rejected, and then truncated.
#[derive(Debug, Clone, PartialEq)]
pub struct IntakeLog {
    pub request_id: RequestId,
    pub method: String,
    pub path: String,
    pub body_bytes: usize,
    pub kind: Option<PushKind>,
    pub order_id: Option<OrderId>,
    pub group: Option<String>,
    pub message_id: Option<String>,
    pub status: u16,
    pub outcome: Outcome,
    pub latency: Duration,
    pub error: Option<String>,
    /// The start of a rejected body.
    pub body_excerpt: Option<String>,
}

impl IntakeLog {
    pub(crate) fn start(request: &IntakeRequest) -> IntakeLog {
        IntakeLog {
            request_id: request.request_id.clone(),
            method: request.method.to_string(),
            path: request.path.clone(),
            body_bytes: request.body.len(),
            kind: None,
            order_id: None,
            group: None,
            message_id: None,
            status: 0,
            outcome: Outcome::Invalid,
            latency: Duration::ZERO,
            error: None,
            body_excerpt: None,
        }
    }

    pub(crate) fn reject_body(&mut self, body: &[u8]) {
        self.body_excerpt = Some(excerpt(body));
    }

    pub(crate) fn finish(&mut self, outcome: Outcome, status: StatusCode, latency: Duration) {
        self.outcome = outcome;
        self.status = status.as_u16();
        self.latency = latency;
    }

    pub fn latency_ms(&self) -> f64 {
        self.latency.as_secs_f64() * 1000.0
    }

    /// Writes the line: info when accepted, warn when rejected, error when
    /// the queue failed (KODE will retry; repeated lines need a look).
    pub fn emit(&self) {
        macro_rules! line {
            ($level:ident, $msg:literal) => {
                tracing::$level!(
                    requestId = %self.request_id,
                    method = %self.method,
                    path = %self.path,
                    bodyBytes = self.body_bytes,
                    kind = self.kind.map(kind_str),
                    orderId = self.order_id.map(|id| id.0),
                    group = self.group.as_deref(),
                    messageId = self.message_id.as_deref(),
                    status = self.status,
                    outcome = self.outcome.as_str(),
                    latencyMs = self.latency_ms(),
                    error = self.error.as_deref(),
                    body = self.body_excerpt.as_deref(),
                    $msg
                )
            };
        }
        match self.outcome {
            Outcome::Accepted => line!(info, "push accepted"),
            Outcome::Health => line!(info, "health check"),
            Outcome::QueueFailed => line!(error, "push not queued"),
            _ => line!(warn, "push rejected"),
        }
    }
}

fn kind_str(kind: PushKind) -> &'static str {
    match kind {
        PushKind::Order => "order",
        PushKind::Distributor => "distributor",
    }
}

/// At most `LOGGED_BODY_CHARS` characters, invalid UTF-8 replaced.
fn excerpt(body: &[u8]) -> String {
    // Bound the work before decoding: a character is at most 4 bytes.
    let head = &body[..body.len().min(LOGGED_BODY_CHARS * 4)];
    let text = String::from_utf8_lossy(head);
    match text.char_indices().nth(LOGGED_BODY_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None if head.len() < body.len() => format!("{text}…"),
        None => text.into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_keeps_short_bodies_and_truncates_long_ones() {
        assert_eq!(excerpt(b"{\"a\":1}"), "{\"a\":1}");
        let long = "æ".repeat(1000);
        let cut = excerpt(long.as_bytes());
        assert_eq!(cut.chars().count(), LOGGED_BODY_CHARS + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(excerpt(&[0xff, b'a']), "\u{fffd}a");
    }
}
