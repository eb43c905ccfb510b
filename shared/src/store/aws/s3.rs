//! [`Blobs`] on S3.
//!
//! One pass over the bytes: as the body is read it is cut into parts and
//! its SHA-256 and CRC64NVME are taken; nothing is read or copied twice. A
//! body that fits in one part goes up with one `PutObject`, carrying its
//! `sha256` in the metadata. A larger one goes up as a multipart upload with
//! several parts in flight, declared as a full-object CRC64NVME that S3
//! checks against the whole object at completion; it is aborted on any
//! failure so that no half object and no stray parts stay behind.
//!
//! Metadata cannot be added after a multipart upload has begun, and copying
//! the object onto itself to add it would write it twice and could label
//! bytes another run put under the same key. So a multipart object carries
//! its SHA-256 only as a tag on the exact version its completion created
//! (versioned buckets), and the ledger always has it. Nothing after
//! completion deletes anything: the object is complete and verified by then.
//!
//! Every byte held for an upload is reserved from one [`UploadBudget`]
//! shared by all uploads of the process; an upload waits for budget rather
//! than exceed it.

mod budget;
mod meta;
mod parts;

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumType, CompletedMultipartUpload, CompletedPart, Tag, Tagging,
};
use bytes::Bytes;
use tokio::task::JoinSet;

use super::sdk_error::classify;
use crate::model::{ObjectKey, ObjectMeta};
use crate::store::{Blobs, PutError, StoreError, StoredObject};
use crate::stream::ChunkSource;
use budget::Kind;
pub use budget::UploadBudget;
use parts::{crc64_header, PartReader};

const MIB: usize = 1024 * 1024;
/// What every upload reserves first; a body that ends within it never holds
/// a whole part, so small files do not queue behind large ones.
const START_BYTES: usize = MIB;
/// Parts of one upload in flight at once (the budget may allow fewer).
const MAX_PARTS_IN_FLIGHT: usize = 4;
/// S3's limit on the parts of one upload.
const MAX_PARTS: u64 = 10_000;

/// Stores objects in one bucket. Cheap to clone (the client and the budget
/// are shared).
#[derive(Debug, Clone)]
pub struct S3Blobs {
    client: aws_sdk_s3::Client,
    bucket: String,
    part_size: usize,
    budget: UploadBudget,
}

impl S3Blobs {
    pub const DEFAULT_PART_SIZE: usize = 8 * MIB;
    /// S3's minimum for every part but the last.
    pub const MIN_PART_SIZE: usize = 5 * MIB;
    /// Bounded so that a part's reservation fits the budget's counter.
    pub const MAX_PART_SIZE: usize = 1024 * MIB;
    /// Room for the start of a dozen uploads and four 8 MiB parts.
    pub const DEFAULT_BUDGET_BYTES: u64 = 48 * MIB as u64;

    /// With its own budget of [`Self::DEFAULT_BUDGET_BYTES`]; a process
    /// with several stores should share one through [`Self::with_budget`].
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        S3Blobs {
            client,
            bucket: bucket.into(),
            part_size: Self::DEFAULT_PART_SIZE,
            budget: UploadBudget::new(Self::DEFAULT_BUDGET_BYTES),
        }
    }

    /// Bodies up to `part_size` bytes go up in one request; objects up to
    /// 10,000 parts.
    pub fn with_part_size(mut self, part_size: usize) -> Result<Self, StoreError> {
        if !(Self::MIN_PART_SIZE..=Self::MAX_PART_SIZE).contains(&part_size) {
            return Err(StoreError::Permanent(format!(
                "S3 part size must be between {} and {} bytes, got {part_size}",
                Self::MIN_PART_SIZE,
                Self::MAX_PART_SIZE
            )));
        }
        self.budget.check_fits(START_BYTES, part_size)?;
        self.part_size = part_size;
        Ok(self)
    }

    /// Buffers every upload's bytes within `budget` (shared with whoever
    /// else holds a clone of it).
    pub fn with_budget(mut self, budget: UploadBudget) -> Result<Self, StoreError> {
        budget.check_fits(START_BYTES, self.part_size)?;
        self.budget = budget;
        Ok(self)
    }

    async fn put_single(
        &self,
        key: &ObjectKey,
        meta: &ObjectMeta,
        content_type: Option<String>,
        body: Bytes,
        crc: u64,
        stored: &StoredObject,
    ) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .content_length(body.len() as i64)
            .set_content_type(content_type)
            .set_metadata(Some(meta::user_metadata(meta, Some(&stored.sha256))))
            // Already computed while reading: the SDK neither hashes the
            // body for the signature (TLS protects it in transit) nor
            // computes a checksum of its own.
            .checksum_crc64_nvme(crc64_header(crc))
            .body(ByteStream::from(body))
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(|e| classify(&format!("PutObject {key}"), e))?;
        Ok(())
    }

    async fn put_multipart(
        &self,
        key: &ObjectKey,
        meta: &ObjectMeta,
        content_type: Option<String>,
        first: Part,
        reader: &mut PartReader<'_>,
    ) -> Result<StoredObject, PutError> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .set_content_type(content_type)
            .set_metadata(Some(meta::user_metadata(meta, None)))
            // A full-object CRC (not a composite of the parts) is what
            // readers verify like that of a single-request upload, and S3
            // checks it against the whole object at completion.
            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
            .checksum_type(ChecksumType::FullObject)
            .send()
            .await
            .map_err(|e| classify(&format!("CreateMultipartUpload {key}"), e))?;
        let upload_id = created.upload_id().ok_or_else(|| {
            StoreError::Permanent(format!("CreateMultipartUpload {key}: no upload id"))
        })?;
        let pending = PendingUpload {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.as_str().to_owned(),
            upload_id: upload_id.to_owned(),
            armed: true,
        };
        tracing::debug!(key = %key, uploadId = upload_id, "multipart upload started");

        let version = match self.upload_parts(key, upload_id, first, reader).await {
            Ok(version) => {
                pending.disarm();
                version
            }
            Err(err) => {
                // Also after a lost completion answer: the abort then fails
                // harmlessly and the completed object stays (it may be
                // another run's by now, so it is never deleted).
                pending.abort().await;
                return Err(err);
            }
        };
        let stored = reader.summary();
        if let Some(version) = version {
            self.tag_version(key, &version, &stored).await;
        }
        Ok(stored)
    }

    /// Uploads `first` and the rest of `reader`, up to
    /// [`MAX_PARTS_IN_FLIGHT`] parts at once within the budget, then
    /// completes the upload; returns the version it created, if the bucket
    /// keeps versions.
    async fn upload_parts(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        first: Part,
        reader: &mut PartReader<'_>,
    ) -> Result<Option<String>, PutError> {
        // Dropping the set (an error, a cancelled `put`) stops every part
        // still in flight and gives its budget back.
        let mut in_flight = JoinSet::new();
        let mut completed = Vec::new();
        let mut number = 1;
        in_flight.spawn(self.upload_part(key, upload_id, number, first));
        while !reader.at_end().await? {
            while let Some(done) = in_flight.try_join_next() {
                completed.push(joined(done)?);
            }
            if in_flight.len() >= MAX_PARTS_IN_FLIGHT {
                if let Some(done) = in_flight.join_next().await {
                    completed.push(joined(done)?);
                }
            }
            let mut reservation = self.budget.reserve(Kind::Part, self.part_size).await;
            let mut data = reservation.buffer();
            reader.fill(&mut data, self.part_size).await?;
            let crc = reader.finish_part();
            number += 1;
            in_flight.spawn(self.upload_part(
                key,
                upload_id,
                number,
                Part {
                    data: reservation.hold(data),
                    crc,
                },
            ));
        }
        while let Some(done) = in_flight.join_next().await {
            completed.push(joined(done)?);
        }
        completed.sort_by_key(|part| part.part_number());
        let output = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(upload_id)
            .checksum_type(ChecksumType::FullObject)
            .checksum_crc64_nvme(crc64_header(reader.whole_crc()))
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| classify(&format!("CompleteMultipartUpload {key}"), e))?;
        Ok(output.version_id)
    }

    /// A task uploading one part; its reservation is given back when the
    /// part's bytes are dropped.
    fn upload_part(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        number: i32,
        part: Part,
    ) -> impl std::future::Future<Output = Result<CompletedPart, StoreError>> + Send + 'static {
        let request = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(upload_id)
            .part_number(number)
            .content_length(part.data.len() as i64)
            .checksum_crc64_nvme(crc64_header(part.crc))
            .body(ByteStream::from(part.data));
        let what = format!("UploadPart {number} of {key}");
        async move {
            let output = request
                .customize()
                .disable_payload_signing()
                .send()
                .await
                .map_err(|e| classify(&what, e))?;
            Ok(CompletedPart::builder()
                .part_number(number)
                .set_e_tag(output.e_tag)
                .set_checksum_crc64_nvme(output.checksum_crc64_nvme)
                .build())
        }
    }

    /// Labels the version this upload created with its SHA-256. Best
    /// effort: the ledger has the digest whatever happens here, and the
    /// object itself is complete and verified.
    async fn tag_version(&self, key: &ObjectKey, version: &str, stored: &StoredObject) {
        let tag = Tag::builder()
            .key("sha256")
            .value(&stored.sha256)
            .build()
            .expect("key and value are set");
        let result = self
            .client
            .put_object_tagging()
            .bucket(&self.bucket)
            .key(key.as_str())
            .version_id(version)
            .tagging(
                Tagging::builder()
                    .tag_set(tag)
                    .build()
                    .expect("tag set is set"),
            )
            .send()
            .await;
        if let Err(err) = result {
            tracing::warn!(key = %key, versionId = version, error = %classify("PutObjectTagging", err), "could not tag the object version with its sha256");
        }
    }
}

/// A part's bytes (holding their budget) with their CRC.
struct Part {
    data: Bytes,
    crc: u64,
}

fn joined(
    done: Result<Result<CompletedPart, StoreError>, tokio::task::JoinError>,
) -> Result<CompletedPart, PutError> {
    done.map_err(|e| StoreError::Permanent(format!("part upload task failed: {e}")))?
        .map_err(PutError::from)
}

#[async_trait]
impl Blobs for S3Blobs {
    async fn put(
        &self,
        key: &ObjectKey,
        meta: &ObjectMeta,
        body: &mut dyn ChunkSource,
    ) -> Result<StoredObject, PutError> {
        let content_type = meta::content_type(meta, body.content_type());
        let mut reader = PartReader::new(body, MAX_PARTS * self.part_size as u64);

        let mut start = self.budget.reserve(Kind::Start, START_BYTES).await;
        let mut head = start.buffer();
        reader.fill(&mut head, START_BYTES).await?;
        let (data, mut reservation) = if reader.at_end().await? {
            (head, start)
        } else {
            // The body outgrew its start: move it into a whole part, then
            // give the start back.
            let mut part = self.budget.reserve(Kind::Part, self.part_size).await;
            let mut data = part.buffer();
            data.extend_from_slice(&head);
            drop((head, start));
            reader.fill(&mut data, self.part_size).await?;
            (data, part)
        };
        let crc = reader.finish_part();
        if reader.at_end().await? {
            reservation.shrink_to(data.len());
            let stored = reader.summary();
            let body = reservation.hold(data);
            self.put_single(key, meta, content_type, body, crc, &stored)
                .await?;
            return Ok(stored);
        }
        let first = Part {
            data: reservation.hold(data),
            crc,
        };
        self.put_multipart(key, meta, content_type, first, &mut reader)
            .await
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        // S3 answers 204 for a missing key too.
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteObject {key}"), e))?;
        Ok(())
    }
}

/// A multipart upload that must not outlive a failed `put`. Aborted
/// explicitly on errors; if the `put` future is dropped (deadline,
/// cancellation) the abort is sent from a spawned task instead.
struct PendingUpload {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    upload_id: String,
    armed: bool,
}

impl PendingUpload {
    fn disarm(mut self) {
        self.armed = false;
    }

    async fn abort(mut self) {
        self.armed = false;
        abort_upload(&self.client, &self.bucket, &self.key, &self.upload_id).await;
    }
}

impl Drop for PendingUpload {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(key = %self.key, uploadId = %self.upload_id, "multipart upload left open: no runtime to abort it");
            return;
        };
        let client = self.client.clone();
        let (bucket, key, upload_id) = (
            std::mem::take(&mut self.bucket),
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.upload_id),
        );
        runtime.spawn(async move { abort_upload(&client, &bucket, &key, &upload_id).await });
    }
}

/// Best effort: the bucket's lifecycle rule for incomplete multipart uploads
/// removes what this cannot.
async fn abort_upload(client: &aws_sdk_s3::Client, bucket: &str, key: &str, upload_id: &str) {
    match client
        .abort_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .send()
        .await
    {
        Ok(_) => tracing::debug!(key, uploadId = upload_id, "multipart upload aborted"),
        Err(err) => tracing::warn!(
            key,
            uploadId = upload_id,
            error = %classify("AbortMultipartUpload", err),
            "could not abort multipart upload"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_sizes_outside_s3_limits_or_the_budget_are_refused() {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .build();
        let blobs = S3Blobs::new(aws_sdk_s3::Client::from_conf(config), "bucket");
        let err = blobs
            .clone()
            .with_part_size(S3Blobs::MIN_PART_SIZE - 1)
            .expect_err("below 5 MiB");
        assert!(!err.is_retryable());
        assert!(blobs.clone().with_part_size(S3Blobs::MIN_PART_SIZE).is_ok());
        let small = UploadBudget::new(8 * MIB as u64);
        assert!(
            blobs.clone().with_budget(small).is_err(),
            "6 MiB for parts cannot hold one 8 MiB part"
        );
        let tight = UploadBudget::new(8 * MIB as u64);
        let blobs = blobs
            .with_part_size(S3Blobs::MIN_PART_SIZE)
            .and_then(|b| b.with_budget(tight))
            .expect("2 MiB for starts, 6 MiB for one 5 MiB part");
        assert!(blobs.with_part_size(S3Blobs::DEFAULT_PART_SIZE).is_err());
    }
}
