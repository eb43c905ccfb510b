//! Cuts a [`ChunkSource`] into upload parts while taking, in the same pass,
//! the SHA-256 of the whole body and the CRC64NVME of each part and of the
//! whole (the checksum S3 verifies itself).

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use crc_fast::{CrcAlgorithm, Digest as Crc};
use sha2::{Digest, Sha256};

use crate::store::{PutError, StoreError, StoredObject};
use crate::stream::ChunkSource;

pub(super) struct PartReader<'a> {
    source: &'a mut dyn ChunkSource,
    max_bytes: u64,
    sha256: Sha256,
    /// CRC of the part being filled; folded into `whole` when it is done.
    part_crc: Crc,
    whole_crc: Crc,
    bytes: u64,
    /// Read but not yet handed out: the tail of a chunk that overflowed the
    /// previous part, or the chunk read to learn that the body goes on.
    carry: Option<Bytes>,
    ended: bool,
}

/// A CRC64NVME as S3 headers carry it: base64 of the big-endian bytes.
pub(super) fn crc64_header(crc: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes())
}

impl<'a> PartReader<'a> {
    pub(super) fn new(source: &'a mut dyn ChunkSource, max_bytes: u64) -> Self {
        PartReader {
            source,
            max_bytes,
            sha256: Sha256::new(),
            part_crc: Crc::new(CrcAlgorithm::Crc64Nvme),
            whole_crc: Crc::new(CrcAlgorithm::Crc64Nvme),
            bytes: 0,
            carry: None,
            ended: false,
        }
    }

    /// Appends to `part` until it holds `size` bytes or the source ends.
    pub(super) async fn fill(&mut self, part: &mut BytesMut, size: usize) -> Result<(), PutError> {
        if let Some(carry) = self.carry.take() {
            self.append(part, carry, size);
        }
        while part.len() < size {
            match self.read().await? {
                Some(chunk) => self.append(part, chunk, size),
                None => break,
            }
        }
        Ok(())
    }

    /// True when nothing is left to hand out; otherwise reads ahead one chunk
    /// (kept for the next `fill`) to find out.
    pub(super) async fn at_end(&mut self) -> Result<bool, PutError> {
        if self.carry.is_some() {
            return Ok(false);
        }
        self.carry = self.read().await?;
        Ok(self.carry.is_none())
    }

    /// Closes the part filled so far and returns its CRC64NVME.
    pub(super) fn finish_part(&mut self) -> u64 {
        let crc = self.part_crc.finalize();
        // Combining costs about 0.2 ms (GF(2) matrix squaring), more than
        // the CRC of a 64 KiB file itself: the first part is the whole so far.
        if self.whole_crc.get_amount() == 0 {
            self.whole_crc = self.part_crc;
        } else {
            self.whole_crc.combine(&self.part_crc);
        }
        self.part_crc.reset();
        crc
    }

    /// Length and SHA-256 of everything read.
    pub(super) fn summary(&self) -> StoredObject {
        StoredObject {
            bytes: self.bytes,
            sha256: hex::encode(self.sha256.clone().finalize()),
        }
    }

    /// CRC64NVME of every part finished so far.
    pub(super) fn whole_crc(&self) -> u64 {
        self.whole_crc.finalize()
    }

    /// The next non-empty chunk, counted and hashed, or `None` at the end.
    async fn read(&mut self) -> Result<Option<Bytes>, PutError> {
        while !self.ended {
            let Some(chunk) = self.source.next_chunk().await? else {
                self.ended = true;
                break;
            };
            if chunk.is_empty() {
                continue;
            }
            self.bytes += chunk.len() as u64;
            if self.bytes > self.max_bytes {
                return Err(StoreError::Permanent(format!(
                    "object is larger than the {} bytes this store accepts",
                    self.max_bytes
                ))
                .into());
            }
            self.sha256.update(&chunk);
            return Ok(Some(chunk));
        }
        Ok(None)
    }

    fn append(&mut self, part: &mut BytesMut, mut chunk: Bytes, size: usize) {
        let room = size - part.len();
        if chunk.len() > room {
            self.carry = Some(chunk.split_off(room));
        }
        self.part_crc.update(&chunk);
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

    struct Cut {
        /// Each part with its CRC.
        parts: Vec<(Bytes, u64)>,
        whole_crc: u64,
        summary: StoredObject,
        all: Vec<u8>,
    }

    /// Cuts as the S3 adapter does: fill, finish, stop at the end.
    async fn cut(sizes: &[usize], part_size: usize) -> Cut {
        let (mut chunks, all) = source(sizes);
        let mut reader = PartReader::new(&mut chunks, u64::MAX);
        let mut parts = Vec::new();
        loop {
            let mut part = BytesMut::new();
            reader.fill(&mut part, part_size).await.unwrap();
            let crc = reader.finish_part();
            parts.push((part.freeze(), crc));
            if reader.at_end().await.unwrap() {
                break;
            }
        }
        Cut {
            parts,
            whole_crc: reader.whole_crc(),
            summary: reader.summary(),
            all,
        }
    }

    fn sizes(cut: &Cut) -> Vec<usize> {
        cut.parts.iter().map(|(p, _)| p.len()).collect()
    }

    fn crc(data: &[u8]) -> u64 {
        crc_fast::checksum(CrcAlgorithm::Crc64Nvme, data)
    }

    #[tokio::test]
    async fn chunks_that_straddle_parts_are_split_and_nothing_is_lost() {
        let cut = cut(&[7, 0, 7, 7], 5).await;
        assert_eq!(sizes(&cut), [5, 5, 5, 5, 1]);
        let joined: Vec<u8> = cut.parts.iter().flat_map(|(p, _)| p.to_vec()).collect();
        assert_eq!(joined, cut.all);
        for (part, part_crc) in &cut.parts {
            assert_eq!(*part_crc, crc(part));
        }
        assert_eq!(cut.whole_crc, crc(&cut.all));
        assert_eq!(cut.summary.bytes, 21);
        assert_eq!(cut.summary.sha256, hex::encode(Sha256::digest(&cut.all)));
    }

    #[tokio::test]
    async fn a_body_of_exactly_one_or_two_parts_has_no_empty_part() {
        assert_eq!(sizes(&cut(&[3, 2], 5).await), [5]);
        assert_eq!(sizes(&cut(&[10], 5).await), [5, 5]);
    }

    #[tokio::test]
    async fn an_empty_body_is_one_empty_part() {
        let cut = cut(&[], 5).await;
        assert_eq!(cut.parts, [(Bytes::new(), crc(b""))]);
        assert_eq!(
            cut.summary.sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn crc_header_is_base64_of_the_big_endian_value() {
        // The CRC64NVME check value of "123456789" (from the CRC catalogue).
        let crc = crc(b"123456789");
        assert_eq!(crc, 0xae8b_1486_0a79_9888);
        assert_eq!(crc64_header(crc), "rosUhgp5mIg=");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused() {
        let (mut chunks, _) = source(&[4, 4, 4]);
        let mut reader = PartReader::new(&mut chunks, 10);
        let err = reader.fill(&mut BytesMut::new(), 100).await.unwrap_err();
        assert!(
            matches!(err, PutError::Store(StoreError::Permanent(_))),
            "{err}"
        );
    }
}
