//! Announcing [`Event`]s to the systems that use the files: the port
//! [`Announcer`] with an EventBridge adapter (the processor Lambda) and a
//! signed-webhook adapter (`kode serve`).
//!
//! The ledger remembers what is still to announce, written in the same
//! step as the change; an announcer only has to say, per event, whether it
//! took it. What it took is cleared from the ledger; the rest is tried again
//! by the order's next run.

pub mod eventbridge;
pub mod webhook;

use async_trait::async_trait;

use crate::events::Event;

pub use eventbridge::EventBridgeAnnouncer;
pub use webhook::{NotifySecret, WebhookAnnouncer, WebhookSender};

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
