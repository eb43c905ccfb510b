//! The built `kode` binary against the fake KODE server, as a user runs it.

mod commands;
mod input;
mod moto;
mod support;
mod sweep_aws;
mod sync;
mod sync_aws;
