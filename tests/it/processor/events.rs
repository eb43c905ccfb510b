//! Downstream events through EventBridge on moto: a custom bus with a rule
//! that sends everything from `kode-push` to an SQS queue, read back as a
//! consumer would.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fake_kode::{AssetSpec, Endpoint, OrderSpec};
use kode::announce::{AnnounceError, Announcer, EventBridgeAnnouncer};
use kode::events::Event;
use kode::process::Announcing;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::harness::{Ack, Env};
use super::stored::{content, key_of};
use crate::support;

/// A bus, a rule and the queue the rule feeds.
struct Consumer {
    events: aws_sdk_eventbridge::Client,
    sqs: aws_sdk_sqs::Client,
    bus: String,
    rule: String,
    queue_url: String,
}

impl Consumer {
    async fn start() -> Consumer {
        let aws = support::aws_config().await;
        let events = aws_sdk_eventbridge::Client::new(&aws);
        let sqs = aws_sdk_sqs::Client::new(&aws);
        let bus = support::unique_name("events");
        events
            .create_event_bus()
            .name(&bus)
            .send()
            .await
            .expect("create bus");
        let queue_url = sqs
            .create_queue()
            .queue_name(support::unique_name("consumer"))
            .send()
            .await
            .expect("create queue")
            .queue_url
            .expect("queue URL");
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .and_then(|mut a| a.remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .expect("queue ARN");
        let rule = support::unique_name("to-queue");
        events
            .put_rule()
            .name(&rule)
            .event_bus_name(&bus)
            .event_pattern(json!({"source": ["kode-push"]}).to_string())
            .send()
            .await
            .expect("put rule");
        events
            .put_targets()
            .rule(&rule)
            .event_bus_name(&bus)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("queue")
                    .arn(queue_arn)
                    .build()
                    .expect("target"),
            )
            .send()
            .await
            .expect("put targets");
        Consumer {
            events,
            sqs,
            bus,
            rule,
            queue_url,
        }
    }

    fn announcer(&self) -> EventBridgeAnnouncer {
        EventBridgeAnnouncer::new(self.events.clone(), &self.bus)
    }

    /// Every EventBridge event in the queue now, oldest first.
    async fn received(&self) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            let output = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .expect("receive");
            let messages = output.messages.unwrap_or_default();
            if messages.is_empty() {
                return events;
            }
            for m in messages {
                events.push(serde_json::from_str(m.body().unwrap_or("")).expect("event JSON"));
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("delete");
            }
        }
    }

    async fn cleanup(self) {
        let _ = self
            .events
            .remove_targets()
            .rule(&self.rule)
            .event_bus_name(&self.bus)
            .ids("queue")
            .send()
            .await;
        let _ = self
            .events
            .delete_rule()
            .name(&self.rule)
            .event_bus_name(&self.bus)
            .send()
            .await;
        let _ = self.events.delete_event_bus().name(&self.bus).send().await;
        let _ = self
            .sqs
            .delete_queue()
            .queue_url(&self.queue_url)
            .send()
            .await;
    }
}

fn of_type<'a>(events: &'a [Value], detail_type: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["detail-type"] == detail_type)
        .collect()
}

async fn start(announcer: Arc<dyn Announcer>) -> Env {
    let mut env = Env::start().await;
    env.processor.announcing = Some(Announcing {
        announcer,
        bucket: Some(env.bucket.clone()),
    });
    env
}

#[tokio::test]
async fn an_orders_life_reaches_an_eventbridge_rule_once_per_change() {
    let consumer = Consumer::start().await;
    let env = start(Arc::new(consumer.announcer())).await;
    let first = AssetSpec::ok("ev-1", "Reguleringskart.pdf", content(40_000, 21));
    let second = AssetSpec::ok("ev-2", "Situasjonskart.pdf", content(9_000, 22));
    let mut order = OrderSpec::new(7201);
    order.sub_orders[0].assets = vec![first.clone(), second.clone()];
    env.fake.add_order(order);

    env.send_order(7201, "NEW").await;
    assert!(env.deliver(1, Ack::Yes).await.failed.is_empty());
    let events = consumer.received().await;
    let stored = of_type(&events, "Asset Stored");
    assert_eq!(stored.len(), 2, "{events:#?}");
    for event in &stored {
        assert_eq!(event["source"], "kode-push");
        let detail = &event["detail"];
        let key = kode::model::ObjectKey(detail["key"].as_str().unwrap().to_owned());
        let object = env.object(&key).await.expect("the announced object exists");
        assert_eq!(detail["sha256"], hex::encode(Sha256::digest(&object.body)));
        assert_eq!(detail["bytes"], object.body.len());
        assert_eq!(detail["bucket"], env.bucket.as_str());
        assert_eq!(detail["orderId"], 7201);
        assert_eq!(
            detail["eventId"],
            format!("7201:{}:stored", detail["assetId"].as_str().unwrap())
        );
    }

    env.fake.set_order_status(7201, "FINISHED");
    for _ in 0..2 {
        env.send_order(7201, "FINISHED").await;
        assert!(env.deliver(1, Ack::Yes).await.failed.is_empty());
    }
    let events = consumer.received().await;
    let completed = of_type(&events, "Order Completed");
    assert_eq!(events.len(), 1, "only the completion, once: {events:#?}");
    assert_eq!(completed[0]["detail"]["files"], 2);

    env.fake.set_asset_status("ev-2", "DELETED");
    env.send_order(7201, "UPDATED").await;
    assert!(env.deliver(1, Ack::Yes).await.failed.is_empty());
    let events = consumer.received().await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["detail-type"], "Asset Deleted");
    assert_eq!(events[0]["detail"]["key"], key_of(7201, &second).0);

    env.send_order(7201, "CANCELLED").await;
    assert!(env.deliver(1, Ack::Yes).await.failed.is_empty());
    let events = consumer.received().await;
    let purged = of_type(&events, "Order Purged");
    assert_eq!(purged.len(), 1, "{events:#?}");
    assert_eq!(
        purged[0]["detail"],
        json!({
            "eventId": "7201:purged",
            "orderId": 7201,
            "status": "CANCELLED",
            "files": 1,
            "keys": [key_of(7201, &first).0],
        })
    );
    assert_eq!(of_type(&events, "Asset Deleted").len(), 1);

    env.cleanup().await;
    consumer.cleanup().await;
}

/// Refuses while `refuse` is set, as a throttled or unreachable bus would.
struct Switchable {
    inner: EventBridgeAnnouncer,
    refuse: AtomicBool,
}

#[async_trait]
impl Announcer for Switchable {
    async fn announce(&self, events: &[Event]) -> Vec<Result<(), AnnounceError>> {
        if self.refuse.load(Ordering::SeqCst) {
            let error = AnnounceError::Unavailable("ThrottlingException".into());
            return events.iter().map(|_| Err(error.clone())).collect();
        }
        self.inner.announce(events).await
    }
}

#[tokio::test]
async fn an_announcement_that_fails_is_made_by_the_next_run_of_the_order() {
    let consumer = Consumer::start().await;
    let bus = Arc::new(Switchable {
        inner: consumer.announcer(),
        refuse: AtomicBool::new(true),
    });
    let env = start(bus.clone()).await;
    let asset = AssetSpec::ok("ev-late", "Kart.pdf", content(5_000, 23));
    let mut order = OrderSpec::new(7202);
    order.sub_orders[0].assets = vec![asset.clone()];
    env.fake.add_order(order);

    env.send_order(7202, "NEW").await;
    let delivery = env.deliver(1, Ack::Yes).await;
    assert!(delivery.failed.is_empty(), "the push does not fail");
    assert!(consumer.received().await.is_empty());
    assert!(env.object(&key_of(7202, &asset)).await.is_some());
    bus.refuse.store(false, Ordering::SeqCst);

    // The next push of the order, with nothing new to store.
    env.send_order(7202, "UPDATED").await;
    assert!(env.deliver(1, Ack::Yes).await.failed.is_empty());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let events = consumer.received().await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["detail"]["eventId"], "7202:ev-late:stored");

    env.send_order(7202, "UPDATED").await;
    assert!(env.deliver(1, Ack::Yes).await.failed.is_empty());
    assert!(consumer.received().await.is_empty(), "announced once");

    env.cleanup().await;
    consumer.cleanup().await;
}

#[tokio::test]
async fn a_purge_whose_announcement_failed_is_announced_by_a_sweep_without_asking_kode() {
    let consumer = Consumer::start().await;
    let bus = Arc::new(Switchable {
        inner: consumer.announcer(),
        refuse: AtomicBool::new(false),
    });
    let env = start(bus.clone()).await;
    let asset = AssetSpec::ok("ev-purge", "Kart.pdf", content(5_000, 24));
    let mut order = OrderSpec::new(7203);
    order.sub_orders[0].assets = vec![asset.clone()];
    env.fake.add_order(order);
    env.send_order(7203, "NEW").await;
    assert!(env.deliver(1, Ack::Yes).await.failed.is_empty());
    assert_eq!(consumer.received().await.len(), 1, "the stored file");

    bus.refuse.store(true, Ordering::SeqCst);
    env.fake.set_order_status(7203, "CANCELLED");
    env.send_order(7203, "CANCELLED").await;
    assert!(env.deliver(1, Ack::Yes).await.failed.is_empty());
    assert!(env.object(&key_of(7203, &asset)).await.is_none(), "purged");
    assert!(consumer.received().await.is_empty());
    assert_eq!(
        env.open().await,
        [7203],
        "purged, but open while its events wait"
    );

    bus.refuse.store(false, Ordering::SeqCst);
    let fetched = env.fake.requests(Endpoint::GetOrder);
    assert_eq!(env.sweep().await.enqueued, [kode::model::OrderId(7203)]);
    assert!(env.deliver(1, Ack::Yes).await.failed.is_empty());
    let events = consumer.received().await;
    assert_eq!(of_type(&events, "Order Purged").len(), 1, "{events:#?}");
    assert_eq!(of_type(&events, "Asset Deleted").len(), 1, "{events:#?}");
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_eq!(
        env.fake.requests(Endpoint::GetOrder),
        fetched,
        "a purged order is not fetched by a sweep"
    );
    assert!(env.open().await.is_empty(), "announced: no longer open");
    assert!(env.sweep().await.enqueued.is_empty());

    env.cleanup().await;
    consumer.cleanup().await;
}

#[tokio::test]
async fn a_failed_file_is_announced_when_it_fails_and_again_only_after_parking() {
    let consumer = Consumer::start().await;
    let mut env = start(Arc::new(consumer.announcer())).await;
    env.processor.failed = kode::sync::FailedPolicy {
        max_attempts: 2,
        retry_parked: false,
    };
    let asset = AssetSpec::ok("ev-404", "Kart.pdf", content(5_000, 25));
    let mut order = OrderSpec::new(7204);
    order.sub_orders[0].assets = vec![asset.clone()];
    env.fake.add_order(order);
    let attempts = |events: &[Value]| -> Vec<u64> {
        of_type(events, "Asset Failed")
            .iter()
            .map(|e| e["detail"]["attempts"].as_u64().unwrap())
            .collect()
    };

    env.fake.fail_next(Endpoint::Asset, 2, 404);
    env.send_order(7204, "NEW").await;
    assert!(env.deliver(1, Ack::Yes).await.failed.is_empty());
    let events = consumer.received().await;
    assert_eq!(attempts(&events), [1], "{events:#?}");
    assert_eq!(events[0]["detail"]["assetId"], "ev-404");
    env.send_order(7204, "UPDATED").await;
    assert!(env.deliver(1, Ack::Yes).await.failed.is_empty());
    assert!(
        consumer.received().await.is_empty(),
        "the second failure (which parks it) is not announced"
    );

    // `kode sync --retry-failed`: tried again after parking, fails again.
    env.processor.failed.retry_parked = true;
    env.fake.fail_next(Endpoint::Asset, 1, 404);
    env.send_order(7204, "UPDATED").await;
    assert!(env.deliver(1, Ack::Yes).await.failed.is_empty());
    let events = consumer.received().await;
    assert_eq!(attempts(&events), [3], "{events:#?}");

    env.send_order(7204, "UPDATED").await;
    assert!(env.deliver(1, Ack::Yes).await.failed.is_empty());
    let events = consumer.received().await;
    assert_eq!(of_type(&events, "Asset Stored").len(), 1, "{events:#?}");
    assert!(attempts(&events).is_empty());

    env.cleanup().await;
    consumer.cleanup().await;
}
