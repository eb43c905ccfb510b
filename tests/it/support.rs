//! Shared helpers: the moto connection and unique resource names.

use std::sync::atomic::{AtomicU32, Ordering};

/// The SDK configuration pointing at moto. Fails loudly, naming the test
/// command, when the tests are run without it: such a test must never pass
/// silently.
pub async fn aws_config() -> aws_config::SdkConfig {
    if std::env::var_os("AWS_ENDPOINT_URL").is_none() {
        panic!(
            "AWS_ENDPOINT_URL is not set: this test needs moto. Run the tests with \
             `./infra/test.sh` (see README), which starts moto and exports it."
        );
    }
    kode::aws::sdk_config().await
}

/// A name no other test (or earlier run against the same moto) uses.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{n}-{}", &random[..12])
}

/// Creates a ledger table with the layout of DESIGN.md (`pk`/`sk` strings,
/// the open-orders index, on-demand billing).
pub async fn create_ledger_table(client: &aws_sdk_dynamodb::Client, name: &str) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("attribute definition")
    };
    let key = |name: &str, key_type| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .expect("key schema element")
    };
    client
        .create_table()
        .table_name(name)
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
}

/// A metadata value as any URL decoder reads it back (the S3 adapter
/// documents its values as percent-encoded UTF-8).
pub fn percent_decode(value: &str) -> String {
    percent_encoding::percent_decode_str(value)
        .decode_utf8()
        .expect("UTF-8")
        .into_owned()
}

/// Whether S3 holds `key` (HEAD; a missing key is `false`, anything else
/// fails the test).
pub async fn object_exists(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> bool {
    match client.head_object().bucket(bucket).key(key).send().await {
        Ok(_) => true,
        Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => false,
        Err(err) => panic!("HeadObject {key}: {err:?}"),
    }
}

/// Creates `bucket` in moto's region.
pub async fn create_bucket(client: &aws_sdk_s3::Client, bucket: &str) {
    client
        .create_bucket()
        .bucket(bucket)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuNorth1)
                .build(),
        )
        .send()
        .await
        .expect("create bucket");
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
