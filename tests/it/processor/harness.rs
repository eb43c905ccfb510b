//! One processor wired as in the Lambda (KodeClient + S3Blobs +
//! DynamoLedger) against moto and the fake KODE server, fed with SQS events
//! built from messages sent to and received from a real FIFO queue.
//! Checks on what was stored are in `stored.rs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use fake_kode::FakeKode;
use kode::api::{ApiConfig, Credentials, KodeClient};
use kode::envelope::Envelope;
use kode::model::{Push, PushKind};
use kode::process::Processor;
use kode::store::aws::{DynamoLedger, S3Blobs};
use kode::store::Ledger;
use kode::{Deadline, Secret};
use serde_json::{json, Value};

use crate::support;

/// Time given to one batch, as Lambda would (the margin is taken off it).
pub const BATCH_TIME: Duration = Duration::from_secs(60);
pub const MARGIN: Duration = Duration::from_secs(5);

pub struct Env {
    pub fake: FakeKode,
    pub ledger: DynamoLedger,
    pub(super) processor: Processor,
    pub(super) s3: aws_sdk_s3::Client,
    pub(super) bucket: String,
    pub(super) ddb: aws_sdk_dynamodb::Client,
    pub(super) sqs: aws_sdk_sqs::Client,
    pub(super) queue_url: String,
    pub(super) queue_arn: String,
}

/// One batch: what was received and what the handler reported failed.
pub struct Delivery {
    /// (messageId, receiptHandle) in the order received.
    pub received: Vec<(String, String)>,
    pub failed: Vec<String>,
}

impl Delivery {
    pub fn ids(&self) -> Vec<String> {
        self.received.iter().map(|(id, _)| id.clone()).collect()
    }
}

/// Whether the records that succeeded are deleted from the queue, as the
/// Lambda event source mapping does, or left in flight for a redelivery.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    Yes,
    No,
}

impl Env {
    pub async fn start() -> Env {
        Env::start_with(|ledger| Arc::new(ledger)).await
    }

    /// `wrap` may put a fault-injecting [`Ledger`] around the real one.
    pub async fn start_with(wrap: impl FnOnce(DynamoLedger) -> Arc<dyn Ledger>) -> Env {
        Env::start_configured(|_| {}, wrap).await
    }

    /// `adjust` changes the KODE client's settings (e.g. the size cap).
    pub async fn start_configured(
        adjust: impl FnOnce(&mut ApiConfig),
        wrap: impl FnOnce(DynamoLedger) -> Arc<dyn Ledger>,
    ) -> Env {
        let aws = support::aws_config().await;
        let fake = FakeKode::start().await;

        // moto answers a wrong CRC64NVME for multipart objects, which the
        // SDK would refuse when the tests read them back (the processor
        // itself never reads objects).
        let s3 = aws_sdk_s3::Client::from_conf(
            kode::aws::s3_client(&aws)
                .config()
                .to_builder()
                .response_checksum_validation(
                    aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
                )
                .build(),
        );
        let bucket = support::unique_name("processor");
        s3.create_bucket()
            .bucket(&bucket)
            .create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuNorth1)
                    .build(),
            )
            .send()
            .await
            .expect("create bucket");

        let ddb = aws_sdk_dynamodb::Client::new(&aws);
        let table = support::unique_name("processor-ledger");
        support::create_ledger_table(&ddb, &table).await;
        let ledger = DynamoLedger::new(ddb.clone(), &table);

        let sqs = aws_sdk_sqs::Client::new(&aws);
        let queue_url = sqs
            .create_queue()
            .queue_name(format!("{}.fifo", support::unique_name("pushes")))
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(QueueAttributeName::VisibilityTimeout, "60")
            .send()
            .await
            .expect("create FIFO queue")
            .queue_url
            .expect("queue URL");
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .expect("queue ARN");

        let mut config = api_config(&fake);
        adjust(&mut config);
        let kode = KodeClient::new(config).expect("KODE client");
        let blobs = S3Blobs::new(s3.clone(), &bucket);
        let processor = Processor::new(Arc::new(kode), Arc::new(blobs), wrap(ledger.clone()), 4);
        Env {
            fake,
            ledger,
            processor,
            s3,
            bucket,
            ddb,
            sqs,
            queue_url,
            queue_arn,
        }
    }

    // ---- queue ----

    /// Sends an order push the way the webhook does; returns the message id.
    pub async fn send_order(&self, order: u64, status: &str) -> String {
        self.send(json!({"orderCollectionId": order, "status": status}))
            .await
    }

    /// Sends any push body in an envelope, grouped as the webhook groups it.
    pub async fn send(&self, push: Value) -> String {
        let parsed = Push::from_value(&push).expect("a valid push");
        let kind: PushKind = parsed.kind();
        let envelope = Envelope::new(kind, jiff::Timestamp::now().to_string(), push);
        self.sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(serde_json::to_string(&envelope).expect("envelope JSON"))
            .message_group_id(parsed.message_group())
            .message_deduplication_id(uuid::Uuid::new_v4().simple().to_string())
            .send()
            .await
            .expect("send message")
            .message_id
            .expect("message id")
    }

    /// Receives exactly `count` messages and turns them into the event
    /// Lambda would hand the function.
    pub async fn receive(&self, count: usize) -> (SqsEvent, Vec<(String, String)>) {
        let mut records = Vec::new();
        let mut received = Vec::new();
        for _ in 0..50 {
            if received.len() >= count {
                break;
            }
            self.receive_once(count - received.len(), &mut records, &mut received)
                .await;
            if received.len() < count {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        assert_eq!(received.len(), count, "messages received from the queue");
        let event: SqsEvent =
            serde_json::from_value(json!({ "Records": records })).expect("an SQS event");
        (event, received)
    }

    /// What one receive gets right now (nothing if no message is visible),
    /// as an event.
    pub async fn receive_visible(&self) -> (SqsEvent, Vec<(String, String)>) {
        let mut records = Vec::new();
        let mut received = Vec::new();
        self.receive_once(10, &mut records, &mut received).await;
        let event: SqsEvent =
            serde_json::from_value(json!({ "Records": records })).expect("an SQS event");
        (event, received)
    }

    async fn receive_once(
        &self,
        max: usize,
        records: &mut Vec<Value>,
        received: &mut Vec<(String, String)>,
    ) {
        let output = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10.min(max) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive messages");
        for m in output.messages.unwrap_or_default() {
            let id = m.message_id.clone().expect("message id");
            let handle = m.receipt_handle.clone().expect("receipt handle");
            let attributes: HashMap<String, String> = m
                .attributes
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.as_str().to_owned(), v))
                .collect();
            records.push(json!({
                "messageId": id,
                "receiptHandle": handle,
                "body": m.body,
                "md5OfBody": m.md5_of_body,
                "attributes": attributes,
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": self.queue_arn,
                "awsRegion": "eu-north-1",
            }));
            received.push((id, handle));
        }
    }

    /// Receives `count` messages and runs them through the handler with
    /// the usual invocation time.
    pub async fn deliver(&self, count: usize, ack: Ack) -> Delivery {
        self.deliver_within(count, ack, BATCH_TIME, MARGIN).await
    }

    pub async fn deliver_within(
        &self,
        count: usize,
        ack: Ack,
        time: Duration,
        margin: Duration,
    ) -> Delivery {
        let (event, received) = self.receive(count).await;
        let response =
            ::processor::handle_batch(&self.processor, event, Deadline::after(time), margin)
                .await
                .expect("the batch is answered record by record");
        let failed: Vec<String> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        if ack == Ack::Yes {
            for (id, handle) in &received {
                if !failed.contains(id) {
                    self.sqs
                        .delete_message()
                        .queue_url(&self.queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .expect("delete message");
                }
            }
        }
        Delivery { received, failed }
    }

    /// Runs a received batch through the Lambda's handler with `backoff`
    /// applied to the queue, deleting what succeeded as Lambda does.
    pub async fn deliver_redelivering(
        &self,
        (event, received): (SqsEvent, Vec<(String, String)>),
        backoff: ::processor::Backoff,
        time: Duration,
        margin: Duration,
    ) -> Delivery {
        let redelivery = ::processor::Redelivery::new(
            backoff,
            Arc::new(::processor::SqsVisibility::new(
                self.sqs.clone(),
                &self.queue_url,
            )),
        );
        let response = ::processor::handle_batch_redelivering(
            &self.processor,
            &redelivery,
            event,
            Deadline::after(time),
            margin,
        )
        .await
        .expect("the batch is answered record by record");
        let failed: Vec<String> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        for (id, handle) in &received {
            if !failed.contains(id) {
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .expect("delete message");
            }
        }
        Delivery { received, failed }
    }

    /// Messages visible now (`ApproximateNumberOfMessages`), without
    /// receiving them.
    pub async fn visible_count(&self) -> u64 {
        self.sqs
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::ApproximateNumberOfMessages))
            .and_then(|n| n.parse().ok())
            .expect("ApproximateNumberOfMessages")
    }

    /// Sends a body that is not an envelope (the processor fails it at
    /// once) into `group`; returns the message id.
    pub async fn send_raw(&self, body: &str, group: &str) -> String {
        self.sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .message_group_id(group)
            .message_deduplication_id(uuid::Uuid::new_v4().simple().to_string())
            .send()
            .await
            .expect("send message")
            .message_id
            .expect("message id")
    }

    /// Makes the delivery's messages still in the queue visible again at
    /// once (as after their visibility timeout).
    pub async fn release(&self, delivery: &Delivery) {
        for (_, handle) in &delivery.received {
            // A deleted message has no receipt any more: that is fine.
            let _ = self
                .sqs
                .change_message_visibility()
                .queue_url(&self.queue_url)
                .receipt_handle(handle)
                .visibility_timeout(0)
                .send()
                .await;
        }
    }

    /// Removes the queue, the bucket's objects and the bucket, and the table.
    pub async fn cleanup(self) {
        let _ = self
            .sqs
            .delete_queue()
            .queue_url(&self.queue_url)
            .send()
            .await;
        for key in self.keys("").await {
            let _ = self
                .s3
                .delete_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await;
        }
        let _ = self.s3.delete_bucket().bucket(&self.bucket).send().await;
        let _ = self
            .ddb
            .delete_table()
            .table_name(self.ledger.table())
            .send()
            .await;
        self.fake.shutdown().await;
    }
}

pub(super) fn api_config(fake: &FakeKode) -> ApiConfig {
    let c = fake.credentials();
    let credentials = Credentials {
        client_id: c.client_id,
        client_secret: Secret::new(c.client_secret),
        username: c.username,
        password: Secret::new(c.password),
    };
    let mut config = ApiConfig::new(
        reqwest::Url::parse(&fake.base_url()).expect("fake base URL"),
        credentials,
    );
    config.request_timeout = Duration::from_secs(5);
    config
}
