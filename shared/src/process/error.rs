use crate::api::ApiError;
use crate::model::{AssetId, OrderId, PushError};
use crate::store::{PutError, StoreError};

/// Why a queue message could not be processed. Retryable errors go back to
/// the queue; the others end in the DLQ after the configured receives.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The queue message is not a valid envelope.
    #[error("invalid queue message: {0}")]
    Envelope(String),
    /// The envelope holds something that is not a push.
    #[error("invalid push in queue message: {0}")]
    Push(#[from] PushError),
    #[error("could not get order {order} from KODE: {cause}")]
    Order { order: OrderId, cause: ApiError },
    #[error("KODE returned order {returned} when asked for order {requested}")]
    OrderMismatch {
        requested: OrderId,
        returned: OrderId,
    },
    #[error("could not store asset {asset} of order {order}: {cause}")]
    Asset {
        order: OrderId,
        asset: AssetId,
        cause: PutError,
    },
    #[error("ledger or file store failed{}: {cause}", order.map(|o| format!(" for order {o}")).unwrap_or_default())]
    Store {
        order: Option<OrderId>,
        cause: StoreError,
    },
}

impl ProcessError {
    pub fn is_retryable(&self) -> bool {
        match self {
            ProcessError::Envelope(_)
            | ProcessError::Push(_)
            | ProcessError::OrderMismatch { .. } => false,
            ProcessError::Order { cause, .. } => cause.is_retryable(),
            ProcessError::Asset { cause, .. } => cause.is_retryable(),
            ProcessError::Store { cause, .. } => cause.is_retryable(),
        }
    }

    /// The order concerned, for logs.
    pub fn order_id(&self) -> Option<OrderId> {
        match self {
            ProcessError::Envelope(_) | ProcessError::Push(_) => None,
            ProcessError::Order { order, .. } | ProcessError::Asset { order, .. } => Some(*order),
            ProcessError::OrderMismatch { requested, .. } => Some(*requested),
            ProcessError::Store { order, .. } => *order,
        }
    }
}
