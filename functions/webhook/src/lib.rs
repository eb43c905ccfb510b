//! The webhook Lambda: turns the HTTP event (API Gateway HTTP API 2.0,
//! Function URL, or REST API 1.0) into a `kode::intake` request and its
//! answer back into the matching response. All decisions live in
//! `kode::intake`, shared with `kode serve`.

mod event;

use std::time::Duration;

use kode::intake::Intake;
use kode::Deadline;
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use serde_json::Value;

pub use event::{HttpEvent, HttpResponse, Transport};

/// Why an invocation could not even be turned into an HTTP request. Never
/// retryable: the same event fails the same way.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("unsupported event: {0}")]
    UnsupportedEvent(String),
    #[error("malformed {kind} event: {problem}")]
    MalformedEvent { kind: &'static str, problem: String },
    #[error("the body is marked isBase64Encoded but is not valid base64")]
    InvalidBase64,
}

impl WebhookError {
    pub fn is_retryable(&self) -> bool {
        false
    }

    fn error_type(&self) -> &'static str {
        match self {
            WebhookError::UnsupportedEvent(_) => "UnsupportedEvent",
            WebhookError::MalformedEvent { .. } => "MalformedEvent",
            WebhookError::InvalidBase64 => "InvalidBase64",
        }
    }
}

impl From<WebhookError> for Diagnostic {
    fn from(error: WebhookError) -> Diagnostic {
        Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// The Lambda handler.
pub async fn handle(
    intake: &Intake,
    event: LambdaEvent<Value>,
) -> Result<HttpResponse, WebhookError> {
    let deadline = invocation_deadline(&event.context);
    let result = answer(intake, event.payload, deadline).await;
    if let Err(error) = &result {
        tracing::error!(
            lambdaRequestId = %event.context.request_id,
            errorType = error.error_type(),
            error = %error,
            "event rejected"
        );
    }
    result
}

async fn answer(
    intake: &Intake,
    payload: Value,
    deadline: Option<Deadline>,
) -> Result<HttpResponse, WebhookError> {
    let event = HttpEvent::from_value(payload)?;
    let transport = event.transport();
    let request = event.into_request()?;
    let handled = intake.handle_until(&request, deadline).await;
    Ok(HttpResponse::new(transport, &handled.response))
}

/// Time kept back from the invocation's end to answer and log.
const ANSWER_MARGIN: Duration = Duration::from_millis(1000);

/// The invocation's end minus the margin; `None` without a deadline (0, as
/// in tests and local invokes).
fn invocation_deadline(context: &Context) -> Option<Deadline> {
    Deadline::from_lambda_ms(context.deadline).map(|end| end.minus(ANSWER_MARGIN))
}

/// Why start-up configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set: {1}")]
    Missing(&'static str, &'static str),
    #[error("{0} is malformed: {1}")]
    Malformed(&'static str, &'static str),
}

/// `QUEUE_URL`: the push queue, which must be FIFO for per-order ordering.
pub fn queue_url(value: Option<String>) -> Result<String, ConfigError> {
    const NAME: &str = "QUEUE_URL";
    let value = value
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or(ConfigError::Missing(
            NAME,
            "the URL of the SQS FIFO push queue",
        ))?;
    if !(value.starts_with("https://") || value.starts_with("http://")) {
        return Err(ConfigError::Malformed(
            NAME,
            "expected an http(s) queue URL",
        ));
    }
    if !value.ends_with(".fifo") {
        return Err(ConfigError::Malformed(
            NAME,
            "expected a FIFO queue (URL ending in .fifo)",
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    use super::*;

    #[test]
    fn the_queue_send_ends_a_margin_before_the_invocation() {
        assert!(invocation_deadline(&Context::default()).is_none());
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let mut context = Context::default();
        context.deadline = u64::try_from((now + Duration::from_secs(3)).as_millis()).unwrap();
        let left = invocation_deadline(&context).unwrap().remaining();
        assert!(
            left <= Duration::from_secs(2) && !left.is_zero(),
            "{left:?}"
        );
    }

    #[test]
    fn queue_url_must_be_set_and_fifo() {
        let url = "https://sqs.eu-north-1.amazonaws.com/1/pushes.fifo";
        assert_eq!(queue_url(Some(url.into())).unwrap(), url);
        for bad in [
            None,
            Some(" "),
            Some("pushes.fifo"),
            Some("https://x/1/pushes"),
        ] {
            let err = queue_url(bad.map(str::to_owned)).unwrap_err();
            assert!(err.to_string().starts_with("QUEUE_URL"), "{err}");
        }
    }
}
