//! The sweep on AWS: `kode::sweep::Sweep` over the DynamoDB ledger's
//! open-orders index into the FIFO queue, then the processor Lambda's
//! handler on what it sent, against the fake KODE.

use std::time::Duration;

use fake_kode::{samples, AssetSpec, Endpoint, OrderSpec};
use kode::envelope::SweepEnvelope;
use kode::metrics::Metrics;
use kode::model::OrderId;
use kode::store::aws::SqsQueue;
use kode::store::Ledger;
use kode::sweep::{Sweep, SweepSummary};

use super::harness::{Ack, Env};
use super::stored::{assets_of, content};

fn small_order(id: u64) -> OrderSpec {
    let mut order = samples::meglerpakke_order(id);
    let sub = &mut order.sub_orders[0];
    sub.assets.truncate(1);
    sub.lines.clear();
    order
}

impl Env {
    pub(super) async fn sweep(&self) -> SweepSummary {
        let queue = SqsQueue::from_client(self.sqs.clone(), &self.queue_url);
        Sweep {
            ledger: &self.ledger,
            queue: &queue,
            interval: Duration::ZERO,
            metrics: Metrics::Off,
        }
        .run(jiff::Timestamp::now())
        .await
        .expect("sweep")
    }

    pub(super) async fn open(&self) -> Vec<u64> {
        let now = kode::model::stamp(jiff::Timestamp::now());
        let open = self.ledger.open_orders(&now).await.expect("open orders");
        open.iter().map(|o| o.order_id.0).collect()
    }

    async fn late_file(&self, order: &mut OrderSpec, id: &str) -> AssetSpec {
        let asset = AssetSpec::ok(id, &format!("{id}.pdf"), content(20_000, 9));
        let sub = order.sub_orders[0].id;
        self.fake.add_asset(order.id, sub, None, asset.clone());
        order.sub_orders[0].assets.push(asset.clone());
        asset
    }
}

fn ids(orders: &[OrderId]) -> Vec<u64> {
    orders.iter().map(|o| o.0).collect()
}

#[tokio::test]
async fn a_file_whose_push_was_lost_is_stored_after_one_sweep() {
    let env = Env::start().await;
    let mut order = small_order(7301);
    env.fake.add_order(order.clone());
    env.send_order(7301, "NEW").await;
    assert!(env.deliver(1, Ack::Yes).await.failed.is_empty());
    let late = env.late_file(&mut order, "late-7301").await;

    // The UPDATED push for it never comes.
    let summary = env.sweep().await;
    assert_eq!(ids(&summary.enqueued), [7301]);
    let delivery = env.deliver(1, Ack::Yes).await;
    assert!(delivery.failed.is_empty(), "{:?}", delivery.failed);
    let sub = order.sub_orders[0].id;
    env.assert_stored(7301, sub, None, &late).await;
    let record = env.order_record(7301).await.expect("order record");
    assert_eq!(record.last_status.as_deref(), Some("NEW"), "status kept");
    assert!(record.swept_at.is_some());
    env.cleanup().await;
}

#[tokio::test]
async fn a_finished_order_is_still_swept_and_its_late_file_stored() {
    let env = Env::start().await;
    let mut order = small_order(7302);
    env.fake.add_order(order.clone());
    env.send_order(7302, "FINISHED").await;
    assert!(env.deliver(1, Ack::Yes).await.failed.is_empty());
    assert_eq!(env.open().await, [7302]);
    let late = env.late_file(&mut order, "late-7302").await;

    assert_eq!(ids(&env.sweep().await.enqueued), [7302]);
    assert!(env.deliver(1, Ack::Yes).await.failed.is_empty());
    env.assert_stored(7302, order.sub_orders[0].id, None, &late)
        .await;
    let record = env.order_record(7302).await.expect("order record");
    assert_eq!(record.last_status.as_deref(), Some("FINISHED"));
    env.cleanup().await;
}

#[tokio::test]
async fn a_cancelled_and_purged_order_is_not_fetched_by_a_sweep() {
    let env = Env::start().await;
    let order = small_order(7303);
    env.fake.add_order(order.clone());
    env.send_order(7303, "NEW").await;
    assert!(env.deliver(1, Ack::Yes).await.failed.is_empty());
    env.fake.set_order_status(7303, "CANCELLED");
    env.send_order(7303, "CANCELLED").await;
    assert!(env.deliver(1, Ack::Yes).await.failed.is_empty());
    assert!(env.keys("orders/7303/").await.is_empty());
    let fetched = env.fake.requests(Endpoint::GetOrder);

    assert!(env.sweep().await.enqueued.is_empty());
    assert!(env.open().await.is_empty());
    // A sweep message listed just before the purge changes nothing either.
    let message = SweepEnvelope::new(OrderId(7303), jiff::Timestamp::now().to_string());
    env.sqs
        .send_message()
        .queue_url(&env.queue_url)
        .message_body(message.encode())
        .message_group_id("order-7303")
        .message_deduplication_id("late-sweep-7303")
        .send()
        .await
        .expect("send");
    assert!(env.deliver(1, Ack::Yes).await.failed.is_empty());
    assert_eq!(env.fake.requests(Endpoint::GetOrder), fetched);
    assert!(env.keys("orders/7303/").await.is_empty());
    env.cleanup().await;
}

#[tokio::test]
async fn a_file_refused_at_first_is_stored_by_a_sweep_once_kode_serves_it() {
    let env = Env::start().await;
    let order = small_order(7304);
    let asset = order.sub_orders[0].assets[0].clone();
    env.fake.add_order(order.clone());
    env.fake.fail_next(Endpoint::Asset, 1, 404);
    env.send_order(7304, "NEW").await;
    // The push's only run records the refused file FAILED and succeeds; no
    // push of the order comes again.
    assert!(env.deliver(1, Ack::Yes).await.failed.is_empty());
    assert!(env.keys("orders/7304/").await.is_empty());

    assert_eq!(ids(&env.sweep().await.enqueued), [7304]);
    assert!(env.deliver(1, Ack::Yes).await.failed.is_empty());
    env.assert_stored(7304, order.sub_orders[0].id, None, &asset)
        .await;
    env.cleanup().await;
}

#[tokio::test]
async fn an_order_kode_no_longer_knows_is_closed_after_three_misses_without_failing() {
    let env = Env::start().await;
    let order = small_order(7305);
    env.fake.add_order(order.clone());
    env.send_order(7305, "UPDATED").await;
    assert!(env.deliver(1, Ack::Yes).await.failed.is_empty());
    assert_eq!(
        assets_of(&order).len(),
        env.keys("orders/7305/").await.len()
    );

    env.fake.fail_next(Endpoint::GetOrder, 3, 404);
    for miss in 1..=3 {
        assert_eq!(ids(&env.sweep().await.enqueued), [7305], "sweep {miss}");
        let delivery = env.deliver(1, Ack::Yes).await;
        assert!(delivery.failed.is_empty(), "a miss never fails the record");
        let record = env.order_record(7305).await.expect("order record");
        assert_eq!(record.sweep_misses, miss);
    }
    assert!(env.open().await.is_empty());
    assert!(env.sweep().await.enqueued.is_empty());
    let record = env.order_record(7305).await.expect("order record");
    assert!(record.sweep_closed_at.is_some());
    // Files stay: a 404 is no cancellation.
    assert_eq!(
        assets_of(&order).len(),
        env.keys("orders/7305/").await.len()
    );
    env.cleanup().await;
}
