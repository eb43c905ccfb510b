//! kode-push: receive Ambita KODE pushes and keep a faithful copy of every
//! delivered file. This crate holds everything the Lambdas and the `kode`
//! command share: the KODE model and client, the sync rules and the storage
//! ports with their AWS and local adapters.

pub mod announce;
pub mod api;
pub mod aws;
pub mod config;
pub mod deadline;
pub mod envelope;
pub mod events;
pub mod intake;
pub mod metrics;
pub mod model;
pub mod names;
pub mod process;
pub mod secret;
pub mod store;
pub mod stream;
pub mod sweep;
pub mod sync;
pub mod telemetry;

pub use deadline::Deadline;
pub use secret::Secret;
