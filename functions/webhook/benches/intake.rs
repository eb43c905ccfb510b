//! The webhook's own cost per push: event JSON in, response JSON out,
//! through the real handler, with the log line formatted (to a sink) and an
//! in-memory queue, so no network time is counted.
//!
//! `cargo bench -p webhook` prints microseconds per push.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use kode::intake::{Intake, PushSecret};
use kode::store::{OutgoingMessage, Queue, StoreError};
use kode::Secret;
use lambda_runtime::{Context, LambdaEvent};

const PUSHES: usize = 100_000;
const WARM_UP: usize = 2_000;
const SECRET: &str = "0123456789abcdef0123456789abcdef";

/// Counts messages and keeps none, so memory stays flat.
#[derive(Default)]
struct CountingQueue(AtomicU64);

#[async_trait]
impl Queue for CountingQueue {
    async fn send(&self, message: &OutgoingMessage) -> Result<String, StoreError> {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        Ok(format!("{n}-{}", message.body.len()))
    }
}

fn event_bytes() -> Vec<u8> {
    let body = r#"{"orderCollectionId":6015423,"status":"UPDATED","reference":"Oppdrag 2024-117","technicalReference":"b7d0c3a2-5b9e-4c71-9d55-0e6f5f2a9a11"}"#;
    serde_json::to_vec(&serde_json::json!({
        "version": "2.0",
        "routeKey": "POST /push",
        "rawPath": "/push",
        "rawQueryString": "",
        "headers": {
            "authorization": format!("Bearer {SECRET}"),
            "content-type": "application/json",
            "content-length": body.len().to_string(),
            "host": "abc123.execute-api.eu-north-1.amazonaws.com",
            "user-agent": "Apache-HttpClient/4.5.13 (Java/17)",
            "x-amzn-trace-id": "Root=1-5e9f0c65-1de4d666d4dd26aced652b6c",
            "x-forwarded-for": "185.12.1.2",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https"
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.eu-north-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": "POST",
                "path": "/push",
                "protocol": "HTTP/1.1",
                "sourceIp": "185.12.1.2",
                "userAgent": "Apache-HttpClient/4.5.13 (Java/17)"
            },
            "requestId": "LV7fzho-PHcEJPw=",
            "routeKey": "POST /push",
            "stage": "$default",
            "time": "21/Apr/2024:15:08:21 +0000",
            "timeEpoch": 1713712101067u64
        },
        "body": body,
        "isBase64Encoded": false
    }))
    .unwrap_or_default()
}

fn main() {
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(std::io::sink)
        .finish();
    let _ = tracing::subscriber::set_global_default(subscriber);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let queue = Arc::new(CountingQueue::default());
    let secret = PushSecret::new(Secret::new(SECRET)).expect("non-empty secret");
    let intake = Intake::new(queue.clone(), secret);
    let event = event_bytes();

    let mut micros = Vec::with_capacity(PUSHES);
    runtime.block_on(async {
        for i in 0..WARM_UP + PUSHES {
            let started = Instant::now();
            let payload: serde_json::Value = serde_json::from_slice(&event).expect("event JSON");
            let response = webhook::handle(&intake, LambdaEvent::new(payload, Context::default()))
                .await
                .expect("handled");
            let out = serde_json::to_vec(&response).expect("response JSON");
            let elapsed = started.elapsed();
            assert_eq!(response.status_code(), 200);
            std::hint::black_box(out);
            if i >= WARM_UP {
                micros.push(elapsed.as_secs_f64() * 1e6);
            }
        }
    });

    assert_eq!(queue.0.load(Ordering::Relaxed), (WARM_UP + PUSHES) as u64);
    micros.sort_by(f64::total_cmp);
    let mean = micros.iter().sum::<f64>() / micros.len() as f64;
    let pct = |p: f64| micros[((micros.len() as f64 * p) as usize).min(micros.len() - 1)];
    println!(
        "webhook handler, {PUSHES} pushes (HTTP API 2.0 event, Bearer secret, in-memory queue, JSON log to sink): \
         mean {mean:.1} µs, p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs per push",
        pct(0.50),
        pct(0.99),
        micros[micros.len() - 1]
    );
}
