//! Push intake: what the webhook does with one HTTP request, independent of
//! the transport (Lambda events here, `kode serve`'s HTTP server locally).
//!
//! Checks run in the order of DESIGN.md "Details decided": method (405),
//! secret (401), size (413), shape (400). An accepted push is answered 200
//! only once the queue accepted it; a queue failure or timeout is a 503 so
//! that KODE retries.

mod log;
mod request;
mod secret;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::json;

pub use log::{IntakeLog, Outcome};
pub use request::{query_pairs, IntakeRequest, IntakeResponse, RequestId};
pub use secret::{PushSecret, PushSecretError};

use crate::envelope::Envelope;
use crate::metrics::{Metric, Metrics};
use crate::model::{Push, PushError};
use crate::store::{OutgoingMessage, Queue};
use crate::Deadline;

/// Bodies up to and including this size are read.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How long the queue may take before the push is answered 503.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The answer to one request and its (already written) log line.
#[derive(Debug)]
pub struct Handled {
    pub response: IntakeResponse,
    pub log: IntakeLog,
}

/// The webhook's logic, built once per process.
pub struct Intake {
    queue: Arc<dyn Queue>,
    secret: PushSecret,
    send_timeout: Duration,
    metrics: Metrics,
}

impl Intake {
    pub fn new(queue: Arc<dyn Queue>, secret: PushSecret) -> Intake {
        Intake {
            queue,
            secret,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            metrics: Metrics::Off,
        }
    }

    /// Counts each push by outcome (`Metric::Pushes*`).
    pub fn with_metrics(mut self, metrics: Metrics) -> Intake {
        self.metrics = metrics;
        self
    }

    pub fn with_send_timeout(mut self, timeout: Duration) -> Intake {
        self.send_timeout = timeout;
        self
    }

    /// Answers one request and writes its log line.
    pub async fn handle(&self, request: &IntakeRequest) -> Handled {
        self.handle_until(request, None).await
    }

    /// Like [`Intake::handle`], but the queue send is also cut off at
    /// `deadline` (a Lambda invocation's end minus a margin), so that a slow
    /// queue is answered with a 503 rather than a platform timeout.
    pub async fn handle_until(
        &self,
        request: &IntakeRequest,
        deadline: Option<Deadline>,
    ) -> Handled {
        let started = Instant::now();
        let mut log = IntakeLog::start(request);
        let (outcome, response) = self.decide(request, deadline, &mut log).await;
        log.finish(outcome, response.status, started.elapsed());
        log.emit();
        if let Some(counted) = outcome.metric() {
            // Every outcome's count, 0 for the others: "401s while none was
            // accepted" then compares two series that both have data.
            let counts = Metric::PUSH_OUTCOMES.map(|m| (m, f64::from(u8::from(m == counted))));
            self.metrics.emit(&counts);
        }
        Handled { response, log }
    }

    async fn decide(
        &self,
        request: &IntakeRequest,
        deadline: Option<Deadline>,
        log: &mut IntakeLog,
    ) -> (Outcome, IntakeResponse) {
        if is_health_path(&request.path) {
            if request.method == Method::GET {
                let ok = IntakeResponse::json(StatusCode::OK, json!({ "ok": true }));
                return (Outcome::Health, ok);
            }
            return (Outcome::MethodNotAllowed, method_not_allowed("GET"));
        }
        if request.method != Method::POST {
            return (Outcome::MethodNotAllowed, method_not_allowed("POST"));
        }
        if !self.secret.authorizes(request) {
            let response =
                IntakeResponse::error(StatusCode::UNAUTHORIZED, "missing or wrong push secret");
            return (Outcome::Unauthorized, response);
        }
        let body = &request.body;
        if body.len() > MAX_BODY_BYTES {
            log.reject_body(body);
            let response = IntakeResponse::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "body is {} bytes; at most {MAX_BODY_BYTES} are accepted",
                    body.len()
                ),
            );
            return (Outcome::TooLarge, response);
        }
        let push = match parse(body) {
            Ok(push) => push,
            Err(e) => {
                log.reject_body(body);
                log.error = Some(e.to_string());
                return (
                    Outcome::Invalid,
                    IntakeResponse::error(StatusCode::BAD_REQUEST, e.to_string()),
                );
            }
        };
        let limit = deadline.map_or(self.send_timeout, |d| d.remaining().min(self.send_timeout));
        self.enqueue(request, &push, limit, log).await
    }

    async fn enqueue(
        &self,
        request: &IntakeRequest,
        push: &Push,
        limit: Duration,
        log: &mut IntakeLog,
    ) -> (Outcome, IntakeResponse) {
        let kind = push.kind();
        let order_id = match push {
            Push::Order(p) => Some(p.order_id),
            Push::Distributor(_) => None,
        };
        log.kind = Some(kind);
        log.order_id = order_id;
        let group = push.message_group();
        log.group = Some(group.clone());
        // `parse` succeeded, so the body is valid UTF-8.
        let body = String::from_utf8_lossy(&request.body);
        let message = OutgoingMessage {
            group,
            dedup_id: request.request_id.as_str().to_owned(),
            body: Envelope::encode_raw(kind, jiff::Timestamp::now(), &body),
        };
        let failure = match tokio::time::timeout(limit, self.queue.send(&message)).await {
            Ok(Ok(message_id)) => {
                log.message_id = Some(message_id);
                let mut body = json!({ "accepted": true, "kind": kind });
                if let Some(id) = order_id {
                    body["orderId"] = json!(id);
                }
                return (
                    Outcome::Accepted,
                    IntakeResponse::json(StatusCode::OK, body),
                );
            }
            Ok(Err(e)) => format!(
                "queue refused the push (retryable: {}): {e}",
                e.is_retryable()
            ),
            Err(_) => format!("queue did not answer within {} ms", limit.as_millis()),
        };
        log.error = Some(failure);
        let response = IntakeResponse::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the push could not be queued; retry later",
        );
        (Outcome::QueueFailed, response)
    }
}

/// Parses the body once; the error texts are `Push::from_slice`'s.
fn parse(body: &[u8]) -> Result<Push, PushError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| PushError::InvalidJson(e.to_string()))?;
    Push::from_value(&value)
}

/// `/healthz`, also behind an API Gateway stage prefix (`/prod/healthz`).
fn is_health_path(path: &str) -> bool {
    path.trim_end_matches('/').ends_with("/healthz")
}

fn method_not_allowed(allow: &'static str) -> IntakeResponse {
    let mut response = IntakeResponse::error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed; use {allow}"),
    );
    response.allow = Some(allow);
    response
}
