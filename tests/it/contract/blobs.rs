//! The file store contract: the same checks on `DiskBlobs` (a temp
//! directory) and `S3Blobs` (moto). A `put` leaves the exact bytes or
//! nothing; deleting a missing key is fine.

use async_trait::async_trait;
use bytes::Bytes;
use kode::model::{AssetId, ObjectKey, ObjectMeta, OrderId, SubOrderId};
use kode::store::aws::S3Blobs;
use kode::store::local::DiskBlobs;
use kode::store::{Blobs, PutError};
use kode::stream::{ChunkSource, SourceError};
use sha2::{Digest, Sha256};

use crate::support;

/// A store under test and a way to look at it from outside the adapter.
#[async_trait]
trait Subject: Send + Sync {
    fn blobs(&self) -> &dyn Blobs;
    /// The stored bytes, `None` when the key holds nothing.
    async fn read(&self, key: &ObjectKey) -> Option<Vec<u8>>;
    /// Anything a failed `put` could have left behind (temp files,
    /// unfinished multipart uploads).
    async fn leftovers(&self) -> Vec<String>;
}

struct Disk {
    dir: tempfile::TempDir,
    blobs: DiskBlobs,
}

#[async_trait]
impl Subject for Disk {
    fn blobs(&self) -> &dyn Blobs {
        &self.blobs
    }

    async fn read(&self, key: &ObjectKey) -> Option<Vec<u8>> {
        std::fs::read(self.dir.path().join("assets").join(key.as_str())).ok()
    }

    async fn leftovers(&self) -> Vec<String> {
        match std::fs::read_dir(self.dir.path().join("tmp")) {
            Ok(entries) => entries
                .map(|e| e.expect("tmp entry").path().display().to_string())
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

async fn disk() -> Disk {
    let dir = tempfile::tempdir().expect("temp dir");
    let blobs = DiskBlobs::new(dir.path());
    Disk { dir, blobs }
}

struct S3 {
    client: aws_sdk_s3::Client,
    bucket: String,
    blobs: S3Blobs,
}

#[async_trait]
impl Subject for S3 {
    fn blobs(&self) -> &dyn Blobs {
        &self.blobs
    }

    async fn read(&self, key: &ObjectKey) -> Option<Vec<u8>> {
        if !support::object_exists(&self.client, &self.bucket, key.as_str()).await {
            return None;
        }
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
            .expect("GetObject");
        Some(object.body.collect().await.expect("body").to_vec())
    }

    async fn leftovers(&self) -> Vec<String> {
        let uploads = self
            .client
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .send()
            .await
            .expect("ListMultipartUploads");
        uploads
            .uploads()
            .iter()
            .map(|u| format!("multipart upload of {}", u.key().unwrap_or("?")))
            .collect()
    }
}

async fn s3() -> S3 {
    let config = support::aws_config().await;
    let client = kode::aws::s3_client(&config);
    let bucket = support::unique_name("contract");
    support::create_bucket(&client, &bucket).await;
    let blobs = S3Blobs::new(client.clone(), &bucket);
    S3 {
        client,
        bucket,
        blobs,
    }
}

macro_rules! contract {
    ($($check:ident),* $(,)?) => {
        mod disk {
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(&super::disk().await).await;
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(&super::s3().await).await;
                }
            )*
        }
    };
}

contract!(
    put_stores_the_exact_bytes_with_their_size_and_sha256,
    put_again_replaces_the_object,
    a_source_failing_midway_leaves_nothing,
    delete_removes_and_a_missing_key_is_fine,
);

/// A body served in chunks of `chunk` bytes, failing after `fail_at` bytes
/// if set.
struct Source {
    data: Bytes,
    chunk: usize,
    sent: usize,
    fail_at: Option<usize>,
}

impl Source {
    fn new(data: &[u8]) -> Source {
        Source {
            data: Bytes::copy_from_slice(data),
            chunk: 16 * 1024,
            sent: 0,
            fail_at: None,
        }
    }
}

#[async_trait]
impl ChunkSource for Source {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, SourceError> {
        if self.fail_at.is_some_and(|at| self.sent >= at) {
            return Err(SourceError::Truncated {
                received: self.sent as u64,
                expected: Some(self.data.len() as u64),
            });
        }
        if self.sent == self.data.len() {
            return Ok(None);
        }
        let end = (self.sent + self.chunk).min(self.data.len());
        let chunk = self.data.slice(self.sent..end);
        self.sent = end;
        Ok(Some(chunk))
    }
}

fn meta() -> ObjectMeta {
    ObjectMeta {
        order_id: OrderId(1_000_123),
        sub_order_id: SubOrderId(2001),
        order_line_id: None,
        asset_id: AssetId::from("a1"),
        product_category: Some("Kart".into()),
        original_name: "Målebrev for Ærøgata 1.pdf".into(),
        content_type: Some("application/pdf".into()),
    }
}

fn key(name: &str) -> ObjectKey {
    ObjectKey(format!("orders/1000123/a1/{name}"))
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

async fn put_stores_the_exact_bytes_with_their_size_and_sha256(subject: &dyn Subject) {
    for (len, name) in [
        (0, "empty.pdf"),
        (1, "one.pdf"),
        (300 * 1024 + 7, "Målebrev for Ærøgata 1.pdf"),
    ] {
        let data = pattern(len);
        let key = key(name);
        let stored = subject
            .blobs()
            .put(&key, &meta(), &mut Source::new(&data))
            .await
            .unwrap_or_else(|e| panic!("put {len} bytes: {e}"));
        assert_eq!(stored.bytes, len as u64);
        assert_eq!(stored.sha256, hex::encode(Sha256::digest(&data)));
        assert_eq!(
            subject.read(&key).await.as_deref(),
            Some(&data[..]),
            "{name}"
        );
    }
    assert!(subject.leftovers().await.is_empty());
}

async fn put_again_replaces_the_object(subject: &dyn Subject) {
    let key = key("Kart.pdf");
    for content in [&b"first delivery"[..], &b"second"[..]] {
        subject
            .blobs()
            .put(&key, &meta(), &mut Source::new(content))
            .await
            .expect("put");
        assert_eq!(subject.read(&key).await.as_deref(), Some(content));
    }
}

async fn a_source_failing_midway_leaves_nothing(subject: &dyn Subject) {
    let key = key("broken.pdf");
    let mut source = Source::new(&pattern(200 * 1024));
    source.fail_at = Some(100 * 1024);
    let err = subject
        .blobs()
        .put(&key, &meta(), &mut source)
        .await
        .unwrap_err();
    assert!(
        matches!(err, PutError::Source(SourceError::Truncated { .. })),
        "{err}"
    );
    assert!(err.is_retryable());
    assert_eq!(subject.read(&key).await, None);
    assert_eq!(subject.leftovers().await, Vec::<String>::new());
}

async fn delete_removes_and_a_missing_key_is_fine(subject: &dyn Subject) {
    let key = key("gone.pdf");
    subject
        .blobs()
        .put(&key, &meta(), &mut Source::new(b"soon gone"))
        .await
        .expect("put");
    subject.blobs().delete(&key).await.expect("delete");
    assert_eq!(subject.read(&key).await, None);
    subject
        .blobs()
        .delete(&key)
        .await
        .expect("deleting a missing key is fine");
    subject
        .blobs()
        .delete(&ObjectKey("orders/1000123/never/never.pdf".into()))
        .await
        .expect("deleting a never stored key is fine");
}
