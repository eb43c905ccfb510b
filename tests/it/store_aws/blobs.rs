//! `S3Blobs` against moto.

use std::collections::HashMap;

use async_trait::async_trait;
use bytes::Bytes;
use kode::model::{AssetId, OrderId, OrderLineId, SubOrderId};
use kode::model::{ObjectKey, ObjectMeta};
use kode::store::aws::S3Blobs;
use kode::store::{Blobs, PutError, StoreError};
use kode::stream::ChunkSource;
use kode::stream::SourceError;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::support;

const MIB: usize = 1024 * 1024;
const NAME: &str = "Målebrev for Ærøgata 1 (øst).pdf";

/// What the source does once it reaches its gate.
enum Resume {
    Continue,
    Fail,
}

/// An in-memory body served in fixed-size chunks, optionally pausing at an
/// offset (so a test can look at S3 mid-upload) or failing there.
struct MemorySource {
    data: Bytes,
    chunk: usize,
    position: usize,
    gate: Option<Gate>,
}

struct Gate {
    at: usize,
    reached: Option<oneshot::Sender<()>>,
    resume: oneshot::Receiver<Resume>,
}

impl MemorySource {
    fn new(data: Bytes) -> Self {
        MemorySource {
            data,
            chunk: 64 * 1024,
            position: 0,
            gate: None,
        }
    }

    /// Pauses at `at`; the test hears when it gets there and says how to go on.
    fn gated(data: Bytes, at: usize) -> (Self, oneshot::Receiver<()>, oneshot::Sender<Resume>) {
        let (reached_tx, reached_rx) = oneshot::channel();
        let (resume_tx, resume_rx) = oneshot::channel();
        let mut source = MemorySource::new(data);
        source.gate = Some(Gate {
            at,
            reached: Some(reached_tx),
            resume: resume_rx,
        });
        (source, reached_rx, resume_tx)
    }

    /// Fails with a truncated download at `at`.
    fn failing(data: Bytes, at: usize) -> Self {
        let (source, _, resume) = MemorySource::gated(data, at);
        let _ = resume.send(Resume::Fail);
        source
    }
}

#[async_trait]
impl ChunkSource for MemorySource {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, SourceError> {
        if let Some(gate) = self.gate.as_mut().filter(|g| self.position >= g.at) {
            if let Some(reached) = gate.reached.take() {
                let _ = reached.send(());
            }
            let resume = (&mut gate.resume).await.unwrap_or(Resume::Fail);
            self.gate = None;
            if let Resume::Fail = resume {
                return Err(SourceError::Truncated {
                    received: self.position as u64,
                    expected: Some(self.data.len() as u64),
                });
            }
        }
        if self.position >= self.data.len() {
            return Ok(None);
        }
        let end = (self.position + self.chunk).min(self.data.len());
        let end = self
            .gate
            .as_ref()
            .map_or(end, |g| end.min(g.at.max(self.position + 1)));
        let chunk = self.data.slice(self.position..end);
        self.position = end;
        Ok(Some(chunk))
    }

    fn content_type(&self) -> Option<&str> {
        Some("application/octet-stream")
    }
}

fn body(len: usize) -> Bytes {
    // Not a repeating pattern of the part size, so a misplaced part shows.
    (0..len).map(|i| ((i * 7 + i / 4093) % 251) as u8).collect()
}

fn meta(asset: &str) -> ObjectMeta {
    ObjectMeta {
        order_id: OrderId(1_000_123),
        sub_order_id: SubOrderId(2001),
        order_line_id: Some(OrderLineId(3001)),
        asset_id: AssetId::from(asset),
        product_category: Some("Kart og målebrev".into()),
        original_name: NAME.into(),
        content_type: Some("application/pdf".into()),
    }
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

struct S3Env {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Env {
    async fn new() -> Self {
        let config = support::aws_config().await;
        let client = kode::aws::s3_client(&config);
        let bucket = support::unique_name("store-aws");
        support::create_bucket(&client, &bucket).await;
        S3Env { client, bucket }
    }

    fn blobs(&self) -> S3Blobs {
        S3Blobs::new(self.client.clone(), &self.bucket)
            .with_part_size(S3Blobs::MIN_PART_SIZE)
            .expect("5 MiB is a valid part size")
    }

    async fn exists(&self, key: &ObjectKey) -> bool {
        support::object_exists(&self.client, &self.bucket, key.as_str()).await
    }

    async fn get(&self, key: &ObjectKey) -> (Vec<u8>, HashMap<String, String>, Option<String>) {
        let output = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
            .expect("object exists");
        let metadata = output.metadata().cloned().unwrap_or_default();
        let content_type = output.content_type().map(str::to_owned);
        let data = output.body.collect().await.expect("read body").to_vec();
        (data, metadata, content_type)
    }

    async fn pending_uploads(&self) -> Vec<String> {
        self.client
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .send()
            .await
            .expect("list multipart uploads")
            .uploads()
            .iter()
            .filter_map(|u| u.key().map(str::to_owned))
            .collect()
    }
}

fn assert_full_metadata(metadata: &HashMap<String, String>, data: &[u8]) {
    assert_eq!(metadata.get("sha256"), Some(&sha256_hex(data)));
    assert_eq!(
        metadata.get("order-id").map(String::as_str),
        Some("1000123")
    );
    assert_eq!(
        metadata.get("sub-order-id").map(String::as_str),
        Some("2001")
    );
    assert_eq!(
        metadata.get("order-line-id").map(String::as_str),
        Some("3001")
    );
    assert!(metadata.get("asset-id").is_some());
    let name = metadata.get("original-name").expect("original-name");
    assert_eq!(support::percent_decode(name), NAME);
    let category = metadata.get("product-category").expect("product-category");
    assert_eq!(support::percent_decode(category), "Kart og målebrev");
}

#[tokio::test]
async fn small_put_is_byte_exact_with_metadata_and_sha256() {
    let env = S3Env::new().await;
    let key = ObjectKey("orders/1000123/a1/Målebrev for Ærøgata 1 (øst).pdf".into());
    let data = body(300 * 1024);

    let stored = env
        .blobs()
        .put(&key, &meta("a1"), &mut MemorySource::new(data.clone()))
        .await
        .expect("put");

    assert_eq!(stored.bytes, data.len() as u64);
    assert_eq!(stored.sha256, sha256_hex(&data));
    let (read, metadata, content_type) = env.get(&key).await;
    assert!(read == data, "content differs");
    assert_full_metadata(&metadata, &data);
    assert_eq!(content_type.as_deref(), Some("application/pdf"));
    assert!(env.exists(&key).await);
}

#[tokio::test]
async fn large_put_goes_multipart_and_arrives_byte_exact_with_sha256() {
    let env = S3Env::new().await;
    let key = ObjectKey("orders/1000123/big/Kart stor.tif".into());
    let data = body(20 * MIB);
    let (mut source, reached, resume) = MemorySource::gated(data.clone(), 12 * MIB);
    let blobs = env.blobs();
    let (put_key, put_meta) = (key.clone(), meta("big"));
    let put = tokio::spawn(async move { blobs.put(&put_key, &put_meta, &mut source).await });

    reached.await.expect("source reached 12 MiB");
    assert_eq!(
        env.pending_uploads().await,
        [key.as_str()],
        "a multipart upload in progress"
    );
    assert!(!env.exists(&key).await, "nothing visible yet");
    let _ = resume.send(Resume::Continue);
    let stored = put.await.expect("join").expect("put");

    assert_eq!(stored.bytes, data.len() as u64);
    assert_eq!(stored.sha256, sha256_hex(&data));
    let (read, metadata, content_type) = env.get(&key).await;
    assert!(read == data, "content differs");
    assert_full_metadata(&metadata, &data);
    assert_eq!(content_type.as_deref(), Some("application/pdf"));
    assert!(env.pending_uploads().await.is_empty());
}

#[tokio::test]
async fn source_failing_mid_multipart_leaves_no_object_and_no_upload() {
    let env = S3Env::new().await;
    let key = ObjectKey("orders/1000123/cut/cut.pdf".into());
    let (mut source, reached, resume) = MemorySource::gated(body(20 * MIB), 12 * MIB);
    let blobs = env.blobs();
    let (put_key, put_meta) = (key.clone(), meta("cut"));
    let put = tokio::spawn(async move { blobs.put(&put_key, &put_meta, &mut source).await });

    reached.await.expect("source reached 12 MiB");
    assert_eq!(env.pending_uploads().await, [key.as_str()]);
    let _ = resume.send(Resume::Fail);
    let err = put
        .await
        .expect("join")
        .expect_err("a truncated body must fail");

    assert!(
        matches!(err, PutError::Source(SourceError::Truncated { .. })),
        "{err}"
    );
    assert!(err.is_retryable());
    assert!(!env.exists(&key).await);
    assert!(env.pending_uploads().await.is_empty(), "upload aborted");
}

#[tokio::test]
async fn source_failing_in_a_small_body_leaves_no_object() {
    let env = S3Env::new().await;
    let key = ObjectKey("orders/1000123/small/small.pdf".into());

    let err = env
        .blobs()
        .put(
            &key,
            &meta("small"),
            &mut MemorySource::failing(body(4096), 1000),
        )
        .await
        .expect_err("a truncated body must fail");

    assert!(matches!(err, PutError::Source(_)), "{err}");
    assert!(!env.exists(&key).await);
}

#[tokio::test]
async fn delete_removes_the_object_and_a_missing_object_is_fine() {
    let env = S3Env::new().await;
    let blobs = env.blobs();
    let key = ObjectKey("orders/1000123/gone/gone.pdf".into());
    blobs
        .put(&key, &meta("gone"), &mut MemorySource::new(body(10)))
        .await
        .expect("put");

    blobs.delete(&key).await.expect("delete");
    assert!(!env.exists(&key).await);
    blobs
        .delete(&key)
        .await
        .expect("deleting again is not an error");
}

#[tokio::test]
async fn a_missing_bucket_is_a_permanent_error() {
    let env = S3Env::new().await;
    let blobs = S3Blobs::new(env.client.clone(), support::unique_name("no-such-bucket"));
    let key = ObjectKey("orders/1/a/a.pdf".into());

    let err = blobs
        .put(&key, &meta("a"), &mut MemorySource::new(body(10)))
        .await
        .expect_err("no bucket");
    assert!(
        matches!(err, PutError::Store(StoreError::Permanent(_))),
        "{err}"
    );
}

#[tokio::test]
async fn a_put_cancelled_mid_upload_still_aborts_it() {
    let env = S3Env::new().await;
    let key = ObjectKey("orders/1000123/cancel/cancel.pdf".into());
    let (mut source, reached, _resume) = MemorySource::gated(body(20 * MIB), 12 * MIB);
    let blobs = env.blobs();
    let (put_key, put_meta) = (key.clone(), meta("cancel"));
    let put = tokio::spawn(async move { blobs.put(&put_key, &put_meta, &mut source).await });
    reached.await.expect("source reached 12 MiB");
    assert_eq!(env.pending_uploads().await, [key.as_str()]);

    // What a deadline does to the processor's future.
    put.abort();
    assert!(put.await.expect_err("cancelled").is_cancelled());

    // The abort runs on a spawned task: wait for it, within reason.
    let mut pending = env.pending_uploads().await;
    for _ in 0..100 {
        if pending.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        pending = env.pending_uploads().await;
    }
    assert!(pending.is_empty(), "upload still open: {pending:?}");
    assert!(!env.exists(&key).await);
}
