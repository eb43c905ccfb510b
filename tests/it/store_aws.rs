//! The AWS adapters of the storage ports (S3, DynamoDB) against moto.

mod blobs;
mod ledger;
