//! Intake behaviour with an in-memory queue.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};

use super::*;
use crate::store::{OutgoingMessage, Queue, StoreError};
use crate::Secret;

const SECRET: &str = "push-s3cret-Æ";

#[derive(Default)]
struct MemoryQueue {
    sent: Mutex<Vec<OutgoingMessage>>,
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn send(&self, message: &OutgoingMessage) -> Result<String, StoreError> {
        let mut sent = self.sent.lock().unwrap();
        sent.push(message.clone());
        Ok(format!("m-{}", sent.len()))
    }
}

struct FailingQueue;

#[async_trait]
impl Queue for FailingQueue {
    async fn send(&self, _: &OutgoingMessage) -> Result<String, StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
}

struct HangingQueue;

#[async_trait]
impl Queue for HangingQueue {
    async fn send(&self, _: &OutgoingMessage) -> Result<String, StoreError> {
        std::future::pending().await
    }
}

fn intake_with(queue: Arc<dyn Queue>) -> Intake {
    Intake::new(queue, PushSecret::new(Secret::new(SECRET)).unwrap())
}

fn setup() -> (Arc<MemoryQueue>, Intake) {
    let queue = Arc::new(MemoryQueue::default());
    (queue.clone(), intake_with(queue))
}

fn post(body: impl Into<Bytes>) -> IntakeRequest {
    IntakeRequest {
        method: Method::POST,
        path: "/push".into(),
        query: vec![("token".into(), SECRET.into())],
        headers: HeaderMap::new(),
        body: body.into(),
        request_id: RequestId::fresh(),
    }
}

fn without_secret(mut request: IntakeRequest) -> IntakeRequest {
    request.query.clear();
    request
}

fn with_authorization(request: IntakeRequest, value: &str) -> IntakeRequest {
    let mut request = without_secret(request);
    request
        .headers
        .insert(http::header::AUTHORIZATION, value.parse().unwrap());
    request
}

fn basic(user: &str, password: &str) -> String {
    let raw = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

const ORDER: &str = r#"{"orderCollectionId":123,"status":"UPDATED"}"#;

fn sent(queue: &MemoryQueue) -> Vec<OutgoingMessage> {
    queue.sent.lock().unwrap().clone()
}

#[tokio::test]
async fn order_push_is_queued_in_its_group_with_the_request_id_and_envelope() {
    let (queue, intake) = setup();
    let request = post(r#"{"orderId":"77","status":"UPDATE","reference":"r"}"#);
    let handled = intake.handle(&request).await;

    assert_eq!(handled.response.status, StatusCode::OK);
    assert_eq!(
        handled.response.body,
        json!({"accepted": true, "kind": "order", "orderId": 77})
    );
    let sent = sent(&queue);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].group, "order-77");
    assert_eq!(sent[0].dedup_id, request.request_id.as_str());
    let envelope: Value = serde_json::from_str(&sent[0].body).unwrap();
    assert_eq!(envelope["v"], 1);
    assert_eq!(envelope["kind"], "order");
    assert_eq!(
        envelope["push"],
        json!({"orderId":"77","status":"UPDATE","reference":"r"})
    );
    let received_at = envelope["receivedAt"].as_str().unwrap();
    assert!(
        received_at.parse::<jiff::Timestamp>().is_ok(),
        "{received_at}"
    );
}

#[tokio::test]
async fn distributor_message_goes_to_the_distributor_group() {
    let (queue, intake) = setup();
    let body = r#"{"eventType":"DistributorMessages","eventAction":"Created",
        "content":{"id":"9","type":"DISTRIBUTOR","message":"hei"}}"#;
    let handled = intake.handle(&post(body)).await;
    assert_eq!(handled.response.status, StatusCode::OK);
    assert_eq!(
        handled.response.body,
        json!({"accepted": true, "kind": "distributor"})
    );
    assert_eq!(sent(&queue)[0].group, "distributor-messages");
}

#[tokio::test]
async fn unknown_statuses_and_every_status_spelling_are_accepted() {
    let (queue, intake) = setup();
    for status in [
        "NEW",
        "UPDATED",
        "UPDATE",
        "FINISHED",
        "CANCELLED",
        "CANCELED",
        "REFUNDED",
        "ARCHIVED",
    ] {
        let body = format!(r#"{{"orderCollectionId":"5","status":"{status}"}}"#);
        let handled = intake.handle(&post(body)).await;
        assert_eq!(handled.response.status, StatusCode::OK, "{status}");
    }
    assert_eq!(sent(&queue).len(), 8);
}

#[tokio::test]
async fn identical_bodies_are_two_messages_with_their_own_dedup_ids() {
    let (queue, intake) = setup();
    intake.handle(&post(ORDER)).await;
    intake.handle(&post(ORDER)).await;
    let sent = sent(&queue);
    assert_eq!(sent.len(), 2);
    assert_ne!(sent[0].dedup_id, sent[1].dedup_id);
}

#[tokio::test]
async fn each_secret_carrier_is_accepted() {
    let (queue, intake) = setup();
    let carriers = [
        post(ORDER),
        with_authorization(post(ORDER), &format!("Bearer {SECRET}")),
        with_authorization(post(ORDER), &basic("kode", SECRET)),
        with_authorization(post(ORDER), &basic("", SECRET)),
    ];
    for request in &carriers {
        let handled = intake.handle(request).await;
        assert_eq!(handled.response.status, StatusCode::OK, "{request:?}");
    }
    assert_eq!(sent(&queue).len(), carriers.len());
}

#[tokio::test]
async fn missing_or_wrong_secret_is_401_and_nothing_is_queued() {
    let (queue, intake) = setup();
    let mut wrong_token = post(ORDER);
    wrong_token.query = vec![("token".into(), "push-s3cret-æ".into())];
    let cases = [
        without_secret(post(ORDER)),
        wrong_token,
        with_authorization(post(ORDER), "Bearer wrong"),
        with_authorization(post(ORDER), &basic(SECRET, "wrong")),
        with_authorization(post(ORDER), &format!("Token {SECRET}")),
    ];
    for request in &cases {
        let handled = intake.handle(request).await;
        assert_eq!(handled.response.status, StatusCode::UNAUTHORIZED);
        assert_eq!(handled.log.outcome, Outcome::Unauthorized);
    }
    assert!(sent(&queue).is_empty());
}

#[tokio::test]
async fn other_methods_are_405_before_the_secret_is_checked() {
    let (queue, intake) = setup();
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        let mut request = without_secret(post(ORDER));
        request.method = method;
        let handled = intake.handle(&request).await;
        assert_eq!(handled.response.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(handled.response.allow, Some("POST"));
    }
    assert!(sent(&queue).is_empty());
}

#[tokio::test]
async fn healthz_answers_get_without_a_secret() {
    let (queue, intake) = setup();
    let mut request = without_secret(post(""));
    request.method = Method::GET;
    request.path = "/prod/healthz".into();
    let handled = intake.handle(&request).await;
    assert_eq!(handled.response.status, StatusCode::OK);
    request.method = Method::POST;
    let handled = intake.handle(&request).await;
    assert_eq!(handled.response.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(sent(&queue).is_empty());
}

/// A valid order push padded with spaces to exactly `len` bytes.
fn push_of_len(len: usize) -> Vec<u8> {
    let mut body = ORDER.as_bytes().to_vec();
    body.resize(len, b' ');
    body
}

#[tokio::test]
async fn exactly_64_kib_passes_and_one_byte_more_is_413() {
    let (queue, intake) = setup();
    let handled = intake.handle(&post(push_of_len(MAX_BODY_BYTES))).await;
    assert_eq!(handled.response.status, StatusCode::OK);

    let handled = intake.handle(&post(push_of_len(MAX_BODY_BYTES + 1))).await;
    assert_eq!(handled.response.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(sent(&queue).len(), 1);
}

#[tokio::test]
async fn size_is_checked_after_the_secret() {
    let (_, intake) = setup();
    let request = without_secret(post(push_of_len(MAX_BODY_BYTES + 1)));
    let handled = intake.handle(&request).await;
    assert_eq!(handled.response.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_shapes_are_400_naming_the_problem() {
    let (queue, intake) = setup();
    let cases = [
        ("{not json", "not valid JSON"),
        ("[1,2]", "must be a JSON object"),
        (r#"{"status":"NEW"}"#, "no orderCollectionId"),
        (
            r#"{"orderCollectionId":"12a","status":"NEW"}"#,
            "whole number",
        ),
        (r#"{"orderId":-4,"status":"NEW"}"#, "whole number"),
        (r#"{"hello":"world"}"#, "unknown push shape"),
        (r#"{"orderCollectionId":1}"#, "no status"),
        ("", "not valid JSON"),
    ];
    for (body, expected) in cases {
        let handled = intake.handle(&post(body)).await;
        assert_eq!(handled.response.status, StatusCode::BAD_REQUEST, "{body}");
        let error = handled.response.body["error"].as_str().unwrap();
        assert!(error.contains(expected), "{body}: {error}");
        assert_eq!(handled.log.outcome, Outcome::Invalid);
    }
    assert!(sent(&queue).is_empty());
}

#[tokio::test]
async fn queue_failure_is_503() {
    let intake = intake_with(Arc::new(FailingQueue));
    let handled = intake.handle(&post(ORDER)).await;
    assert_eq!(handled.response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(handled.log.outcome, Outcome::QueueFailed);
    assert!(handled
        .log
        .error
        .as_deref()
        .unwrap()
        .contains("connection refused"));
}

#[tokio::test]
async fn queue_timeout_is_503() {
    let intake = intake_with(Arc::new(HangingQueue)).with_send_timeout(Duration::from_millis(50));
    let handled = intake.handle(&post(ORDER)).await;
    assert_eq!(handled.response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(handled
        .log
        .error
        .as_deref()
        .unwrap()
        .contains("within 50 ms"));
}

#[tokio::test]
async fn queue_send_is_cut_off_at_the_callers_deadline() {
    let intake = intake_with(Arc::new(HangingQueue));
    let deadline = crate::Deadline::after(Duration::from_millis(50));
    let handled = intake.handle_until(&post(ORDER), Some(deadline)).await;
    assert_eq!(handled.response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(handled.log.outcome, Outcome::QueueFailed);
}

/// Collects what the JSON subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_lines(captured: &Captured) -> Vec<Value> {
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A dispatcher that lives as long as the test binary and keeps every
/// callsite at "sometimes". tracing caches each callsite's interest
/// process-wide; while one dispatcher is registered it takes it from the
/// *registering* thread, so a test thread without a subscriber reaching an
/// intake log line first would switch it off for the capturing test too
/// (it lost its lines about once in ten runs). With this one registered
/// beside the capturing subscriber, each event asks its own thread's.
fn keep_callsites_sometimes() {
    struct Anchor;
    impl tracing::Subscriber for Anchor {
        fn register_callsite(&self, _: &tracing::Metadata<'_>) -> tracing::subscriber::Interest {
            tracing::subscriber::Interest::sometimes()
        }
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            false
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, _: &tracing::Event<'_>) {}
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }
    static ANCHOR: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
    ANCHOR.get_or_init(|| tracing::Dispatch::new(Anchor));
}

#[tokio::test]
async fn one_json_line_per_request_without_the_secret_and_with_truncated_bodies() {
    keep_callsites_sometimes();
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (_, intake) = setup();
    let accepted = with_authorization(post(ORDER), &format!("Bearer {SECRET}"));
    let mut wrong = post(ORDER);
    wrong.query = vec![("token".into(), format!("{SECRET}x"))];
    let huge_invalid = format!(r#"{{"orderCollectionId":"{}""#, "9".repeat(5000));
    let basic_invalid = with_authorization(post(huge_invalid.clone()), &basic("u", SECRET));
    for request in [&accepted, &wrong, &basic_invalid] {
        intake.handle(request).await;
    }

    let raw = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(!raw.contains(SECRET), "{raw}");
    assert!(!raw.contains(&basic("u", SECRET)[6..]), "{raw}");
    assert!(!raw.to_ascii_lowercase().contains("authorization"), "{raw}");

    let lines = log_lines(&captured);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["requestId"], accepted.request_id.as_str());
    let accepted = &lines[0];
    assert_eq!(accepted["kind"], "order");
    assert_eq!(accepted["orderId"], 123);
    assert_eq!(accepted["status"], 200);
    assert_eq!(accepted["outcome"], "accepted");
    assert!(accepted["latencyMs"].as_f64().is_some());
    assert_eq!(lines[1]["status"], 401);
    assert_eq!(lines[2]["status"], 400);
    assert_eq!(lines[2]["outcome"], "invalid");
    let body = lines[2]["body"].as_str().unwrap();
    assert!(body.chars().count() <= 257 && body.ends_with('…'), "{body}");
    assert!(body.starts_with(r#"{"orderCollectionId":"999"#));
}
