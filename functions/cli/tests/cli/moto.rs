//! The local AWS (moto) for the `kode` runs that use S3, DynamoDB or
//! Secrets Manager: the environment to hand the binary, and resources with
//! unique names.

use std::sync::atomic::{AtomicU32, Ordering};

/// The variables the AWS SDK in `kode` needs to reach moto. Fails, naming the
/// test command, when moto is not configured: these tests must never pass
/// without running.
pub fn aws_env() -> Vec<(String, String)> {
    if std::env::var_os("AWS_ENDPOINT_URL").is_none() {
        panic!(
            "AWS_ENDPOINT_URL is not set: this test needs moto. Run the tests with \
             `./infra/test.sh` (see README), which starts moto and exports it."
        );
    }
    let mut env: Vec<(String, String)> = [
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
    ]
    .into_iter()
    .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_owned(), v)))
    .collect();
    // Never look for instance credentials or a profile.
    for (k, v) in [
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
    ] {
        env.push((k.to_owned(), v.to_owned()));
    }
    env
}

pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_env();
    kode::aws::sdk_config().await
}

/// A name no other test (or earlier run against the same moto) uses.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{n}-{}", &random[..12])
}

/// A bucket and a ledger table with the template's key layout.
pub async fn create_store(config: &aws_config::SdkConfig) -> (String, String) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let bucket = unique_name("kode-cli-assets");
    let mut create = kode::aws::s3_client(config).create_bucket().bucket(&bucket);
    // Outside us-east-1, S3 wants the region named again.
    if let Some(region) = config.region().filter(|r| r.as_ref() != "us-east-1") {
        create = create.create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(region.as_ref().into())
                .build(),
        );
    }
    create.send().await.expect("create bucket in moto");
    let table = unique_name("kode-cli-ledger");
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key = |name: &str, key_type| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .unwrap()
    };
    aws_sdk_dynamodb::Client::new(config)
        .create_table()
        .table_name(&table)
        .attribute_definitions(attribute("pk"))
        .attribute_definitions(attribute("sk"))
        .attribute_definitions(attribute("sweep"))
        .attribute_definitions(attribute("sweepUntil"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .global_secondary_indexes(open_orders_index())
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create ledger table in moto");
    (bucket, table)
}

/// Keys and bodies of the objects under `prefix`.
pub async fn objects(
    config: &aws_config::SdkConfig,
    bucket: &str,
    prefix: &str,
) -> Vec<(String, Vec<u8>)> {
    let s3 = kode::aws::s3_client(config);
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .expect("list objects");
    let mut out = Vec::new();
    for object in listed.contents() {
        let key = object.key().unwrap().to_owned();
        let body = s3
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .expect("get object")
            .body
            .collect()
            .await
            .expect("read object")
            .to_vec();
        out.push((key, body));
    }
    out
}

/// The template's sparse index of open orders (`kode::store::aws::OPEN_INDEX`).
fn open_orders_index() -> aws_sdk_dynamodb::types::GlobalSecondaryIndex {
    use aws_sdk_dynamodb::types::{
        GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    };
    let key = |name: &str, key_type| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .expect("key schema element")
    };
    GlobalSecondaryIndex::builder()
        .index_name(kode::store::aws::OPEN_INDEX)
        .key_schema(key("sweep", KeyType::Hash))
        .key_schema(key("sweepUntil", KeyType::Range))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::Include)
                .non_key_attributes("sweptAt")
                .non_key_attributes("purgedAt")
                .non_key_attributes("sweepClosedAt")
                .build(),
        )
        .build()
        .expect("open-orders index")
}
