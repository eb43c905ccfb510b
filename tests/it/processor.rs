//! The processor Lambda's handler (`processor::handle_batch`) with the real
//! `Processor` (KodeClient + S3Blobs + DynamoLedger) against moto and the
//! fake KODE server, fed with events built from messages that went through
//! a FIFO queue in moto.

mod concurrent;
mod events;
mod faults;
mod harness;
mod redelivery;
mod stored;
mod sweep;
mod sync;
