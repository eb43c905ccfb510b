//! One module per command group; `main.rs` only dispatches.

pub mod auth;
pub mod dead_letters;
pub mod demo;
mod input;
pub mod order;
pub(crate) mod order_view;
pub mod price;
pub mod products;
pub mod serve;
pub mod sweep;
pub mod sync;
