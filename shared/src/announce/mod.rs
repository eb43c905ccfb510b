//! Announcing [`crate::events::Event`]s to the systems that use the files:
//! the adapters of the port [`Announcer`], EventBridge (the processor
//! Lambda) and signed webhooks (`kode serve`).
//!
//! The ledger remembers what is still to announce, written in the same
//! step as the change; an announcer only has to say, per event, whether it
//! took it. What it took is cleared from the ledger; the rest is tried again
//! by the order's next run.

pub mod eventbridge;
pub mod webhook;

pub use crate::events::{AnnounceError, Announcer};
pub use eventbridge::EventBridgeAnnouncer;
pub use webhook::{NotifySecret, WebhookAnnouncer, WebhookSender};
