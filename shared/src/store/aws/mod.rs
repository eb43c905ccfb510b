//! AWS adapters of the storage ports.

mod sqs;

pub use sqs::SqsQueue;
