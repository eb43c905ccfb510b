//! How soon records handed back by the Lambda's handler come back, on a
//! real FIFO queue (moto) whose own visibility timeout is 60 s: records not
//! started for the deadline in seconds, a failed record and the rest of its
//! group after a backoff that grows with the receive count.

use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsEvent;
use fake_kode::{AssetSpec, Endpoint, OrderSpec};
use processor::Backoff;

use super::harness::{Env, BATCH_TIME, MARGIN};
use super::stored::content;

/// Well below the queue's 60 s, after which the records would come back
/// without any change of visibility.
const PATIENCE: Duration = Duration::from_secs(30);

/// Polls until a receive gets something; returns it and how long that took.
async fn next_visible(env: &Env) -> ((SqsEvent, Vec<(String, String)>), Duration) {
    let started = Instant::now();
    loop {
        let got = env.receive_visible().await;
        if !got.1.is_empty() {
            return (got, started.elapsed());
        }
        assert!(
            started.elapsed() < PATIENCE,
            "nothing came back within {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn receive_counts(event: &SqsEvent) -> Vec<&str> {
    event
        .records
        .iter()
        .map(|r| r.attributes["ApproximateReceiveCount"].as_str())
        .collect()
}

#[tokio::test]
async fn records_not_started_for_the_deadline_come_back_in_seconds() {
    let env = Env::start().await;
    let mut sent = vec![
        env.send_order(7201, "NEW").await,
        env.send_order(7202, "NEW").await,
    ];
    let backoff = Backoff {
        deferred: Duration::from_secs(3),
        ..Backoff::new(Duration::from_secs(60))
    };
    // 1 s left against a 5 s margin: nothing starts.
    let batch = env.receive(2).await;
    let delivery = env
        .deliver_redelivering(batch, backoff, Duration::from_secs(1), MARGIN)
        .await;
    let mut failed = delivery.failed.clone();
    failed.sort();
    sent.sort();
    assert_eq!(failed, sent);
    assert!(
        env.receive_visible().await.1.is_empty(),
        "back before their visibility ran out"
    );

    let mut back = Vec::new();
    while back.len() < 2 {
        let ((event, received), _) = next_visible(&env).await;
        assert!(receive_counts(&event).iter().all(|c| *c == "2"));
        back.extend(received.into_iter().map(|(id, _)| id));
    }
    back.sort();
    assert_eq!(back, sent);
    assert_eq!(env.fake.requests(Endpoint::GetOrder), 0);
    env.cleanup().await;
}

#[tokio::test]
async fn a_failed_record_comes_back_after_a_backoff_growing_with_its_receive_count() {
    let env = Env::start().await;
    // Fails at once, every time: not an envelope.
    let bad = env.send_raw("not an envelope", "order-7203").await;
    let backoff = Backoff {
        first: Duration::from_secs(1),
        factor: 4,
        ..Backoff::new(Duration::from_secs(60))
    };

    // First receive failed: back after 1 s.
    let delivery = env
        .deliver_redelivering(env.receive(1).await, backoff, BATCH_TIME, MARGIN)
        .await;
    assert_eq!(delivery.failed, std::slice::from_ref(&bad));
    let (batch, _) = next_visible(&env).await;
    assert_eq!(batch.1[0].0, bad);
    assert_eq!(receive_counts(&batch.0), ["2"]);

    // Second receive failed: 4 s.
    let delivery = env
        .deliver_redelivering(batch, backoff, BATCH_TIME, MARGIN)
        .await;
    assert_eq!(delivery.failed, std::slice::from_ref(&bad));
    let (batch, took) = next_visible(&env).await;
    assert!(took >= Duration::from_secs(2), "back after {took:?}");
    assert_eq!(batch.1[0].0, bad);
    assert_eq!(receive_counts(&batch.0), ["3"]);
    env.cleanup().await;
}

#[tokio::test]
async fn the_rest_of_a_failed_group_comes_back_with_the_failed_record() {
    let env = Env::start().await;
    let mut order = OrderSpec::new(7204);
    order.sub_orders[0]
        .assets
        .push(AssetSpec::ok("backoff-2", "Kart.pdf", content(10_000, 21)));
    env.fake.add_order(order);
    let bad = env.send_raw("not an envelope", "order-7204").await;
    let good = env.send_order(7204, "UPDATED").await;
    let backoff = Backoff {
        first: Duration::from_secs(1),
        ..Backoff::new(Duration::from_secs(60))
    };
    let delivery = env
        .deliver_redelivering(env.receive(2).await, backoff, BATCH_TIME, MARGIN)
        .await;
    assert_eq!(delivery.failed, [bad, good]);
    // The later push never ran ahead of the failed one.
    assert_eq!(env.fake.requests(Endpoint::GetOrder), 0);

    // Both are visible again long before the queue's 60 s. Counted, not
    // received: when two in-flight messages of one group turn visible by
    // themselves, moto 5.2 hands out the later one first (it clears a
    // message's in-flight mark only when a receive passes it), which real
    // SQS does not; the order is pinned by the unit tests.
    let started = Instant::now();
    while env.visible_count().await < 2 {
        assert!(
            started.elapsed() < PATIENCE,
            "the group did not come back within {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    env.cleanup().await;
}
