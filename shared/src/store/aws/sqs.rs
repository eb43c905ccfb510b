//! The push queue on SQS FIFO.

use async_trait::async_trait;

use super::sdk_error::classify;
use crate::store::{OutgoingMessage, Queue, StoreError};

/// Sends pushes to one FIFO queue. Build once per cold start.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsQueue {
    pub fn new(config: &aws_config::SdkConfig, queue_url: impl Into<String>) -> SqsQueue {
        SqsQueue::from_client(aws_sdk_sqs::Client::new(config), queue_url)
    }

    pub fn from_client(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> SqsQueue {
        SqsQueue {
            client,
            queue_url: queue_url.into(),
        }
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, message: &OutgoingMessage) -> Result<String, StoreError> {
        let output = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(&message.body)
            .message_group_id(&message.group)
            .message_deduplication_id(&message.dedup_id)
            .send()
            .await
            .map_err(|e| classify("SQS SendMessage", e))?;
        // SQS always returns an id; an empty one would only hide a bug.
        output
            .message_id()
            .map(str::to_owned)
            .ok_or_else(|| StoreError::Unavailable("SQS accepted without a message id".into()))
    }
}
