//! `S3Blobs` against moto.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use kode::model::{AssetId, OrderId, OrderLineId, SubOrderId};
use kode::model::{ObjectKey, ObjectMeta};
use kode::store::aws::{S3Blobs, UploadBudget};
use kode::store::{Blobs, PutError, StoreError};
use kode::stream::{ChunkSource, SourceError};
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

/// The CRC64NVME of `data` as S3 reports it (base64, big-endian).
fn crc64_base64(data: &[u8]) -> String {
    use base64::Engine as _;
    let crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, data);
    base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes())
}

/// Records the whole-object CRC64NVME of every `PutObject` and
/// `CompleteMultipartUpload` sent. moto neither checks nor keeps these
/// correctly (none for `PutObject`, a wrong one for a full-object multipart
/// upload), so the tests check what the adapter asks S3 to verify.
#[derive(Debug, Clone, Default)]
struct SentChecksums(Arc<Mutex<Vec<String>>>);

impl SentChecksums {
    fn last(&self) -> Option<String> {
        self.0.lock().unwrap().last().cloned()
    }
}

impl aws_sdk_s3::config::Intercept for SentChecksums {
    fn name(&self) -> &'static str {
        "SentChecksums"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_sdk_s3::config::RuntimeComponents,
        _: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        let request = context.request();
        let is_part = request.uri().contains("partNumber=");
        if let Some(crc) = request.headers().get("x-amz-checksum-crc64nvme") {
            if !is_part {
                self.0.lock().unwrap().push(crc.to_owned());
            }
        }
        Ok(())
    }
}

struct S3Env {
    client: aws_sdk_s3::Client,
    bucket: String,
    sent: SentChecksums,
}

impl S3Env {
    async fn new() -> Self {
        Self::with_interceptor(None).await
    }

    async fn with_interceptor(extra: Option<LoseCompletionAnswers>) -> Self {
        let config = support::aws_config().await;
        let sent = SentChecksums::default();
        let mut builder = aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            // moto answers a wrong CRC64NVME for multipart objects, which
            // the SDK would refuse when reading them back.
            .response_checksum_validation(
                aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
            )
            .interceptor(sent.clone());
        if let Some(extra) = extra {
            builder = builder.interceptor(extra);
        }
        let mut env = Self::with_client(aws_sdk_s3::Client::from_conf(builder.build())).await;
        env.sent = sent;
        env
    }

    /// A bucket that keeps versions, as the deployed one does.
    async fn versioned() -> Self {
        let env = Self::new().await;
        env.enable_versioning().await;
        env
    }

    async fn enable_versioning(&self) {
        self.client
            .put_bucket_versioning()
            .bucket(&self.bucket)
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .expect("enable versioning");
    }

    async fn with_client(client: aws_sdk_s3::Client) -> Self {
        let bucket = support::unique_name("store-aws");
        support::create_bucket(&client, &bucket).await;
        S3Env {
            client,
            bucket,
            sent: SentChecksums::default(),
        }
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

    /// The tags of the object's current version.
    async fn tags(&self, key: &ObjectKey) -> HashMap<String, String> {
        self.client
            .get_object_tagging()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
            .expect("get object tagging")
            .tag_set()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect()
    }

    /// Version ids of `key`, newest first, with their bodies.
    async fn versions(&self, key: &ObjectKey) -> Vec<(String, Vec<u8>)> {
        let listed = self
            .client
            .list_object_versions()
            .bucket(&self.bucket)
            .prefix(key.as_str())
            .send()
            .await
            .expect("list object versions");
        let mut versions = Vec::new();
        for version in listed.versions() {
            let id = version.version_id().expect("version id").to_owned();
            let body = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(key.as_str())
                .version_id(&id)
                .send()
                .await
                .expect("get version")
                .body
                .collect()
                .await
                .expect("read version")
                .to_vec();
            versions.push((id, body));
        }
        versions
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

/// The metadata of DESIGN.md but the digest (see `assert_digests`).
fn assert_full_metadata(metadata: &HashMap<String, String>) {
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
    assert_full_metadata(&metadata);
    assert_eq!(metadata.get("sha256"), Some(&sha256_hex(&data)));
    assert_eq!(content_type.as_deref(), Some("application/pdf"));
    assert!(env.exists(&key).await);
}

#[tokio::test]
async fn large_put_goes_multipart_and_arrives_byte_exact_with_sha256() {
    let env = S3Env::versioned().await;
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
    assert_full_metadata(&metadata);
    assert_eq!(
        metadata.get("sha256"),
        None,
        "metadata is set before the bytes are known"
    );
    assert_eq!(env.tags(&key).await.get("sha256"), Some(&sha256_hex(&data)));
    assert_eq!(env.sent.last(), Some(crc64_base64(&data)), "CRC64NVME");
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

#[tokio::test]
async fn bodies_at_part_boundaries_round_trip_byte_exact_with_their_checksums() {
    let env = S3Env::versioned().await;
    let part = S3Blobs::MIN_PART_SIZE;
    for len in [0, 1, MIB, MIB + 1, part, part + 1, 3 * part + 7] {
        let key = ObjectKey(format!("orders/1000123/b{len}/{len}.pdf"));
        let data = body(len);
        let stored = env
            .blobs()
            .put(&key, &meta("b"), &mut MemorySource::new(data.clone()))
            .await
            .unwrap_or_else(|e| panic!("put {len} bytes: {e}"));

        assert_eq!(stored.bytes, len as u64, "{len} bytes");
        assert_eq!(stored.sha256, sha256_hex(&data), "{len} bytes");
        let (read, metadata, _) = env.get(&key).await;
        assert!(read == data, "{len} bytes: content differs");
        assert_eq!(
            env.sent.last(),
            Some(crc64_base64(&data)),
            "{len} bytes: CRC64NVME"
        );
        // One request up to a part, so the digest can ride in the metadata;
        // beyond, a tag on the version the upload created.
        let sha256 = if len <= part {
            metadata.get("sha256").cloned()
        } else {
            env.tags(&key).await.get("sha256").cloned()
        };
        assert_eq!(sha256, Some(sha256_hex(&data)), "{len} bytes: sha256");
    }
    assert!(env.pending_uploads().await.is_empty());
}

/// Fails every `CompleteMultipartUpload` after S3 has carried it out: the
/// object is complete, but the uploader never hears so.
#[derive(Debug, Default)]
struct LoseCompletionAnswers {
    /// Set while a completion is on the wire (nothing else is, then).
    completing: std::sync::atomic::AtomicBool,
}

impl aws_sdk_s3::config::Intercept for LoseCompletionAnswers {
    fn name(&self) -> &'static str {
        "LoseCompletionAnswers"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_sdk_s3::config::RuntimeComponents,
        _: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        let request = context.request();
        let completes = request.method() == "POST" && request.uri().contains("uploadId=");
        self.completing
            .store(completes, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    fn read_after_transmit(
        &self,
        context: &aws_sdk_s3::config::interceptors::BeforeDeserializationInterceptorContextRef<'_>,
        _: &aws_sdk_s3::config::RuntimeComponents,
        _: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        let completed = self.completing.load(std::sync::atomic::Ordering::SeqCst)
            && context.response().status().is_success();
        if completed {
            return Err("connection lost after the upload completed".into());
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_failure_after_completion_leaves_every_version_alone() {
    let env = S3Env::with_interceptor(Some(LoseCompletionAnswers::default())).await;
    env.enable_versioning().await;
    let key = ObjectKey("orders/1000123/race/race.pdf".into());
    let theirs = Bytes::from_static(b"another run's recorded file");
    env.client
        .put_object()
        .bucket(&env.bucket)
        .key(key.as_str())
        .body(theirs.clone().into())
        .send()
        .await
        .expect("another run's object");
    let ours = body(12 * MIB);

    let err = env
        .blobs()
        .put(&key, &meta("race"), &mut MemorySource::new(ours.clone()))
        .await
        .expect_err("the completion answer was lost");

    assert!(matches!(err, PutError::Store(_)), "{err}");
    let versions = env.versions(&key).await;
    assert!(
        versions.iter().any(|(_, body)| *body == theirs),
        "the other run's version was deleted"
    );
    assert!(
        versions.iter().any(|(_, body)| *body == ours),
        "the completed upload was deleted"
    );
    assert!(env.pending_uploads().await.is_empty());
}

#[tokio::test]
async fn a_large_put_reuses_its_part_buffers() {
    let env = S3Env::new().await;
    // Parts pool of 12 MiB: two 5 MiB parts at once.
    let budget = UploadBudget::new(16 * MIB as u64);
    let blobs = env.blobs().with_budget(budget.clone()).expect("budget");
    let key = ObjectKey("orders/1000124/big/Kart.tif".into());
    let data = body(8 * S3Blobs::MIN_PART_SIZE + 1);
    let stored = blobs
        .put(&key, &meta("big"), &mut MemorySource::new(data.clone()))
        .await
        .expect("put");

    assert_eq!(stored.sha256, sha256_hex(&data));
    assert!(env.get(&key).await.0 == data, "content differs");
    let parts_pool = budget.total() - budget.total() / 4;
    assert!(
        budget.part_bytes_allocated() <= parts_pool,
        "allocated {} bytes for 9 parts, where the pool holds {parts_pool}",
        budget.part_bytes_allocated()
    );
}

#[tokio::test]
async fn a_full_batch_of_uploads_stays_within_one_memory_budget() {
    let env = S3Env::new().await;
    // Room for two 5 MiB parts and four 1 MiB starts: far less than the
    // batch would buffer with a budget per upload.
    let budget = UploadBudget::new(16 * MIB as u64);
    let blobs = env
        .blobs()
        .with_budget(budget.clone())
        .expect("16 MiB holds a 5 MiB part");
    // 10 orders x 4 files, all at once, as the processor runs a full batch.
    let sizes = [6 * MIB + 3, 2 * MIB, 300 * 1024, 16 * 1024];
    let puts = (0..10).flat_map(|order| {
        sizes
            .iter()
            .enumerate()
            .map(move |(i, &len)| (order, i, len))
    });
    let uploads = puts.map(|(order, i, len)| {
        let blobs = blobs.clone();
        tokio::spawn(async move {
            let key = ObjectKey(format!("orders/{order}/f{i}/f.pdf"));
            let data = body(len + order);
            let stored = blobs
                .put(&key, &meta("f"), &mut MemorySource::new(data.clone()))
                .await
                .expect("put");
            assert_eq!(stored.sha256, sha256_hex(&data), "{key}");
            key
        })
    });
    let keys: Vec<ObjectKey> = join_in_order(uploads).await;

    assert_eq!(keys.len(), 40);
    for key in &keys {
        assert!(env.exists(key).await, "{key}");
    }
    assert!(
        budget.peak() <= budget.total(),
        "held {} bytes at peak, budget {}",
        budget.peak(),
        budget.total()
    );
    assert!(
        budget.peak() >= 2 * S3Blobs::MIN_PART_SIZE as u64,
        "parts went up one at a time: peak {}",
        budget.peak()
    );
    // The HTTP client may drop its copy of a part's bytes (which hold
    // their reservation) a moment after the answer.
    let released = async {
        while budget.held() > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), released)
        .await
        .expect("every reservation was given back");
    assert!(env.pending_uploads().await.is_empty());
}

async fn join_in_order<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let handles: Vec<_> = handles.collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.expect("upload task"));
    }
    out
}
