//! [`Blobs`] on S3.
//!
//! A body that fits in one part goes up with one `PutObject`. A larger one
//! goes up as a multipart upload, part by part, with at most two parts in
//! memory (one uploading while the next is read), and is aborted on any
//! failure so that no half object and no stray parts stay behind.
//!
//! The SHA-256 is only known once the whole body has been read, after the
//! multipart upload was created with its metadata. S3 metadata cannot be
//! changed in place, so the completed object is copied onto itself with
//! `MetadataDirective=REPLACE` and the full metadata plus `sha256`. That copy
//! is server-side (no bytes pass through the Lambda) but S3 only copies
//! objects up to 5 GiB in one request, so larger bodies are refused.

mod meta;
mod parts;

use async_trait::async_trait;
use aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumType, CompletedMultipartUpload, CompletedPart, MetadataDirective,
};
use bytes::Bytes;

use super::sdk_error::classify;
use crate::store::{Blobs, ChunkSource, ObjectKey, ObjectMeta, PutError, StoreError, StoredObject};
use parts::PartReader;

const MIB: usize = 1024 * 1024;
/// The largest object `CopyObject` accepts, and so the largest we can label
/// with its SHA-256.
const MAX_OBJECT_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// Stores objects in one bucket. Cheap to clone (the client is shared).
#[derive(Debug, Clone)]
pub struct S3Blobs {
    client: aws_sdk_s3::Client,
    bucket: String,
    part_size: usize,
}

impl S3Blobs {
    pub const DEFAULT_PART_SIZE: usize = 8 * MIB;
    /// S3's minimum for every part but the last.
    pub const MIN_PART_SIZE: usize = 5 * MIB;

    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        S3Blobs {
            client,
            bucket: bucket.into(),
            part_size: Self::DEFAULT_PART_SIZE,
        }
    }

    /// Bodies up to `part_size` bytes go up in one request; memory use of a
    /// `put` is about twice this.
    pub fn with_part_size(mut self, part_size: usize) -> Result<Self, StoreError> {
        if part_size < Self::MIN_PART_SIZE || part_size as u64 > MAX_OBJECT_BYTES {
            return Err(StoreError::Permanent(format!(
                "S3 part size must be between {} and {MAX_OBJECT_BYTES} bytes, got {part_size}",
                Self::MIN_PART_SIZE
            )));
        }
        self.part_size = part_size;
        Ok(self)
    }

    async fn put_single(
        &self,
        key: &ObjectKey,
        meta: &ObjectMeta,
        content_type: Option<String>,
        body: Bytes,
        stored: &StoredObject,
    ) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .content_length(body.len() as i64)
            .set_content_type(content_type)
            .set_metadata(Some(meta::user_metadata(meta, Some(&stored.sha256))))
            .body(ByteStream::from(body))
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
        first: Bytes,
        reader: &mut PartReader<'_>,
    ) -> Result<StoredObject, PutError> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .set_content_type(content_type.clone())
            .set_metadata(Some(meta::user_metadata(meta, None)))
            // Declared up front so that S3 accepts the SDK's per-part CRC32s
            // and combines them into a CRC32 of the whole object, which
            // readers verify like that of a single-request upload (a
            // composite checksum is not verifiable that way).
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
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

        match self.upload_parts(key, upload_id, first, reader).await {
            Ok(_) => pending.disarm(),
            Err(err) => {
                pending.abort().await;
                return Err(err);
            }
        }
        let stored = reader.summary();
        if let Err(err) = self
            .label_with_sha256(key, meta, content_type, &stored)
            .await
        {
            // Left in place, not deleted: a concurrent run may have uploaded
            // the same file under this key and recorded it, and a failed
            // step must never remove that. The next delivery uploads it again
            // with its label.
            tracing::warn!(key = %key, error = %err, "object left without its sha256 label");
            return Err(err.into());
        }
        Ok(stored)
    }

    /// Uploads `first` and the rest of `reader`, reading the next part while
    /// the current one uploads, then completes the upload.
    async fn upload_parts(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        first: Bytes,
        reader: &mut PartReader<'_>,
    ) -> Result<CompleteMultipartUploadOutput, PutError> {
        let mut completed = Vec::new();
        let mut current = first;
        let mut number = 1;
        while !reader.finished() {
            let (part, next) = tokio::try_join!(
                self.upload_part(key, upload_id, number, current),
                reader.next_part()
            )?;
            completed.push(part);
            current = next;
            number += 1;
        }
        // A body that is an exact multiple of the part size ends with an
        // empty read; S3 refuses empty parts that are not the only one.
        if !current.is_empty() {
            completed.push(self.upload_part(key, upload_id, number, current).await?);
        }
        let output = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(upload_id)
            .checksum_type(ChecksumType::FullObject)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| classify(&format!("CompleteMultipartUpload {key}"), e))?;
        Ok(output)
    }

    async fn upload_part(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        number: i32,
        body: Bytes,
    ) -> Result<CompletedPart, PutError> {
        let output = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(upload_id)
            .part_number(number)
            .content_length(body.len() as i64)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| classify(&format!("UploadPart {number} of {key}"), e))?;
        Ok(CompletedPart::builder()
            .part_number(number)
            .set_e_tag(output.e_tag)
            .set_checksum_crc32(output.checksum_crc32)
            .build())
    }

    async fn label_with_sha256(
        &self,
        key: &ObjectKey,
        meta: &ObjectMeta,
        content_type: Option<String>,
        stored: &StoredObject,
    ) -> Result<(), StoreError> {
        self.client
            .copy_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .copy_source(meta::copy_source(&self.bucket, key.as_str()))
            .metadata_directive(MetadataDirective::Replace)
            .set_content_type(content_type)
            .set_metadata(Some(meta::user_metadata(meta, Some(&stored.sha256))))
            .send()
            .await
            .map_err(|e| classify(&format!("CopyObject (sha256 metadata) {key}"), e))?;
        Ok(())
    }
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
        let mut reader = PartReader::new(body, self.part_size, MAX_OBJECT_BYTES);
        let first = reader.next_part().await?;
        if reader.finished() {
            let stored = reader.summary();
            self.put_single(key, meta, content_type, first, &stored)
                .await?;
            return Ok(stored);
        }
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

    async fn exists(&self, key: &ObjectKey) -> Result<bool, StoreError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(false),
            Err(err) => Err(classify(&format!("HeadObject {key}"), err)),
        }
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
    fn part_sizes_below_the_s3_minimum_are_refused() {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .build();
        let blobs = S3Blobs::new(aws_sdk_s3::Client::from_conf(config), "bucket");
        let err = blobs
            .clone()
            .with_part_size(S3Blobs::MIN_PART_SIZE - 1)
            .expect_err("below 5 MiB");
        assert!(!err.is_retryable());
        assert!(blobs.with_part_size(S3Blobs::MIN_PART_SIZE).is_ok());
    }
}
