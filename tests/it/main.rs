//! Integration tests: real handlers against AWS APIs served by moto and
//! against the fake KODE server. One binary on purpose (each test binary
//! links the whole AWS SDK). Run them through the README's test command,
//! which starts moto and exports `AWS_ENDPOINT_URL`.

mod api;
mod contract;
mod layers;
mod processor;
mod sample_events;
mod store_aws;
mod support;
mod webhook;
