//! `kode order create --table` and `kode sweep --table --queue-url` against
//! moto: the order is recorded open at creation (and only with an explicit
//! `--table`), and the sweep puts one message for it in its FIFO group.

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use fake_kode::FakeKode;
use serde_json::Value;

use crate::moto::{self, aws_env};
use crate::support::*;

const CREATE: &[&str] = &[
    "order",
    "create",
    "share",
    "--organization-number",
    "948677202",
    "--share-number",
    "57",
    "--product",
    "WI03010900",
    "--reference",
    "OPPDRAG-2024-0088",
    "--json",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_created_with_a_table_is_swept_into_its_fifo_group() {
    let config = moto::sdk_config().await;
    let (_bucket, table) = moto::create_store(&config).await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue_url = sqs
        .create_queue()
        .queue_name(format!("{}.fifo", moto::unique_name("kode-cli-pushes")))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .expect("create FIFO queue")
        .queue_url
        .expect("queue URL");
    let fake = FakeKode::start().await;
    let mut env = fake_env(&fake);
    env.extend(aws_env());
    let sweep = [
        "sweep",
        "--table",
        table.as_str(),
        "--queue-url",
        queue_url.as_str(),
    ];

    // LEDGER_TABLE alone records nothing.
    let mut with_table_env = env.clone();
    with_table_env.push(("LEDGER_TABLE".into(), table.clone()));
    kode_with(with_table_env, CREATE).await.assert_ok();
    let listed = kode_with(env.clone(), &[&sweep[..], &["--dry-run"]].concat()).await;
    assert!(
        listed.assert_ok().stdout.contains("0 open order(s)"),
        "{}",
        listed.stdout
    );

    let created = kode_with(
        env.clone(),
        &[CREATE, &["--table", table.as_str()]].concat(),
    )
    .await;
    let id = created.assert_ok().json()["id"].as_u64().expect("order id");
    let ledger =
        kode::store::aws::DynamoLedger::new(aws_sdk_dynamodb::Client::new(&config), &table);
    let record = kode::store::Ledger::order(&ledger, kode::model::OrderId(id))
        .await
        .expect("read the ledger")
        .expect("the order is recorded at creation");
    assert_eq!(record.reference.as_deref(), Some("OPPDRAG-2024-0088"));
    let listed = kode_with(env.clone(), &[&sweep[..], &["--dry-run"]].concat()).await;
    assert!(
        listed
            .assert_ok()
            .stdout
            .contains(&format!("1 open order(s) would be swept:\n  {id}")),
        "{}",
        listed.stdout
    );

    let run = kode_with(env.clone(), &sweep).await;
    assert!(
        run.assert_ok().stdout.contains("1 open order(s) enqueued"),
        "{}",
        run.stdout
    );
    let received = sqs
        .receive_message()
        .queue_url(&queue_url)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .expect("receive")
        .messages
        .unwrap_or_default();
    assert_eq!(received.len(), 1);
    let group = received[0]
        .attributes
        .as_ref()
        .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
        .cloned();
    assert_eq!(group, Some(format!("order-{id}")));
    let body: Value = serde_json::from_str(received[0].body().unwrap_or_default()).unwrap();
    assert_eq!(body["kind"], "sweep");
    assert_eq!(body["orderId"], id);

    let _ = sqs.delete_queue().queue_url(&queue_url).send().await;
    fake.shutdown().await;
}
