//! Cuts a [`ChunkSource`] into upload parts of a fixed size while hashing and
//! counting it, so that memory stays bounded by the part size whatever the
//! length of the body.

use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};

use crate::store::{PutError, StoreError, StoredObject};
use crate::stream::ChunkSource;

pub(super) struct PartReader<'a> {
    source: &'a mut dyn ChunkSource,
    part_size: usize,
    max_bytes: u64,
    hasher: Sha256,
    bytes: u64,
    /// The tail of a chunk that overflowed the previous part.
    carry: Option<Bytes>,
    ended: bool,
}

impl<'a> PartReader<'a> {
    pub(super) fn new(source: &'a mut dyn ChunkSource, part_size: usize, max_bytes: u64) -> Self {
        PartReader {
            source,
            part_size,
            max_bytes,
            hasher: Sha256::new(),
            bytes: 0,
            carry: None,
            ended: false,
        }
    }

    /// The next part: exactly `part_size` bytes, or fewer (possibly none)
    /// when the source has ended.
    pub(super) async fn next_part(&mut self) -> Result<Bytes, PutError> {
        let mut part = BytesMut::with_capacity(self.part_size);
        if let Some(carry) = self.carry.take() {
            self.fill(&mut part, carry);
        }
        while part.len() < self.part_size {
            let Some(chunk) = self.source.next_chunk().await? else {
                self.ended = true;
                break;
            };
            self.bytes += chunk.len() as u64;
            if self.bytes > self.max_bytes {
                return Err(StoreError::Permanent(format!(
                    "object is larger than the {} bytes this store accepts",
                    self.max_bytes
                ))
                .into());
            }
            self.hasher.update(&chunk);
            self.fill(&mut part, chunk);
        }
        Ok(part.freeze())
    }

    /// True once the source has ended and everything read was handed out.
    pub(super) fn finished(&self) -> bool {
        self.ended && self.carry.is_none()
    }

    /// Length and SHA-256 of everything read.
    pub(super) fn summary(&self) -> StoredObject {
        StoredObject {
            bytes: self.bytes,
            sha256: hex::encode(self.hasher.clone().finalize()),
        }
    }

    fn fill(&mut self, part: &mut BytesMut, mut chunk: Bytes) {
        let room = self.part_size - part.len();
        if chunk.len() > room {
            self.carry = Some(chunk.split_off(room));
        }
        part.extend_from_slice(&chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::SourceError;
    use async_trait::async_trait;

    struct Chunks(std::vec::IntoIter<Bytes>);

    #[async_trait]
    impl ChunkSource for Chunks {
        async fn next_chunk(&mut self) -> Result<Option<Bytes>, SourceError> {
            Ok(self.0.next())
        }
    }

    fn source(sizes: &[usize]) -> (Chunks, Vec<u8>) {
        let mut all = Vec::new();
        let chunks = sizes
            .iter()
            .map(|&n| {
                let chunk: Vec<u8> = (0..n).map(|i| (all.len() + i) as u8).collect();
                all.extend_from_slice(&chunk);
                Bytes::from(chunk)
            })
            .collect::<Vec<_>>();
        (Chunks(chunks.into_iter()), all)
    }

    async fn parts(sizes: &[usize], part_size: usize) -> (Vec<Bytes>, StoredObject, Vec<u8>) {
        let (mut chunks, all) = source(sizes);
        let mut reader = PartReader::new(&mut chunks, part_size, u64::MAX);
        let mut parts = vec![reader.next_part().await.unwrap()];
        while !reader.finished() {
            parts.push(reader.next_part().await.unwrap());
        }
        (parts, reader.summary(), all)
    }

    #[tokio::test]
    async fn chunks_that_straddle_parts_are_split_and_nothing_is_lost() {
        let (parts, summary, all) = parts(&[7, 7, 7], 5).await;
        let sizes: Vec<usize> = parts.iter().map(Bytes::len).collect();
        assert_eq!(sizes, [5, 5, 5, 5, 1]);
        assert_eq!(parts.concat(), all);
        assert_eq!(summary.bytes, 21);
        assert_eq!(summary.sha256, hex::encode(Sha256::digest(&all)));
    }

    #[tokio::test]
    async fn a_body_of_exactly_one_part_ends_with_an_empty_part() {
        let (parts, _, _) = parts(&[3, 2], 5).await;
        let sizes: Vec<usize> = parts.iter().map(Bytes::len).collect();
        assert_eq!(sizes, [5, 0]);
    }

    #[tokio::test]
    async fn an_empty_body_is_one_empty_part() {
        let (parts, summary, _) = parts(&[], 5).await;
        assert_eq!(parts, [Bytes::new()]);
        assert_eq!(
            summary.sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused() {
        let (mut chunks, _) = source(&[4, 4, 4]);
        let mut reader = PartReader::new(&mut chunks, 100, 10);
        let err = reader.next_part().await.unwrap_err();
        assert!(
            matches!(err, PutError::Store(StoreError::Permanent(_))),
            "{err}"
        );
    }
}
