//! The sample events in `infra/events/` (for `cargo lambda invoke
//! --data-file` and `sam local invoke -e`) are what Lambda would deliver and
//! carry pushes the handlers accept, so trying a function with them tests the
//! function, not the sample.

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use aws_lambda_events::event::sqs::SqsEvent;
use kode::model::{Push, PushKind};
use serde_json::Value;

const WEBHOOK_ORDER: &str = include_str!("../../infra/events/webhook-function-url.json");
const WEBHOOK_DISTRIBUTOR: &str =
    include_str!("../../infra/events/webhook-function-url-distributor.json");
const PROCESSOR: &str = include_str!("../../infra/events/processor-sqs.json");

fn url_request(json: &str) -> LambdaFunctionUrlRequest {
    serde_json::from_str(json).expect("a Function URL event aws_lambda_events can read")
}

fn pushed(request: &LambdaFunctionUrlRequest) -> Push {
    assert!(!request.is_base64_encoded);
    let body = request.body.as_deref().expect("a body");
    Push::from_slice(body.as_bytes()).expect("a push the webhook accepts")
}

#[test]
fn webhook_samples_are_authorised_push_posts() {
    for (json, kind) in [
        (WEBHOOK_ORDER, PushKind::Order),
        (WEBHOOK_DISTRIBUTOR, PushKind::Distributor),
    ] {
        let request = url_request(json);
        assert_eq!(request.request_context.http.method.as_deref(), Some("POST"));
        assert_eq!(request.raw_path.as_deref(), Some("/push"));
        assert!(request.query_string_parameters.contains_key("token"));
        assert!(request.request_context.request_id.is_some());
        assert_eq!(pushed(&request).kind(), kind);
    }
}

#[test]
fn processor_sample_holds_the_envelopes_the_webhook_enqueues() {
    let event: SqsEvent = serde_json::from_str(PROCESSOR).expect("an SQS event");
    let requests = [url_request(WEBHOOK_ORDER), url_request(WEBHOOK_DISTRIBUTOR)];
    assert_eq!(event.records.len(), requests.len());
    for (record, request) in event.records.iter().zip(&requests) {
        assert!(record.message_id.is_some(), "batch item failures need it");
        assert!(record
            .event_source_arn
            .as_deref()
            .is_some_and(|arn| arn.ends_with(".fifo")));
        let envelope: Value =
            serde_json::from_str(record.body.as_deref().expect("a body")).expect("JSON");
        assert_eq!(envelope["v"], 1);
        assert!(envelope["receivedAt"].as_str().is_some());
        let push = Push::from_value(&envelope["push"]).expect("a push");
        assert_eq!(push, pushed(request));
        let kind: PushKind = serde_json::from_value(envelope["kind"].clone()).expect("a kind");
        assert_eq!(kind, push.kind());
        assert_eq!(
            record.attributes.get("MessageGroupId"),
            Some(&push.message_group())
        );
        assert_eq!(
            record.attributes.get("MessageDeduplicationId"),
            request.request_context.request_id.as_ref(),
            "deduplicated by the HTTP request id, never by body"
        );
    }
}
