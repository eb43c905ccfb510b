//! The byte stream a download hands to a file store, and how it can break.
//! It sits below both `api`, which produces it, and `store`, which consumes
//! it, so neither needs the other.

use async_trait::async_trait;
use bytes::Bytes;

/// A stream of body chunks. Implemented by the KODE download, which checks
/// length, size cap and completeness and fails instead of ending early.
#[async_trait]
pub trait ChunkSource: Send {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, SourceError>;

    /// The announced content type, if any (never trusted for anything but
    /// metadata).
    fn content_type(&self) -> Option<&str> {
        None
    }
}

/// Why a body could not be read to its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The body is larger than the configured maximum.
    #[error("download is larger than the maximum of {limit} bytes")]
    TooLarge { limit: u64 },
    /// The body ended before its announced length, stalled, or the
    /// connection broke.
    #[error("download cut off after {received} bytes{}", expected.map(|e| format!(" of {e}")).unwrap_or_default())]
    Truncated {
        received: u64,
        expected: Option<u64>,
    },
    /// The caller's deadline passed while the body was still arriving.
    #[error("deadline reached after {received} bytes of the download")]
    DeadlineExceeded { received: u64 },
}

impl SourceError {
    /// A later attempt can succeed after a broken or late body, never after
    /// an oversized one.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, SourceError::TooLarge { .. })
    }
}
