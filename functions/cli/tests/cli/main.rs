//! The built `kode` binary against the fake KODE server, as a user runs it.

mod commands;
mod input;
mod support;
mod sync;
