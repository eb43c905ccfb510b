//! The AWS adapters of the storage ports (S3, DynamoDB) against moto.

mod announcements;
mod blobs;
mod ledger;
