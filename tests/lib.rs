//! Helpers shared by the integration tests live in `it/`.
