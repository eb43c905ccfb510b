//! Failing KODE, broken downloads, hostile data and an injected crash.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fake_kode::{samples, AssetContent, AssetSpec, Endpoint, OrderSpec, Recorder};
use kode::events::{Event, EventScope};
use kode::model::{AssetId, OrderId};
use kode::model::{AssetRecord, AssetState, FailedAttempt, MessageRecord, OrderRecord};
use kode::store::aws::DynamoLedger;
use kode::store::{
    FailedAnnouncement, FailedOutcome, Ledger, OpenOrder, RecordOutcome, StoreError, SweepMiss,
};
use serde_json::json;

use super::harness::{Ack, Env};
use super::stored::{assets_of, content, key_of};

/// An order whose single sub-order holds `assets`.
fn order_with(id: u64, assets: Vec<AssetSpec>) -> OrderSpec {
    let mut order = OrderSpec::new(id);
    order.sub_orders[0].assets = assets;
    order
}

#[tokio::test]
async fn kode_failing_twice_then_answering_succeeds_in_one_invocation() {
    let env = Env::start().await;
    let asset = AssetSpec::ok("retry-1", "Kart.pdf", content(50_000, 11));
    env.fake.add_order(order_with(7101, vec![asset.clone()]));
    env.fake.fail_next(Endpoint::GetOrder, 2, 503);
    env.fake.fail_next(Endpoint::Asset, 2, 500);

    env.send_order(7101, "NEW").await;
    let delivery = env.deliver(1, Ack::Yes).await;
    assert!(delivery.failed.is_empty(), "{:?}", delivery.failed);
    env.assert_stored(7101, 7102, None, &asset).await;
    assert_eq!(env.fake.requests(Endpoint::GetOrder), 3);
    assert_eq!(env.fake.asset_downloads(&asset.id), 1);
    env.cleanup().await;
}

#[tokio::test]
async fn kode_down_fails_its_group_from_that_record_on_and_other_groups_complete() {
    let env = Env::start().await;
    let asset = AssetSpec::ok("down-1", "Kart.pdf", content(20_000, 12));
    env.fake.add_order(order_with(7103, vec![asset.clone()]));
    let first = env.send_order(7103, "NEW").await;
    let second = env.send_order(7103, "UPDATED").await;
    let message_id = "0b7e4c1a-5d2f-4e8b-9a61-3c0d2e7f9b15";
    env.send(json!({
        "content": {"id": message_id, "message": "Vedlikehold i kveld.", "type": "CUSTOMER"},
        "eventAction": "Created", "eventType": "DistributorMessages"
    }))
    .await;

    env.fake.set_down(true);
    // Retries give up once the (short) invocation time is spent.
    let delivery = env
        .deliver_within(3, Ack::Yes, Duration::from_secs(4), Duration::from_secs(1))
        .await;
    let mut failed = delivery.failed.clone();
    failed.sort();
    let mut expected = vec![first, second];
    expected.sort();
    assert_eq!(failed, expected);
    assert_eq!(env.items_of(&format!("DISTMSG#{message_id}")).await, 1);
    assert!(env.keys("orders/7103/").await.is_empty());

    // KODE is back: the returned records go through.
    env.fake.set_down(false);
    env.release(&delivery).await;
    let retry = env.deliver(2, Ack::Yes).await;
    assert!(retry.failed.is_empty(), "{:?}", retry.failed);
    env.assert_stored(7103, 7104, None, &asset).await;
    env.cleanup().await;
}

/// The real ledger, except that the first `record_stored` fails as if the
/// process had died right after the upload.
struct CrashOnceLedger {
    inner: DynamoLedger,
    crashed: AtomicBool,
}

#[async_trait]
impl Ledger for CrashOnceLedger {
    async fn order_assets(&self, order: OrderId) -> Result<Vec<AssetRecord>, StoreError> {
        self.inner.order_assets(order).await
    }
    async fn order(&self, order: OrderId) -> Result<Option<OrderRecord>, StoreError> {
        self.inner.order(order).await
    }
    async fn record_stored_announcing(
        &self,
        record: &AssetRecord,
        announce: Option<&Event>,
    ) -> Result<RecordOutcome, StoreError> {
        if !self.crashed.swap(true, Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected crash".into()));
        }
        self.inner.record_stored_announcing(record, announce).await
    }
    async fn record_failed_announcing(
        &self,
        attempt: &FailedAttempt,
        announce: Arc<FailedAnnouncement>,
    ) -> Result<FailedOutcome, StoreError> {
        self.inner.record_failed_announcing(attempt, announce).await
    }
    async fn mark_deleted_announcing(
        &self,
        order: OrderId,
        asset: &AssetId,
        at: &str,
        announce: Option<&Event>,
    ) -> Result<RecordOutcome, StoreError> {
        self.inner
            .mark_deleted_announcing(order, asset, at, announce)
            .await
    }
    async fn upsert_order(&self, record: &OrderRecord) -> Result<(), StoreError> {
        self.inner.upsert_order(record).await
    }
    async fn record_message_announcing(
        &self,
        message: &MessageRecord,
        announce: Option<&Event>,
    ) -> Result<RecordOutcome, StoreError> {
        self.inner
            .record_message_announcing(message, announce)
            .await
    }
    async fn record_announcement(&self, event: &Event) -> Result<RecordOutcome, StoreError> {
        self.inner.record_announcement(event).await
    }
    async fn pending_announcements(&self, scope: EventScope) -> Result<Vec<Event>, StoreError> {
        self.inner.pending_announcements(scope).await
    }
    async fn announcement_sent(&self, event: &Event, at: &str) -> Result<(), StoreError> {
        self.inner.announcement_sent(event, at).await
    }
    async fn open_orders(&self, now: &str) -> Result<Vec<OpenOrder>, StoreError> {
        self.inner.open_orders(now).await
    }
    async fn hold_open(&self, order: OrderId, reason: &str) -> Result<(), StoreError> {
        self.inner.hold_open(order, reason).await
    }
    async fn release_hold(&self, order: OrderId, reason: &str) -> Result<(), StoreError> {
        self.inner.release_hold(order, reason).await
    }
    async fn mark_swept(&self, order: OrderId, at: &str) -> Result<(), StoreError> {
        self.inner.mark_swept(order, at).await
    }
    async fn sweep_missed(
        &self,
        order: OrderId,
        max_misses: u32,
        at: &str,
    ) -> Result<SweepMiss, StoreError> {
        self.inner.sweep_missed(order, max_misses, at).await
    }
    async fn sweep_found(&self, order: OrderId) -> Result<(), StoreError> {
        self.inner.sweep_found(order).await
    }
}

#[tokio::test]
async fn a_crash_between_upload_and_ledger_write_converges_on_redelivery() {
    let env = Env::start_with(|inner| {
        Arc::new(CrashOnceLedger {
            inner,
            crashed: AtomicBool::new(false),
        })
    })
    .await;
    let asset = AssetSpec::ok("crash-1", "Reguleringsplan.pdf", content(70_000, 13));
    env.fake.add_order(order_with(7105, vec![asset.clone()]));
    let sent = env.send_order(7105, "NEW").await;

    let crashed = env.deliver(1, Ack::Yes).await;
    assert_eq!(crashed.failed, vec![sent]);
    // The state the crash leaves: the object, but no entry.
    assert!(env.object(&key_of(7105, &asset)).await.is_some());
    assert!(env.asset_records(7105).await.is_empty());

    env.release(&crashed).await;
    let redelivered = env.deliver(1, Ack::Yes).await;
    assert!(redelivered.failed.is_empty(), "{:?}", redelivered.failed);
    assert_eq!(env.keys("orders/7105/").await, vec![key_of(7105, &asset).0]);
    assert_eq!(env.asset_records(7105).await.len(), 1);
    env.assert_stored(7105, 7106, None, &asset).await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_truncated_download_stores_nothing_and_fails_the_record() {
    let env = Env::start().await;
    let asset = AssetSpec::ok("cut-1", "Avbrutt.pdf", content(64 * 1024, 14));
    env.fake.add_order(order_with(7107, vec![asset.clone()]));
    env.fake.truncate_asset(&asset.id, 10_000);
    // Paced, so the headers leave before the cut (see the client tests).
    env.fake.slow_asset(&asset.id, Duration::from_millis(5));
    let sent = env.send_order(7107, "NEW").await;

    let delivery = env.deliver(1, Ack::Yes).await;
    assert_eq!(delivery.failed, vec![sent]);
    assert!(
        env.fake.asset_downloads(&asset.id) >= 1,
        "the body was started"
    );
    assert_eq!(env.keys("").await, Vec::<String>::new());
    // Recorded as a transient failure: tried again with the redelivery.
    let record = env.asset_record(7107, &asset.id).await.expect("entry");
    assert_eq!(record.state, AssetState::Failed);
    let failure = record.failure.expect("failure");
    assert!(failure.transient && failure.attempts == 1, "{failure:?}");
    env.cleanup().await;
}

#[tokio::test]
async fn an_off_host_download_url_is_refused_and_the_foreign_host_sees_nothing() {
    let env = Env::start().await;
    let recorder = Recorder::start().await;
    let asset = AssetSpec::ok("foreign-1", "Kart.pdf", content(5_000, 15));
    env.fake.add_order(order_with(7109, vec![asset.clone()]));
    env.fake
        .set_asset_download_url(&asset.id, &recorder.url("/shopping/v2/assets/foreign-1"));
    env.send_order(7109, "NEW").await;

    // Refused for good: the asset fails, the push does not.
    let delivery = env.deliver(1, Ack::Yes).await;
    assert!(delivery.failed.is_empty(), "{:?}", delivery.failed);
    let seen = recorder.requests();
    assert!(seen.is_empty(), "the foreign host was contacted: {seen:?}");
    assert_eq!(env.keys("").await, Vec::<String>::new());
    let record = env.asset_record(7109, &asset.id).await.expect("entry");
    assert_eq!(record.state, AssetState::Failed);
    let failure = record.failure.expect("failure");
    assert!(!failure.transient, "{failure:?}");
    assert!(
        failure.reason.contains("not a configured KODE host"),
        "{}",
        failure.reason
    );
    env.cleanup().await;
}

#[tokio::test]
async fn hostile_file_names_stay_under_their_order_and_asset() {
    let env = Env::start().await;
    let names = samples::hostile_file_names();
    let assets: Vec<AssetSpec> = names
        .iter()
        .enumerate()
        .map(|(i, name)| AssetSpec::ok(&format!("h{i}"), name, content(1000 + i, 16 + i as u64)))
        .collect();
    let order = order_with(7111, assets);
    env.fake.add_order(order.clone());
    env.send_order(7111, "NEW").await;
    let delivery = env.deliver(1, Ack::Yes).await;
    assert!(delivery.failed.is_empty(), "{:?}", delivery.failed);

    let all_keys = env.keys("").await;
    assert_eq!(all_keys.len(), names.len(), "{all_keys:?}");
    for (_, _, asset) in assets_of(&order) {
        let prefix = format!("orders/7111/{}/", asset.id);
        let keys = env.keys(&prefix).await;
        assert_eq!(keys.len(), 1, "{:?}: {keys:?}", asset.filename);
        let file_name = &keys[0][prefix.len()..];
        assert!(!file_name.is_empty(), "{:?}", asset.filename);
        assert!(!file_name.contains(['/', '\\']), "{file_name:?}");
        assert!(!file_name.starts_with('.'), "{file_name:?}");
        assert!(!file_name.chars().any(char::is_control), "{file_name:?}");
        assert!(!file_name.contains('\u{202E}'), "{file_name:?}");
        assert!(file_name.len() <= 200, "{file_name:?}");
        let file = env
            .object(&kode::model::ObjectKey(keys[0].clone()))
            .await
            .expect("object");
        assert!(file.body == asset.content.to_bytes(), "{file_name:?}");
        let record = env.asset_record(7111, &asset.id).await.expect("entry");
        assert_eq!(record.state, AssetState::Stored);
    }
    env.cleanup().await;
}

#[tokio::test]
async fn a_multipart_sized_asset_arrives_byte_exact() {
    let env = Env::start().await;
    let mut asset = AssetSpec::ok("big-1", "Bygningstegninger.pdf", Vec::new());
    asset.content = AssetContent::Bytes(content(20 * 1024 * 1024, 17).into());
    env.fake.add_order(order_with(7113, vec![asset.clone()]));
    env.send_order(7113, "NEW").await;
    let delivery = env.deliver(1, Ack::Yes).await;
    assert!(delivery.failed.is_empty(), "{:?}", delivery.failed);
    env.assert_stored(7113, 7114, None, &asset).await;
    env.cleanup().await;
}

#[tokio::test]
async fn poison_assets_among_good_ones_fail_only_themselves() {
    let env =
        Env::start_configured(|config| config.max_asset_bytes = 100_000, |l| Arc::new(l)).await;
    let recorder = Recorder::start().await;
    let foreign = AssetSpec::ok("poison-foreign", "Utenlands.pdf", content(5_000, 40));
    let missing = AssetSpec::ok("poison-404", "Borte.pdf", content(5_000, 41));
    let large = AssetSpec::ok("poison-large", "Stor.pdf", content(150_000, 42));
    let good: Vec<AssetSpec> = (0..10)
        .map(|i| {
            AssetSpec::ok(
                &format!("good-{i}"),
                &format!("Kart {i}.pdf"),
                content(8_000, 50 + i),
            )
        })
        .collect();
    // The poison first: they used to stop every download after them.
    let mut assets = vec![foreign.clone(), missing.clone(), large.clone()];
    assets.extend(good.iter().cloned());
    env.fake.add_order(order_with(7121, assets));
    env.fake
        .set_asset_download_url(&foreign.id, &recorder.url("/shopping/v2/assets/x"));
    env.fake
        .set_asset_download_url(&missing.id, &env.fake.asset_download_url("no-such-asset"));

    env.send_order(7121, "NEW").await;
    let first = env.deliver(1, Ack::Yes).await;
    assert!(first.failed.is_empty(), "{:?}", first.failed);
    for asset in &good {
        env.assert_stored(7121, 7122, None, asset).await;
    }
    for (asset, says) in [
        (&foreign, "not a configured KODE host"),
        (&missing, "404"),
        (&large, "larger than the maximum"),
    ] {
        let record = env.asset_record(7121, &asset.id).await.expect("entry");
        assert_eq!(record.state, AssetState::Failed, "{}", asset.id);
        let failure = record.failure.expect("failure");
        assert!(
            failure.reason.contains(says),
            "{}: {}",
            asset.id,
            failure.reason
        );
        assert_eq!(failure.attempts, 1);
        assert!(!failure.transient);
    }
    assert!(env.object(&key_of(7121, &large)).await.is_none());

    // The next push of the order is handled at once: the poison is tried
    // again, the good files are not fetched again.
    env.send_order(7121, "FINISHED").await;
    let next = env.deliver(1, Ack::Yes).await;
    assert!(next.failed.is_empty(), "{:?}", next.failed);
    for asset in &good {
        assert_eq!(env.fake.asset_downloads(&asset.id), 1, "{}", asset.id);
    }
    let record = env.asset_record(7121, &large.id).await.expect("entry");
    assert_eq!(record.failure.expect("failure").attempts, 2);
    let order = env
        .ledger
        .order(OrderId(7121))
        .await
        .unwrap()
        .expect("order");
    assert!(
        order.finished_at.is_some(),
        "the push succeeded and was recorded"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn a_transient_failure_fails_the_push_once_the_others_are_stored() {
    let env = Env::start().await;
    let flaky = AssetSpec::ok("flaky-1", "Ustabil.pdf", content(64 * 1024, 60));
    let good: Vec<AssetSpec> = (0..3)
        .map(|i| {
            AssetSpec::ok(
                &format!("steady-{i}"),
                &format!("Kart {i}.pdf"),
                content(6_000, 61 + i),
            )
        })
        .collect();
    let mut assets = vec![flaky.clone()];
    assets.extend(good.iter().cloned());
    env.fake.add_order(order_with(7123, assets));
    env.fake.truncate_asset(&flaky.id, 10_000);
    env.fake.slow_asset(&flaky.id, Duration::from_millis(5));
    let sent = env.send_order(7123, "NEW").await;

    let delivery = env.deliver(1, Ack::Yes).await;
    assert_eq!(
        delivery.failed,
        vec![sent],
        "redelivered for the flaky file"
    );
    for asset in &good {
        env.assert_stored(7123, 7124, None, asset).await;
    }
    let record = env.asset_record(7123, &flaky.id).await.expect("entry");
    assert!(record.failure.expect("failure").transient);

    // KODE serves it whole again: the redelivery fetches only that file.
    env.fake.truncate_asset(&flaky.id, u64::MAX);
    env.release(&delivery).await;
    let redelivered = env.deliver(1, Ack::Yes).await;
    assert!(redelivered.failed.is_empty(), "{:?}", redelivered.failed);
    env.assert_stored(7123, 7124, None, &flaky).await;
    for asset in &good {
        assert_eq!(env.fake.asset_downloads(&asset.id), 1, "{}", asset.id);
    }
    env.cleanup().await;
}
