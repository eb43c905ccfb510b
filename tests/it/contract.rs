//! Contract suites: one set of checks per storage port, run against every
//! adapter of it (local and AWS), so the adapters cannot drift apart.

mod blobs;
mod ledger;
