//! The KODE API client: OAuth tokens, orders, products, prices, downloads.

mod error;

pub use error::ApiError;
