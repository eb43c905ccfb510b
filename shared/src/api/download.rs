//! Streaming downloads: counted on the way, capped in size, and a short body
//! is an error (the store hashes what it writes). Redirects are followed by hand so the bearer token
//! only ever goes to allowed hosts.

use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use url::Url;

use crate::deadline::Deadline;
use crate::stream::{ChunkSource, SourceError};

use super::hosts::host_of;
use super::{http, ApiError};

/// Redirects followed at most (DESIGN: "at most 5").
pub(crate) const MAX_REDIRECTS: usize = 5;

type BodyStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// A download whose headers have arrived; read it with
/// [`ChunkSource::next_chunk`] until `Ok(None)`.
pub struct Download {
    body: BodyStream,
    content_length: Option<u64>,
    content_type: Option<String>,
    max_bytes: u64,
    read: u64,
    /// Set once the body has ended; later reads return `Ok(None)`.
    finished: bool,
    /// A stalled body fails after this long without a chunk.
    idle_timeout: Duration,
    deadline: Deadline,
    what: String,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("what", &self.what)
            .field("content_length", &self.content_length)
            .field("content_type", &self.content_type)
            .field("bytes_read", &self.read)
            .finish_non_exhaustive()
    }
}

impl Download {
    pub(crate) fn start(
        what: String,
        response: reqwest::Response,
        max_bytes: u64,
        idle_timeout: Duration,
        deadline: Deadline,
    ) -> Result<Download, ApiError> {
        let content_length = response.content_length();
        if let Some(length) = content_length {
            if length > max_bytes {
                return Err(SourceError::TooLarge { limit: max_bytes }.into());
            }
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Download {
            body: Box::pin(response.bytes_stream()),
            content_length,
            content_type,
            max_bytes,
            read: 0,
            finished: false,
            idle_timeout,
            deadline,
            what,
        })
    }

    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    fn truncated(&self) -> SourceError {
        SourceError::Truncated {
            received: self.read,
            expected: self.content_length,
        }
    }
}

#[async_trait]
impl ChunkSource for Download {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, SourceError> {
        if self.finished {
            return Ok(None);
        }
        loop {
            let limit = self.idle_timeout.min(self.deadline.remaining());
            let next = match tokio::time::timeout(limit, self.body.next()).await {
                Ok(next) => next,
                Err(_) if self.deadline.has_passed() => {
                    return Err(SourceError::DeadlineExceeded {
                        received: self.read,
                    });
                }
                Err(_) => {
                    tracing::warn!(
                        action = "download_stalled",
                        bytes = self.read,
                        "no data within the idle timeout"
                    );
                    return Err(self.truncated());
                }
            };
            match next {
                Some(Ok(chunk)) if chunk.is_empty() => continue,
                Some(Ok(chunk)) => {
                    self.read += chunk.len() as u64;
                    if self.read > self.max_bytes {
                        return Err(SourceError::TooLarge {
                            limit: self.max_bytes,
                        });
                    }
                    return Ok(Some(chunk));
                }
                Some(Err(e)) => {
                    tracing::warn!(action = "download_broken", bytes = self.read, error = %http::transport(&self.what, &e), "download body broke off");
                    return Err(self.truncated());
                }
                None => {
                    if self.content_length.is_some_and(|length| self.read < length) {
                        return Err(self.truncated());
                    }
                    self.finished = true;
                    return Ok(None);
                }
            }
        }
    }

    fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }
}

/// Where a redirect points, resolved against the URL that answered it.
pub(crate) fn redirect_target(base: &Url, response: &reqwest::Response) -> Result<Url, ApiError> {
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::Decode {
            what: format!("download from {}", host_of(base)),
            message: format!("redirect {} without a usable Location", response.status()),
        })?;
    let target = base.join(location).map_err(|e| ApiError::Decode {
        what: format!("download from {}", host_of(base)),
        message: format!("bad redirect Location: {e}"),
    })?;
    if !matches!(target.scheme(), "http" | "https") {
        return Err(ApiError::Decode {
            what: format!("download from {}", host_of(base)),
            message: format!("redirect to unsupported scheme {}", target.scheme()),
        });
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(chunks: Vec<Result<&'static [u8], &'static str>>) -> reqwest::Response {
        let stream = futures_util::stream::iter(chunks.into_iter().map(|c| {
            c.map(Bytes::from_static)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::ConnectionReset, e))
        }));
        let http = ::http::Response::builder()
            .header("content-type", "application/pdf")
            .body(reqwest::Body::wrap_stream(stream))
            .unwrap();
        reqwest::Response::from(http)
    }

    fn start(response: reqwest::Response, max: u64) -> Download {
        let deadline = Deadline::after(Duration::from_secs(10));
        Download::start(
            "test".into(),
            response,
            max,
            Duration::from_secs(5),
            deadline,
        )
        .unwrap()
    }

    async fn drain(download: &mut Download) -> Result<Vec<u8>, SourceError> {
        let mut body = Vec::new();
        while let Some(chunk) = download.next_chunk().await? {
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    #[tokio::test]
    async fn body_is_counted_on_the_way() {
        let mut d = start(response(vec![Ok(b"hello "), Ok(b""), Ok(b"world")]), 100);
        assert_eq!(d.content_type(), Some("application/pdf"));
        assert_eq!(ChunkSource::content_type(&d), Some("application/pdf"));
        assert_eq!(drain(&mut d).await.unwrap(), b"hello world");
        assert_eq!(d.bytes_read(), 11);
        assert!(d.next_chunk().await.unwrap().is_none(), "stays finished");
    }

    #[tokio::test]
    async fn a_broken_body_is_truncated() {
        let mut d = start(response(vec![Ok(b"hello"), Err("reset")]), 100);
        match drain(&mut d).await {
            Err(SourceError::Truncated {
                received: 5,
                expected: None,
            }) => {}
            other => panic!("expected Truncated, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn the_size_cap_holds_without_content_length() {
        let mut d = start(response(vec![Ok(b"12345"), Ok(b"67890"), Ok(b"x")]), 10);
        assert!(matches!(
            drain(&mut d).await,
            Err(SourceError::TooLarge { limit: 10 })
        ));
    }

    #[tokio::test]
    async fn a_stalled_body_fails_at_the_idle_timeout() {
        let stream = futures_util::stream::pending::<Result<Bytes, std::io::Error>>();
        let http = ::http::Response::new(reqwest::Body::wrap_stream(stream));
        let deadline = Deadline::after(Duration::from_secs(10));
        let mut d = Download::start(
            "t".into(),
            http.into(),
            10,
            Duration::from_millis(20),
            deadline,
        )
        .unwrap();
        assert!(matches!(
            d.next_chunk().await,
            Err(SourceError::Truncated { received: 0, .. })
        ));
    }
}
