//! The port through which events leave: an announcer takes them for their
//! consumers (adapters in `crate::announce`).

use async_trait::async_trait;

use super::Event;

/// Why an event was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnounceError {
    /// Throttling, timeouts, network or service errors: the next run may
    /// succeed.
    #[error("announcement temporarily impossible: {0}")]
    Unavailable(String),
    /// Refused (access denied, no such bus, invalid entry): retrying as is
    /// will not help until the configuration is fixed.
    #[error("announcement refused: {0}")]
    Rejected(String),
}

impl AnnounceError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, AnnounceError::Unavailable(_))
    }
}

/// Takes events for their consumers.
#[async_trait]
pub trait Announcer: Send + Sync {
    /// Hands the events on; one result per event, in the same order. `Ok`
    /// means taken for good: on the bus, or durably queued for delivery.
    async fn announce(&self, events: &[Event]) -> Vec<Result<(), AnnounceError>>;
}
