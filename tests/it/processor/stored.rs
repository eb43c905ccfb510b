//! What the processor left in S3 and the ledger, and the checks on it.

use crate::support;
use std::collections::HashMap;

use fake_kode::{AssetSpec, OrderSpec};
use kode::model::{AssetId, OrderId};
use kode::model::{AssetRecord, AssetState, ObjectKey, OrderRecord};
use kode::store::aws::S3Blobs;
use kode::store::Ledger;

use super::harness::Env;

impl Env {
    /// Keys under `prefix`, sorted.
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .send()
            .await
            .expect("list objects")
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect();
        keys.sort();
        keys
    }

    /// Body, user metadata and content type, if the object exists.
    pub async fn object(&self, key: &ObjectKey) -> Option<StoredFile> {
        let output = match self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return None,
            Err(e) => panic!("GetObject {key}: {e:?}"),
        };
        Some(StoredFile {
            metadata: output.metadata().cloned().unwrap_or_default(),
            content_type: output.content_type().map(str::to_owned),
            body: output.body.collect().await.expect("object body").to_vec(),
        })
    }

    pub async fn asset_records(&self, order: u64) -> Vec<AssetRecord> {
        self.ledger
            .order_assets(OrderId(order))
            .await
            .expect("ledger query")
    }

    pub async fn asset_record(&self, order: u64, asset: &str) -> Option<AssetRecord> {
        self.asset_records(order)
            .await
            .into_iter()
            .find(|r| r.asset_id.as_str() == asset)
    }

    pub async fn order_record(&self, order: u64) -> Option<OrderRecord> {
        self.ledger.order(OrderId(order)).await.expect("ledger get")
    }

    /// Ledger items with partition key `pk` (e.g. `DISTMSG#<id>`).
    pub async fn items_of(&self, pk: &str) -> usize {
        self.ddb
            .query()
            .table_name(self.ledger.table())
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(
                ":pk",
                aws_sdk_dynamodb::types::AttributeValue::S(pk.into()),
            )
            .consistent_read(true)
            .send()
            .await
            .expect("ledger query")
            .count as usize
    }

    /// Checks that `asset` of `order` is stored byte-exact under its key,
    /// with DESIGN.md's metadata and a ledger entry.
    pub async fn assert_stored(
        &self,
        order: u64,
        sub_order: u64,
        line: Option<u64>,
        asset: &AssetSpec,
    ) {
        let key = key_of(order, asset);
        let file = self
            .object(&key)
            .await
            .unwrap_or_else(|| panic!("{key} is not in S3"));
        let sha256 = asset.content.sha256_hex();
        assert!(
            file.body == asset.content.to_bytes(),
            "{key}: stored bytes differ from KODE's"
        );
        let m = &file.metadata;
        // Only a single-request upload knows its digest before it begins.
        let single = asset.content.len() <= S3Blobs::DEFAULT_PART_SIZE as u64;
        let in_metadata = single.then(|| sha256.clone());
        assert_eq!(m.get("sha256"), in_metadata.as_ref(), "{key}");
        assert_eq!(m.get("order-id"), Some(&order.to_string()), "{key}");
        assert_eq!(m.get("sub-order-id"), Some(&sub_order.to_string()), "{key}");
        assert_eq!(m.get("order-line-id"), line.map(|l| l.to_string()).as_ref());
        assert_eq!(m.get("asset-id"), Some(&asset.id), "{key}");
        let name = m.get("original-name").expect("original-name");
        assert_eq!(support::percent_decode(name), asset.filename, "{key}");
        let category = m.get("product-category").expect("product-category");
        assert_eq!(support::percent_decode(category), asset.category, "{key}");

        let record = self
            .asset_record(order, &asset.id)
            .await
            .unwrap_or_else(|| panic!("no ledger entry for {key}"));
        assert_eq!(record.state, AssetState::Stored);
        assert_eq!(record.key.as_ref(), Some(&key));
        assert_eq!(record.bytes, Some(asset.content.len()));
        assert_eq!(record.sha256, Some(sha256));
    }
}

pub struct StoredFile {
    pub body: Vec<u8>,
    pub metadata: HashMap<String, String>,
    pub content_type: Option<String>,
}

/// The key the processor must use for `asset` of `order`.
pub fn key_of(order: u64, asset: &AssetSpec) -> ObjectKey {
    kode::names::object_key(
        OrderId(order),
        &AssetId::from(asset.id.as_str()),
        &asset.filename,
    )
}

/// Every asset of the spec with its sub-order and line.
pub fn assets_of(order: &OrderSpec) -> Vec<(u64, Option<u64>, AssetSpec)> {
    let mut all = Vec::new();
    for sub in &order.sub_orders {
        all.extend(sub.assets.iter().map(|a| (sub.id, None, a.clone())));
        for line in &sub.lines {
            all.extend(
                line.assets
                    .iter()
                    .map(|a| (sub.id, Some(line.id), a.clone())),
            );
        }
    }
    all
}

/// Pseudo-random bytes, not repeating with any power-of-two period.
pub fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}
