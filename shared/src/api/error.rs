//! Errors of the KODE client, classified by whether a retry can help.

use std::time::Duration;

use crate::stream::SourceError;

/// Never carries a token, a password or a client secret.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// KODE answered with a non-success status. `message` is KODE's own text
    /// (its `error_description`, `message` or the raw body, truncated).
    #[error("KODE answered {status} for {what}: {message}")]
    Status {
        status: u16,
        what: String,
        message: String,
        retry_after: Option<Duration>,
    },
    /// No connection could be made: nothing reached KODE, so even a
    /// non-idempotent request may be sent again.
    #[error("could not connect to KODE for {what}: {message}")]
    Connect { what: String, message: String },
    /// Reset or timeout after the request may have been sent.
    #[error("could not reach KODE for {what}: {message}")]
    Transport { what: String, message: String },
    /// Authentication failed (bad credentials, refresh and password grant refused).
    #[error("KODE authentication failed: {0}")]
    Auth(String),
    /// A download URL on a host the token must not be sent to.
    #[error("refused download from {host}: not a configured KODE host (allowed: {allowed})")]
    ForeignHost { host: String, allowed: String },
    /// A download body too large, cut off or late.
    #[error(transparent)]
    Body(#[from] SourceError),
    /// KODE's response could not be decoded.
    #[error("unexpected response from KODE for {what}: {message}")]
    Decode { what: String, message: String },
    /// Invalid input or configuration, found before sending anything.
    #[error("{0}")]
    Invalid(String),
    /// The caller's deadline left no time for (another) attempt.
    #[error("gave up on {what}: deadline reached after {attempts} attempt(s); last error: {last}")]
    DeadlineExceeded {
        what: String,
        attempts: u32,
        last: String,
    },
}

impl ApiError {
    /// Whether trying again later (a later delivery of the push) can help.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Status { status, .. } => *status == 429 || *status >= 500 || *status == 408,
            ApiError::Connect { .. } | ApiError::Transport { .. } => true,
            ApiError::Body(e) => e.is_retryable(),
            ApiError::DeadlineExceeded { .. } => true,
            ApiError::Auth(_)
            | ApiError::ForeignHost { .. }
            | ApiError::Decode { .. }
            | ApiError::Invalid(_) => false,
        }
    }

    /// The HTTP status KODE answered, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}
