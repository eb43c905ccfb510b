//! Pushes of a healthy KODE: files stored once, deleted, purged; messages
//! stored once.

use fake_kode::{samples, AssetSpec, OrderSpec};
use kode::model::AssetState;
use serde_json::json;

use super::harness::{Ack, Env};
use super::stored::{assets_of, content, key_of};

/// An order with one asset at sub-order level and one on an order line.
fn two_level_order(id: u64) -> OrderSpec {
    let mut order = samples::meglerpakke_order(id);
    let sub = &mut order.sub_orders[0];
    sub.assets.truncate(1);
    sub.lines.retain(|l| !l.assets.is_empty());
    sub.lines.truncate(1);
    order
}

async fn assert_all_stored(env: &Env, order: &OrderSpec) {
    for (sub, line, asset) in assets_of(order) {
        env.assert_stored(order.id, sub, line, &asset).await;
    }
}

#[tokio::test]
async fn new_then_updated_stores_every_file_at_order_and_line_level() {
    let env = Env::start().await;
    let mut order = samples::meglerpakke_order(7001);
    env.fake.add_order(order.clone());

    // As KODE pushes it: with the references given when ordering.
    env.send(json!({
        "orderCollectionId": 7001, "reference": "OPPDRAG-2024-7001",
        "status": "NEW", "technicalReference": "demo-7001"
    }))
    .await;
    let first = env.deliver(1, Ack::Yes).await;
    assert!(first.failed.is_empty(), "{:?}", first.failed);
    assert_all_stored(&env, &order).await;
    let record = env.order_record(7001).await.expect("order record");
    assert_eq!(record.reference.as_deref(), Some("OPPDRAG-2024-7001"));
    assert_eq!(record.technical_reference.as_deref(), Some("demo-7001"));

    // New files at both levels arrive with an UPDATED push.
    let sub_id = order.sub_orders[0].id;
    let line_id = order.sub_orders[0].lines[2].id;
    let on_order = AssetSpec::ok("late-order", "Situasjonskart.pdf", content(40_000, 1));
    let on_line = AssetSpec::ok("late-line", "Ferdigattest 2024.pdf", content(90_000, 2));
    env.fake.add_asset(7001, sub_id, None, on_order.clone());
    env.fake
        .add_asset(7001, sub_id, Some(line_id), on_line.clone());
    order.sub_orders[0].assets.push(on_order);
    order.sub_orders[0].lines[2].assets.push(on_line);

    env.send_order(7001, "UPDATED").await;
    let second = env.deliver(1, Ack::Yes).await;
    assert!(second.failed.is_empty(), "{:?}", second.failed);
    assert_all_stored(&env, &order).await;
    let all = assets_of(&order);
    assert_eq!(env.keys("orders/7001/").await.len(), all.len());
    assert_eq!(env.asset_records(7001).await.len(), all.len());
    for (_, line, asset) in &all {
        let file = env.object(&key_of(7001, asset)).await.expect("stored");
        assert_eq!(file.content_type.as_deref(), Some("application/pdf"));
        assert_eq!(line.is_some(), file.metadata.contains_key("order-line-id"));
    }
    env.cleanup().await;
}

#[tokio::test]
async fn a_redelivered_push_and_a_second_update_download_nothing_twice() {
    let env = Env::start().await;
    let mut order = two_level_order(7002);
    env.fake.add_order(order.clone());
    env.send_order(7002, "NEW").await;
    assert!(env.deliver(1, Ack::Yes).await.failed.is_empty());

    // The same UPDATED message comes back (as after a lost delete).
    let sent = env.send_order(7002, "UPDATED").await;
    let first = env.deliver(1, Ack::No).await;
    env.release(&first).await;
    let again = env.deliver(1, Ack::Yes).await;
    assert_eq!(again.ids(), vec![sent.clone()]);
    assert_eq!(first.ids(), vec![sent]);
    assert!(again.failed.is_empty(), "{:?}", again.failed);

    let extra = AssetSpec::ok("second-update", "Målebrev.pdf", content(10_000, 3));
    env.fake
        .add_asset(7002, order.sub_orders[0].id, None, extra.clone());
    order.sub_orders[0].assets.push(extra);
    env.send_order(7002, "UPDATED").await;
    assert!(env.deliver(1, Ack::Yes).await.failed.is_empty());

    assert_all_stored(&env, &order).await;
    for (_, _, asset) in assets_of(&order) {
        assert_eq!(env.fake.asset_downloads(&asset.id), 1, "{}", asset.id);
    }
    env.cleanup().await;
}

#[tokio::test]
async fn an_asset_turned_deleted_loses_its_object_and_is_marked() {
    let env = Env::start().await;
    let order = two_level_order(7003);
    env.fake.add_order(order.clone());
    env.send_order(7003, "NEW").await;
    assert!(env.deliver(1, Ack::Yes).await.failed.is_empty());
    let all = assets_of(&order);
    let (gone, kept) = (&all[0].2, &all[1]);

    env.fake.set_asset_status(&gone.id, "DELETED");
    env.send_order(7003, "UPDATED").await;
    assert!(env.deliver(1, Ack::Yes).await.failed.is_empty());

    assert!(env.object(&key_of(7003, gone)).await.is_none());
    let record = env.asset_record(7003, &gone.id).await.expect("entry kept");
    assert_eq!(record.state, AssetState::Deleted);
    assert!(record.deleted_at.is_some());
    env.assert_stored(7003, kept.0, kept.1, &kept.2).await;
    env.cleanup().await;
}

#[tokio::test]
async fn cancelled_and_refunded_orders_lose_every_file() {
    let env = Env::start().await;
    let cancelled = samples::meglerpakke_order(7004);
    let refunded = samples::meglerpakke_order(7005);
    env.fake.add_order(cancelled.clone());
    env.fake.add_order(refunded.clone());
    env.send_order(7004, "NEW").await;
    env.send_order(7005, "NEW").await;
    assert!(env.deliver(2, Ack::Yes).await.failed.is_empty());
    assert!(!env.keys("orders/7004/").await.is_empty());
    assert!(!env.keys("orders/7005/").await.is_empty());

    env.fake.set_order_status(7004, "CANCELLED");
    env.fake.set_order_status(7005, "REFUNDED");
    env.send_order(7004, "CANCELLED").await;
    env.send_order(7005, "REFUNDED").await;
    assert!(env.deliver(2, Ack::Yes).await.failed.is_empty());

    for order in [&cancelled, &refunded] {
        let prefix = format!("orders/{}/", order.id);
        assert_eq!(env.keys(&prefix).await, Vec::<String>::new());
        let records = env.asset_records(order.id).await;
        assert_eq!(records.len(), assets_of(order).len());
        assert!(records.iter().all(|r| r.state == AssetState::Deleted));
        let record = env.order_record(order.id).await.expect("order record");
        assert!(record.purged_at.is_some(), "{record:?}");
    }

    // A purged order takes no new file, whatever KODE shows later.
    let late = AssetSpec::ok("after-cancel", "Sen.pdf", content(1000, 4));
    env.fake
        .add_asset(7004, cancelled.sub_orders[0].id, None, late.clone());
    env.send_order(7004, "UPDATED").await;
    assert!(env.deliver(1, Ack::Yes).await.failed.is_empty());
    assert_eq!(env.keys("orders/7004/").await, Vec::<String>::new());
    assert_eq!(env.fake.asset_downloads(&late.id), 0);
    env.cleanup().await;
}

#[tokio::test]
async fn a_file_arriving_after_finished_is_stored() {
    let env = Env::start().await;
    let order = two_level_order(7006);
    env.fake.add_order(order.clone());
    env.send_order(7006, "NEW").await;
    assert!(env.deliver(1, Ack::Yes).await.failed.is_empty());
    env.fake.set_order_status(7006, "FINISHED");
    env.send_order(7006, "FINISHED").await;
    assert!(env.deliver(1, Ack::Yes).await.failed.is_empty());
    let record = env.order_record(7006).await.expect("order record");
    assert!(record.finished_at.is_some(), "{record:?}");

    let late = AssetSpec::ok("late-file", "Ettersendt-kart.pdf", content(30_000, 5));
    let sub = order.sub_orders[0].id;
    env.fake.add_asset(7006, sub, None, late.clone());
    env.send_order(7006, "UPDATED").await;
    assert!(env.deliver(1, Ack::Yes).await.failed.is_empty());
    env.assert_stored(7006, sub, None, &late).await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_distributor_message_is_stored_once() {
    let env = Env::start().await;
    let message = json!({
        "content": {
            "id": "6d1f4a2e-93b8-4c57-a0e1-2b7c9d3f5e84",
            "message": "Planregisteret er utilgjengelig lørdag 08-12.",
            "municipalityName": "OSLO", "municipalityNumber": "0301",
            "dateCreated": "09-03-2024", "type": "DISTRIBUTOR"
        },
        "eventAction": "Created", "eventType": "DistributorMessages"
    });
    // KODE sent it twice: two queue messages with the same content.
    env.send(message.clone()).await;
    env.send(message).await;
    let delivery = env.deliver(2, Ack::Yes).await;
    assert!(delivery.failed.is_empty(), "{:?}", delivery.failed);
    assert_eq!(
        env.items_of("DISTMSG#6d1f4a2e-93b8-4c57-a0e1-2b7c9d3f5e84")
            .await,
        1
    );
    env.cleanup().await;
}
