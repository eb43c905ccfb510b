//! `kode sync` and `kode order get` against the AWS store (moto), and KODE
//! credentials from Secrets Manager.

use fake_kode::{samples, Endpoint, FakeKode};
use serde_json::json;

use crate::moto::{self, aws_env};
use crate::support::*;
use crate::sync::{all_assets, id_set, ids, stored_cell};

fn env_with(fake: &FakeKode, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = fake_env(fake);
    env.extend(aws_env());
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_to_s3_stores_once_removes_withdrawn_and_cancelled_files() {
    let config = moto::sdk_config().await;
    let (bucket, table) = moto::create_store(&config).await;
    let fake = FakeKode::start().await;
    let order = samples::meglerpakke_order(8201);
    fake.add_order(order.clone());
    let assets = all_assets(&order);
    let store = ["--bucket", bucket.as_str(), "--table", table.as_str()];

    let run = kode_with(
        env_with(&fake, &[]),
        &[&["sync", "8201", "--json"], &store[..]].concat(),
    )
    .await;
    let report = run.assert_ok().json();
    assert_eq!(id_set(&report, "stored"), ids(&assets));
    let objects = moto::objects(&config, &bucket, "orders/8201/").await;
    assert_eq!(objects.len(), assets.len(), "{objects:?}");
    let key_of = |asset: &str| -> String {
        objects
            .iter()
            .map(|(key, _)| key)
            .find(|key| key.starts_with(&format!("orders/8201/{asset}/")))
            .unwrap_or_else(|| panic!("no object for {asset}"))
            .clone()
    };
    for asset in &assets {
        let key = key_of(&asset.id);
        let (_, body) = objects.iter().find(|(k, _)| *k == key).unwrap();
        assert_eq!(body[..], asset.content.to_bytes()[..], "{key}");
    }

    // The store may also come from the environment, as in the Lambdas.
    let downloads = fake.requests(Endpoint::Asset);
    let by_env = env_with(
        &fake,
        &[("ASSET_BUCKET", &bucket), ("LEDGER_TABLE", &table)],
    );
    let report = kode_with(by_env.clone(), &["sync", "8201", "--json"])
        .await
        .assert_ok()
        .json();
    assert!(id_set(&report, "stored").is_empty(), "{report}");
    assert_eq!(id_set(&report, "skipped"), ids(&assets));
    assert_eq!(
        fake.requests(Endpoint::Asset),
        downloads,
        "downloaded again"
    );

    let withdrawn = &assets[0];
    fake.set_asset_status(&withdrawn.id, "DELETED");
    let report = kode_with(by_env.clone(), &["sync", "8201", "--json"])
        .await
        .assert_ok()
        .json();
    assert_eq!(id_set(&report, "deleted"), ids([withdrawn]));
    let left = moto::objects(&config, &bucket, "orders/8201/").await;
    assert_eq!(left.len(), assets.len() - 1);
    assert!(!left.iter().any(|(k, _)| *k == key_of(&withdrawn.id)));

    let run = kode_with(
        env_with(&fake, &[]),
        &[&["order", "get", "8201"], &store[..]].concat(),
    )
    .await;
    run.assert_ok();
    assert_eq!(stored_cell(&run.stdout, &withdrawn.id), "deleted");
    for asset in &assets[1..] {
        assert_eq!(
            stored_cell(&run.stdout, &asset.id),
            format!("s3://{bucket}/{}", key_of(&asset.id))
        );
    }

    let run = kode_with(by_env, &["sync", "8201", "--status", "CANCELLED"]).await;
    run.assert_ok();
    assert!(
        run.stdout.contains("All files of the order are deleted"),
        "{}",
        run.stdout
    );
    let left = moto::objects(&config, &bucket, "orders/8201/").await;
    assert!(left.is_empty(), "objects left after CANCELLED: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_can_come_from_a_secrets_manager_secret() {
    let config = moto::sdk_config().await;
    let fake = FakeKode::start().await;
    let c = fake.credentials();
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    let create = |value: String| {
        let secrets = secrets.clone();
        async move {
            secrets
                .create_secret()
                .name(moto::unique_name("kode-cli-credentials"))
                .secret_string(value)
                .send()
                .await
                .expect("create secret in moto")
                .arn()
                .unwrap()
                .to_owned()
        }
    };
    let arn = create(
        json!({"client_id": c.client_id, "client_secret": c.client_secret,
               "username": c.username, "password": c.password})
        .to_string(),
    )
    .await;
    let env = |arn: &str| {
        let mut env = aws_env();
        env.push(("KODE_API_URL".into(), fake.base_url()));
        env.push(("KODE_SECRET_ARN".into(), arn.to_owned()));
        env
    };

    let run = kode_with(env(&arn), &["auth", "check"]).await;
    run.assert_ok();
    assert_eq!(fake.grants("password"), 1);
    for secret in [&c.client_secret, &c.password] {
        assert!(!run.stdout.contains(secret.as_str()) && !run.stderr.contains(secret.as_str()));
    }

    let incomplete = create(json!({"client_id": "x", "username": "y"}).to_string()).await;
    let run = kode_with(env(&incomplete), &["auth", "check"]).await;
    run.assert_usage_error("KODE_SECRET_ARN");
    assert!(run.stderr.contains("client_secret"), "{}", run.stderr);

    let run = kode_with(env(&format!("{arn}-gone")), &["auth", "check"]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("KODE credentials secret"),
        "{}",
        run.stderr
    );
    assert_eq!(
        fake.grants("password"),
        1,
        "no token request without credentials"
    );
}
