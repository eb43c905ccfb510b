//! [`Visibility`] on the push queue, and the queue's own visibility timeout
//! (the cap of the backoff), read once per cold start.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::QueueAttributeName;

use crate::redelivery::{Visibility, VisibilityError};

#[derive(Debug, Clone)]
pub struct SqsVisibility {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsVisibility {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> SqsVisibility {
        SqsVisibility {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// The queue's `VisibilityTimeout`.
    pub async fn queue_timeout(&self) -> Result<Duration, VisibilityError> {
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::VisibilityTimeout)
            .send()
            .await
            .map_err(|e| classify("GetQueueAttributes", e))?;
        output
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::VisibilityTimeout))
            .and_then(|secs| secs.parse().ok())
            .map(Duration::from_secs)
            .ok_or_else(|| {
                VisibilityError::Refused(format!(
                    "queue {} reports no VisibilityTimeout",
                    self.queue_url
                ))
            })
    }
}

#[async_trait]
impl Visibility for SqsVisibility {
    async fn set(&self, receipt_handle: &str, visibility: Duration) -> Result<(), VisibilityError> {
        // SQS takes whole seconds up to 12 h; the backoff stays far below.
        let seconds = i32::try_from(visibility.as_secs()).unwrap_or(i32::MAX);
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("ChangeMessageVisibility", e))
    }
}

/// Network trouble, timeouts, throttling and 5xx may pass; the rest will not.
fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(
    operation: &str,
    err: SdkError<E, HttpResponse>,
) -> VisibilityError {
    let retryable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status();
            status.is_server_error()
                || status.as_u16() == 429
                || service
                    .err()
                    .code()
                    .is_some_and(|code| code.contains("Throttl"))
        }
        _ => false,
    };
    let text = format!("SQS {operation}: {}", DisplayErrorContext(&err));
    if retryable {
        VisibilityError::Unavailable(text)
    } else {
        VisibilityError::Refused(text)
    }
}
