//! Serde types for every KODE payload (see `docs/kode-api.md`).
//!
//! The published documentation disagrees with itself in many places; every
//! type here accepts each documented variant, keeps unknown enum values
//! instead of rejecting them, and ignores unknown fields.

mod date;
mod ids;
mod kind;
mod ledger;
mod open_enum;
mod order;
mod product;
mod push;
mod request;

#[cfg(test)]
mod tests;

pub use date::KodeDate;
pub use ids::{AssetId, MunicipalityNumber, OrderId, OrderLineId, SubOrderId};
pub use kind::OrderKind;
pub use ledger::{
    recorded_text, stamp, AssetFailure, AssetRecord, AssetState, FailedAttempt, MessageRecord,
    ObjectKey, ObjectMeta, OrderRecord, OPEN_FOREVER,
};
pub use open_enum::CodeName;
pub use order::{Asset, AssetLocation, AssetStatus, Order, OrderLine, SubOrder};
pub use product::{PriceQuote, Product, ProductChild, ProductPrice, ProductQuote};
pub use push::{
    DistributorMessage, DistributorMessageType, OrderPush, Push, PushError, PushKind, PushStatus,
};
pub use request::*;
