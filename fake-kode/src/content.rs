//! Asset bodies: fixed bytes, or deterministic pseudo-random bytes generated
//! on the fly so that multi-GiB assets never sit in memory.

use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use sha2::{Digest, Sha256};

/// Chunk size of normal downloads.
const CHUNK: u64 = 64 * 1024;
/// Chunk size of slow downloads (a delay follows each chunk).
pub(crate) const SLOW_CHUNK: u64 = 8 * 1024;
/// Time hyper gets to write out what precedes a truncation.
const FLUSH_PAUSE: Duration = Duration::from_millis(50);

/// The bytes of an asset.
#[derive(Clone)]
pub enum AssetContent {
    Bytes(Bytes),
    /// Deterministic pseudo-random bytes generated while streaming (never held
    /// in memory): for multi-GiB benchmark assets.
    Generated {
        len: u64,
        seed: u64,
    },
}

impl AssetContent {
    /// The full content (for Generated: generated; only for small sizes in tests).
    pub fn to_bytes(&self) -> Bytes {
        match self {
            AssetContent::Bytes(b) => b.clone(),
            AssetContent::Generated { len, .. } => self.slice(0, *len),
        }
    }

    /// SHA-256 hex of the full content (streams Generated content).
    pub fn sha256_hex(&self) -> String {
        let mut hasher = Sha256::new();
        let len = self.len();
        let mut pos = 0;
        while pos < len {
            let end = (pos + CHUNK).min(len);
            hasher.update(self.slice(pos, end));
            pos = end;
        }
        hex::encode(hasher.finalize())
    }

    pub fn len(&self) -> u64 {
        match self {
            AssetContent::Bytes(b) => b.len() as u64,
            AssetContent::Generated { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes `start..end` (both within the content).
    fn slice(&self, start: u64, end: u64) -> Bytes {
        match self {
            // Positions come from `len()` of this same slice, so they fit usize.
            AssetContent::Bytes(b) => b.slice(start as usize..end as usize),
            AssetContent::Generated { seed, .. } => generate(*seed, start, end),
        }
    }

    /// The body as a stream of chunks. With `stop_after`, the stream fails
    /// after that many bytes (hyper then aborts the connection although
    /// Content-Length announced the full size). With `delay`, chunks are
    /// small and each is followed by that pause.
    pub(crate) fn stream(
        self,
        stop_after: Option<u64>,
        delay: Option<Duration>,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        let len = self.len();
        let limit = stop_after.map_or(len, |n| n.min(len));
        let truncated = limit < len;
        let chunk = if delay.is_some() { SLOW_CHUNK } else { CHUNK };
        futures_util::stream::unfold(Some(0u64), move |pos| {
            let content = self.clone();
            async move {
                let pos = pos?;
                if pos >= limit {
                    if !truncated {
                        return None;
                    }
                    // hyper drops its unsent buffer when the body fails: let
                    // it flush the headers and the bytes before the cut first.
                    tokio::time::sleep(FLUSH_PAUSE).await;
                    let err = std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "fake-kode: truncated body",
                    );
                    return Some((Err(err), None));
                }
                if pos > 0 {
                    if let Some(d) = delay {
                        tokio::time::sleep(d).await;
                    }
                }
                let end = (pos + chunk).min(limit);
                Some((Ok(content.slice(pos, end)), Some(end)))
            }
        })
    }
}

// Hand-written: a derived Debug would print every byte of the content.
impl std::fmt::Debug for AssetContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AssetContent::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            AssetContent::Generated { len, seed } => {
                write!(f, "Generated {{ len: {len}, seed: {seed} }}")
            }
        }
    }
}

/// Bytes `start..end` of the stream for `seed`: little-endian splitmix64
/// outputs, where word `w` depends only on (seed, w), so any range can be
/// produced without generating what precedes it.
fn generate(seed: u64, start: u64, end: u64) -> Bytes {
    let first_word = start / 8;
    let words = (end.div_ceil(8) - first_word) as usize;
    let mut buf = vec![0u8; words * 8];
    for (w, out) in (first_word..).zip(buf.chunks_exact_mut(8)) {
        let x = splitmix64(seed.wrapping_add(w.wrapping_add(1).wrapping_mul(GOLDEN)));
        out.copy_from_slice(&x.to_le_bytes());
    }
    let skip = (start % 8) as usize;
    Bytes::from(buf).slice(skip..skip + (end - start) as usize)
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

fn splitmix64(x: u64) -> u64 {
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[test]
    fn generated_ranges_agree_with_the_whole() {
        let content = AssetContent::Generated { len: 1000, seed: 7 };
        let whole = content.to_bytes();
        assert_eq!(whole.len(), 1000);
        assert_eq!(content.slice(3, 997), whole.slice(3..997));
        assert_ne!(
            whole,
            AssetContent::Generated { len: 1000, seed: 8 }.to_bytes()
        );
    }

    #[test]
    fn sha_of_generated_matches_sha_of_its_bytes() {
        let content = AssetContent::Generated {
            len: 200_003,
            seed: 42,
        };
        let direct = hex::encode(Sha256::digest(content.to_bytes()));
        assert_eq!(content.sha256_hex(), direct);
    }

    #[tokio::test]
    async fn stream_yields_all_bytes_or_fails_after_limit() {
        let content = AssetContent::Generated {
            len: 150_000,
            seed: 1,
        };
        let chunks: Vec<_> = content.clone().stream(None, None).collect().await;
        let joined: Vec<u8> = chunks
            .into_iter()
            .flat_map(|c| c.map(|b| b.to_vec()).unwrap_or_default())
            .collect();
        assert_eq!(Bytes::from(joined), content.to_bytes());

        let cut: Vec<_> = content.stream(Some(70_000), None).collect().await;
        let (ok, err): (Vec<_>, Vec<_>) = cut.into_iter().partition(|c| c.is_ok());
        let sent: usize = ok.into_iter().flatten().map(|b| b.len()).sum();
        assert_eq!(sent, 70_000);
        assert_eq!(err.len(), 1);
    }
}
