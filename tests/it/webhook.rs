//! The webhook Lambda handler against moto's SQS FIFO, fed events shaped the
//! way API Gateway (HTTP API 2.0, REST 1.0) and Function URLs send them.

use std::sync::Arc;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use base64::Engine as _;
use kode::intake::{Intake, PushSecret};
use kode::metrics::Metrics;
use kode::store::aws::SqsQueue;
use kode::Secret;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Value};

use crate::support;

const SECRET: &str = "it-push-secret-8c1f";

/// A FIFO queue of its own and an intake sending to it.
struct Fifo {
    client: aws_sdk_sqs::Client,
    url: String,
    intake: Intake,
}

/// One received message.
#[derive(Debug)]
struct Received {
    group: String,
    dedup_id: String,
    envelope: Value,
}

impl Fifo {
    async fn new() -> Fifo {
        let sdk = support::aws_config().await;
        let client = aws_sdk_sqs::Client::new(&sdk);
        let name = format!("{}.fifo", support::unique_name("webhook"));
        let url = client
            .create_queue()
            .queue_name(name)
            .attributes(QueueAttributeName::FifoQueue, "true")
            .send()
            .await
            .expect("create FIFO queue in moto")
            .queue_url
            .expect("queue url");
        let queue = SqsQueue::new(&sdk, url.clone());
        Fifo {
            intake: intake(queue),
            client,
            url,
        }
    }

    async fn push(&self, event: Value) -> webhook::HttpResponse {
        let event = LambdaEvent::new(event, Context::default());
        webhook::handle(&self.intake, event)
            .await
            .expect("an HTTP response")
    }

    /// Every message now in the queue, each received once and deleted (a
    /// FIFO group stays blocked while one of its messages is in flight).
    async fn drain(&self) -> Vec<Received> {
        let mut all = Vec::new();
        loop {
            let output = self
                .client
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(10)
                .visibility_timeout(60)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .expect("receive");
            let messages = output.messages.unwrap_or_default();
            if messages.is_empty() {
                return all;
            }
            for message in messages {
                let attributes = message.attributes.clone().unwrap_or_default();
                let attribute = |name| attributes.get(&name).cloned().unwrap_or_default();
                all.push(Received {
                    group: attribute(MessageSystemAttributeName::MessageGroupId),
                    dedup_id: attribute(MessageSystemAttributeName::MessageDeduplicationId),
                    envelope: serde_json::from_str(message.body().unwrap_or_default())
                        .expect("envelope is JSON"),
                });
                self.client
                    .delete_message()
                    .queue_url(&self.url)
                    .receipt_handle(message.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("delete");
            }
        }
    }

    async fn remove(self) {
        let _ = self.client.delete_queue().queue_url(&self.url).send().await;
    }
}

fn intake(queue: SqsQueue) -> Intake {
    let secret = PushSecret::new(Secret::new(SECRET)).expect("secret");
    Intake::new(Arc::new(queue), secret)
}

/// How the request reached us, over the wire.
#[derive(Clone)]
struct Http<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    headers: Vec<(&'a str, String)>,
    body: &'a str,
    base64: bool,
    request_id: String,
}

fn post(body: &str) -> Http<'_> {
    Http {
        method: "POST",
        path: "/push",
        query: "",
        headers: vec![("authorization", format!("Bearer {SECRET}"))],
        body,
        base64: false,
        request_id: uuid::Uuid::new_v4().to_string(),
    }
}

impl Http<'_> {
    /// The same request sent again as a new HTTP request (new request id).
    fn resent(&self) -> Self {
        Http {
            request_id: uuid::Uuid::new_v4().to_string(),
            ..self.clone()
        }
    }

    fn body_field(&self) -> Value {
        if self.base64 {
            json!(base64::engine::general_purpose::STANDARD.encode(self.body))
        } else {
            json!(self.body)
        }
    }

    fn header_map(&self) -> Value {
        let mut headers = serde_json::Map::new();
        headers.insert("content-type".into(), json!("application/json"));
        headers.insert(
            "user-agent".into(),
            json!("Apache-HttpClient/4.5.13 (Java/17)"),
        );
        headers.insert("x-forwarded-proto".into(), json!("https"));
        for (name, value) in &self.headers {
            headers.insert((*name).into(), json!(value));
        }
        Value::Object(headers)
    }

    fn query_map(&self) -> Value {
        let pairs = kode::intake::query_pairs(self.query);
        Value::Object(pairs.into_iter().map(|(k, v)| (k, json!(v))).collect())
    }

    /// API Gateway HTTP API, payload format 2.0.
    fn http_api(&self) -> Value {
        let mut event = json!({
            "version": "2.0",
            "routeKey": format!("{} {}", self.method, self.path),
            "rawPath": self.path,
            "rawQueryString": self.query,
            "headers": self.header_map(),
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "abc123",
                "domainName": "abc123.execute-api.eu-north-1.amazonaws.com",
                "domainPrefix": "abc123",
                "http": {
                    "method": self.method,
                    "path": self.path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": "185.12.1.2",
                    "userAgent": "Apache-HttpClient/4.5.13 (Java/17)"
                },
                "requestId": self.request_id,
                "routeKey": format!("{} {}", self.method, self.path),
                "stage": "$default",
                "time": "21/Apr/2024:15:08:21 +0000",
                "timeEpoch": 1713712101067u64
            },
            "body": self.body_field(),
            "isBase64Encoded": self.base64
        });
        if !self.query.is_empty() {
            event["queryStringParameters"] = self.query_map();
        }
        event
    }

    /// Lambda Function URL (payload 2.0 on a `lambda-url` domain).
    fn function_url(&self) -> Value {
        json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": self.path,
            "rawQueryString": self.query,
            "headers": self.header_map(),
            "queryStringParameters": if self.query.is_empty() { Value::Null } else { self.query_map() },
            "requestContext": {
                "accountId": "anonymous",
                "apiId": "x7kq2",
                "authorizer": null,
                "domainName": "x7kq2.lambda-url.eu-north-1.on.aws",
                "domainPrefix": "x7kq2",
                "http": {
                    "method": self.method,
                    "path": self.path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": "185.12.1.2",
                    "userAgent": "Apache-HttpClient/4.5.13 (Java/17)"
                },
                "requestId": self.request_id,
                "routeKey": "$default",
                "stage": "$default",
                "time": "21/Apr/2024:15:08:21 +0000",
                "timeEpoch": 1713712101067u64
            },
            "body": self.body_field(),
            "pathParameters": null,
            "isBase64Encoded": self.base64,
            "stageVariables": null
        })
    }

    /// API Gateway REST API, payload format 1.0.
    fn rest(&self) -> Value {
        let headers = self.header_map();
        let multi_headers: serde_json::Map<String, Value> = headers
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), json!([v])))
            .collect();
        let query = self.query_map();
        let multi_query: serde_json::Map<String, Value> = query
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), json!([v])))
            .collect();
        let empty = self.query.is_empty();
        json!({
            "resource": "/push",
            "path": self.path,
            "httpMethod": self.method,
            "headers": headers,
            "multiValueHeaders": multi_headers,
            "queryStringParameters": if empty { Value::Null } else { query },
            "multiValueQueryStringParameters": if empty { Value::Null } else { Value::Object(multi_query) },
            "pathParameters": null,
            "stageVariables": null,
            "requestContext": {
                "accountId": "123456789012",
                "resourceId": "us4z18",
                "stage": "prod",
                "requestId": self.request_id,
                "identity": {"sourceIp": "185.12.1.2", "userAgent": "Apache-HttpClient/4.5.13 (Java/17)"},
                "resourcePath": "/push",
                "httpMethod": self.method,
                "apiId": "wt6mne2s9k",
                "path": format!("/prod{}", self.path)
            },
            "body": self.body_field(),
            "isBase64Encoded": self.base64
        })
    }
}

const ORDER_42: &str = r#"{"orderCollectionId":42,"status":"UPDATED","reference":"Oppdrag 17"}"#;

#[tokio::test]
async fn valid_push_lands_once_in_its_order_group_with_the_envelope() {
    let fifo = Fifo::new().await;
    let request = post(ORDER_42);
    let response = fifo.push(request.http_api()).await;

    assert_eq!(response.status_code(), 200);
    assert_eq!(
        response.body_json(),
        json!({"accepted": true, "kind": "order", "orderId": 42})
    );
    let received = fifo.drain().await;
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].group, "order-42");
    assert_eq!(received[0].dedup_id, request.request_id);
    let envelope = &received[0].envelope;
    assert_eq!(envelope["v"], 1);
    assert_eq!(envelope["kind"], "order");
    assert_eq!(
        envelope["push"],
        serde_json::from_str::<Value>(ORDER_42).unwrap()
    );
    let received_at = envelope["receivedAt"].as_str().unwrap_or_default();
    assert!(
        received_at.parse::<jiff::Timestamp>().is_ok(),
        "{received_at}"
    );
    fifo.remove().await;
}

#[tokio::test]
async fn the_same_body_pushed_twice_is_two_messages() {
    let fifo = Fifo::new().await;
    for _ in 0..2 {
        assert_eq!(
            fifo.push(post(ORDER_42).http_api()).await.status_code(),
            200
        );
    }
    let received = fifo.drain().await;
    assert_eq!(received.len(), 2, "{received:?}");
    assert!(received.iter().all(|m| m.group == "order-42"));
    assert_ne!(received[0].dedup_id, received[1].dedup_id);
    fifo.remove().await;
}

#[tokio::test]
async fn a_redelivered_event_of_the_same_request_is_queued_once() {
    let fifo = Fifo::new().await;
    let request = post(ORDER_42);
    for _ in 0..2 {
        assert_eq!(fifo.push(request.http_api()).await.status_code(), 200);
    }
    assert_eq!(fifo.drain().await.len(), 1);
    fifo.remove().await;
}

#[tokio::test]
async fn pushes_of_two_orders_land_in_two_groups() {
    let fifo = Fifo::new().await;
    let other = r#"{"orderId":"7","status":"NEW"}"#;
    assert_eq!(
        fifo.push(post(ORDER_42).http_api()).await.status_code(),
        200
    );
    assert_eq!(
        fifo.push(post(other).function_url()).await.status_code(),
        200
    );
    let mut groups: Vec<String> = fifo.drain().await.into_iter().map(|m| m.group).collect();
    groups.sort();
    assert_eq!(groups, ["order-42", "order-7"]);
    fifo.remove().await;
}

#[tokio::test]
async fn distributor_message_lands_in_the_distributor_group() {
    let fifo = Fifo::new().await;
    let body = r#"{"eventType":"DistributorMessages","eventAction":"Created","content":{"id":"m-1","type":"CUSTOMER","message":"Levert"}}"#;
    let response = fifo.push(post(body).http_api()).await;
    assert_eq!(response.status_code(), 200);
    let received = fifo.drain().await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].group, "distributor-messages");
    assert_eq!(received[0].envelope["kind"], "distributor");
    fifo.remove().await;
}

#[tokio::test]
async fn every_carrier_and_event_shape_is_accepted_including_base64_bodies() {
    let fifo = Fifo::new().await;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("kode:{SECRET}"));
    let token_query = format!("token={SECRET}");
    let mut by_token = post(ORDER_42);
    by_token.headers.clear();
    by_token.query = &token_query;
    let mut by_basic = post(ORDER_42);
    by_basic.headers = vec![("authorization", format!("Basic {basic}"))];
    let mut base64_body = post(ORDER_42);
    base64_body.base64 = true;

    let events = [
        ("token, HTTP API", by_token.http_api()),
        ("token, Function URL", by_token.resent().function_url()),
        ("token, REST", by_token.resent().rest()),
        ("basic, Function URL", by_basic.function_url()),
        ("bearer, REST", post(ORDER_42).rest()),
        ("base64, Function URL", base64_body.function_url()),
        ("base64, HTTP API", base64_body.resent().http_api()),
    ];
    for (name, event) in &events {
        let response = fifo.push(event.clone()).await;
        assert_eq!(
            response.status_code(),
            200,
            "{name}: {:?}",
            response.body_json()
        );
    }
    let received = fifo.drain().await;
    assert_eq!(received.len(), events.len());
    let push: Value = serde_json::from_str(ORDER_42).unwrap();
    assert!(received.iter().all(|m| m.envelope["push"] == push));
    fifo.remove().await;
}

#[tokio::test]
async fn responses_have_the_shape_of_their_transport() {
    let fifo = Fifo::new().await;
    let rest = serde_json::to_value(fifo.push(post(ORDER_42).rest()).await).unwrap();
    assert_eq!(rest["statusCode"], 200);
    assert_eq!(rest["headers"]["content-type"], "application/json");
    assert!(rest.get("multiValueHeaders").is_some());
    let url = serde_json::to_value(fifo.push(post(ORDER_42).function_url()).await).unwrap();
    assert_eq!(url["statusCode"], 200);
    assert_eq!(url["headers"]["content-type"], "application/json");
    let body: Value = serde_json::from_str(url["body"].as_str().unwrap_or_default()).unwrap();
    assert_eq!(body["accepted"], true);
    fifo.remove().await;
}

#[tokio::test]
async fn each_rejection_has_its_status_and_leaves_the_queue_empty() {
    let fifo = Fifo::new().await;
    let big = format!(
        r#"{{"orderCollectionId":42,"status":"UPDATED","pad":"{}"}}"#,
        "x".repeat(64 * 1024)
    );
    let mut no_secret = post(ORDER_42);
    no_secret.headers.clear();
    let mut wrong_secret = post(ORDER_42);
    wrong_secret.headers = vec![("authorization", format!("Bearer {SECRET}-not"))];
    let wrong_token = "token=guess";
    let mut wrong_query = post(ORDER_42);
    wrong_query.headers.clear();
    wrong_query.query = wrong_token;
    let mut get = post(ORDER_42);
    get.method = "GET";
    let mut put = post(ORDER_42);
    put.method = "PUT";

    let cases = [
        ("no secret", no_secret.http_api(), 401),
        ("wrong bearer", wrong_secret.function_url(), 401),
        ("wrong token", wrong_query.rest(), 401),
        ("GET", get.http_api(), 405),
        ("PUT", put.function_url(), 405),
        ("64 KiB + more", post(&big).http_api(), 413),
        (
            "invalid JSON",
            post("{\"orderCollectionId\":").http_api(),
            400,
        ),
        ("not an object", post("[42]").function_url(), 400),
        ("no order id", post(r#"{"status":"NEW"}"#).rest(), 400),
        (
            "non-numeric order id",
            post(r#"{"orderCollectionId":"abc","status":"NEW"}"#).http_api(),
            400,
        ),
        ("unknown shape", post(r#"{"hello":"kode"}"#).http_api(), 400),
    ];
    for (name, event, status) in cases {
        let response = fifo.push(event).await;
        assert_eq!(response.status_code(), status, "{name}");
        if status == 400 {
            let error = response.body_json()["error"].as_str().map(str::to_owned);
            assert!(error.is_some_and(|e| !e.is_empty()), "{name}");
        }
    }
    assert!(fifo.drain().await.is_empty());
    fifo.remove().await;
}

#[tokio::test]
async fn unreachable_sqs_is_503() {
    let sdk = support::aws_config().await;
    let config = aws_sdk_sqs::config::Builder::from(&sdk)
        .endpoint_url("http://127.0.0.1:1")
        .build();
    let queue = SqsQueue::from_client(
        aws_sdk_sqs::Client::from_conf(config),
        "http://127.0.0.1:1/123456789012/nowhere.fifo",
    );
    let intake = intake(queue);
    let event = LambdaEvent::new(post(ORDER_42).http_api(), Context::default());
    let response = webhook::handle(&intake, event).await.expect("a response");
    assert_eq!(response.status_code(), 503);
    assert!(response.body_json()["error"].is_string());
}

const OUTCOMES: [&str; 5] = [
    "PushesAccepted",
    "PushesUnauthorized",
    "PushesInvalid",
    "PushesTooLarge",
    "PushesQueueFailed",
];

/// Of each metric line an intake emitted: its stack and the one outcome
/// counted 1 (every line declares all five, the others 0).
fn counted_outcomes(metrics: &Metrics) -> Vec<(String, String)> {
    metrics
        .lines()
        .iter()
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("an EMF line is JSON");
            let directive = &v["_aws"]["CloudWatchMetrics"][0];
            assert_eq!(directive["Namespace"], "KodePush", "{line}");
            assert_eq!(directive["Dimensions"], json!([["Stack"]]), "{line}");
            let declared: Vec<&str> = directive["Metrics"]
                .as_array()
                .expect("declared metrics")
                .iter()
                .map(|m| m["Name"].as_str().expect("a name"))
                .collect();
            assert_eq!(declared, OUTCOMES, "{line}");
            let ones: Vec<&str> = OUTCOMES
                .into_iter()
                .filter(|name| v[*name].as_f64() == Some(1.0))
                .collect();
            let zeros = OUTCOMES
                .iter()
                .filter(|name| v[**name].as_f64() == Some(0.0))
                .count();
            assert_eq!((ones.len(), zeros), (1, 4), "{line}");
            let stack = v["Stack"].as_str().expect("the stack dimension");
            (stack.to_owned(), ones[0].to_owned())
        })
        .collect()
}

#[tokio::test]
async fn every_push_is_counted_by_outcome_under_the_stack() {
    let fifo = Fifo::new().await;
    let sdk = support::aws_config().await;
    let metrics = Metrics::memory("it-stack");
    let up = intake(SqsQueue::new(&sdk, fifo.url.clone())).with_metrics(metrics.clone());
    let send = |event: Value| {
        let up = &up;
        async move {
            let event = LambdaEvent::new(event, Context::default());
            webhook::handle(up, event)
                .await
                .expect("a response")
                .status_code()
        }
    };
    let mut no_secret = post(ORDER_42);
    no_secret.headers.clear();
    let big = format!(
        r#"{{"orderCollectionId":42,"pad":"{}"}}"#,
        "x".repeat(64 * 1024)
    );
    let mut get = post(ORDER_42);
    get.method = "GET";
    let mut health = post("");
    health.method = "GET";
    health.path = "/healthz";

    assert_eq!(send(post(ORDER_42).function_url()).await, 200);
    assert_eq!(send(no_secret.http_api()).await, 401);
    assert_eq!(send(post("[42]").rest()).await, 400);
    assert_eq!(send(post(&big).http_api()).await, 413);
    // Not pushes: neither counted nor an outcome metric.
    assert_eq!(send(get.function_url()).await, 405);
    assert_eq!(send(health.http_api()).await, 200);

    let unreachable = aws_sdk_sqs::config::Builder::from(&sdk)
        .endpoint_url("http://127.0.0.1:1")
        .build();
    let down = SqsQueue::from_client(
        aws_sdk_sqs::Client::from_conf(unreachable),
        "http://127.0.0.1:1/123456789012/nowhere.fifo",
    );
    let down = intake(down).with_metrics(metrics.clone());
    let event = LambdaEvent::new(post(ORDER_42).http_api(), Context::default());
    assert_eq!(
        webhook::handle(&down, event).await.unwrap().status_code(),
        503
    );

    // One line per push, in the order sent: the five outcomes above.
    assert_eq!(
        counted_outcomes(&metrics),
        OUTCOMES.map(|name| ("it-stack".to_owned(), name.to_owned())),
    );
    assert_eq!(fifo.drain().await.len(), 1);
    fifo.remove().await;
}

#[tokio::test]
async fn events_that_are_not_http_are_an_invocation_error() {
    let fifo = Fifo::new().await;
    let sqs_event = json!({"Records": [{"messageId": "1", "body": ORDER_42}]});
    let result = webhook::handle(
        &fifo.intake,
        LambdaEvent::new(sqs_event, Context::default()),
    )
    .await;
    assert!(matches!(
        result,
        Err(webhook::WebhookError::UnsupportedEvent(_))
    ));
    assert!(fifo.drain().await.is_empty());
    fifo.remove().await;
}

#[tokio::test]
async fn push_secret_is_read_from_secrets_manager_plain_or_json() {
    let sdk = support::aws_config().await;
    let client = aws_sdk_secretsmanager::Client::new(&sdk);
    for (value, expected) in [
        ("plain-push-secret", "plain-push-secret"),
        (r#"{"token":"json-push-secret"}"#, "json-push-secret"),
    ] {
        let arn = client
            .create_secret()
            .name(support::unique_name("push-secret"))
            .secret_string(value)
            .send()
            .await
            .expect("create secret in moto")
            .arn
            .expect("arn");
        // The ARN wins over PUSH_TOKEN.
        let secret = PushSecret::load(Some(arn.clone()), Some("from-env".into()), &sdk)
            .await
            .expect("secret loads");
        assert!(secret.matches(expected.as_bytes()));
        assert!(!secret.matches(b"from-env"));
        let _ = client
            .delete_secret()
            .secret_id(arn)
            .force_delete_without_recovery(true)
            .send()
            .await;
    }
    let missing = PushSecret::load(
        Some("arn:aws:secretsmanager:eu-north-1:123456789012:secret:nope".into()),
        None,
        &sdk,
    )
    .await
    .unwrap_err();
    assert!(missing.to_string().contains("PUSH_SECRET_ARN"), "{missing}");
}
