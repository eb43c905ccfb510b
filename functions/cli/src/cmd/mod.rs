//! One module per command group; `main.rs` only dispatches.

pub mod auth;
mod input;
pub mod order;
mod order_view;
pub mod price;
pub mod products;
