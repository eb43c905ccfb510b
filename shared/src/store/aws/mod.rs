//! AWS adapters of the storage ports.

mod dynamodb;
mod s3;
mod sdk_error;
mod sqs;

pub use dynamodb::{DynamoLedger, OPEN_INDEX};
pub use s3::{S3Blobs, UploadBudget};
pub use sqs::SqsQueue;
