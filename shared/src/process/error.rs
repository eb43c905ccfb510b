//! Why a queue message could not be processed, classified retryable or
//! permanent (the processor's boundary error).

use crate::api::ApiError;
use crate::envelope::EnvelopeError;
use crate::model::{AssetId, OrderId};
use crate::store::{PutError, StoreError};

/// Why a queue message could not be processed. Retryable errors go back to
/// the queue; the others end in the DLQ after the configured receives.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The queue message is not a valid envelope.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
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
        cause: AssetError,
    },
    #[error("ledger or file store failed{}: {cause}", order.map(|o| format!(" for order {o}")).unwrap_or_default())]
    Store {
        order: Option<OrderId>,
        cause: StoreError,
    },
}

/// Why one file could not be stored: KODE's side (the download, its body)
/// or ours (the file store, the ledger).
#[derive(Debug, thiserror::Error)]
pub enum AssetError {
    #[error(transparent)]
    Download(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AssetError {
    pub fn is_retryable(&self) -> bool {
        match self {
            AssetError::Download(e) => e.is_retryable(),
            AssetError::Store(e) => e.is_retryable(),
        }
    }
}

impl From<PutError> for AssetError {
    fn from(error: PutError) -> AssetError {
        match error {
            PutError::Source(e) => AssetError::Download(e.into()),
            PutError::Store(e) => AssetError::Store(e),
        }
    }
}

impl ProcessError {
    pub fn is_retryable(&self) -> bool {
        match self {
            ProcessError::Envelope(_) | ProcessError::OrderMismatch { .. } => false,
            ProcessError::Order { cause, .. } => cause.is_retryable(),
            ProcessError::Asset { cause, .. } => cause.is_retryable(),
            ProcessError::Store { cause, .. } => cause.is_retryable(),
        }
    }

    /// The order concerned, for logs.
    pub fn order_id(&self) -> Option<OrderId> {
        match self {
            ProcessError::Envelope(_) => None,
            ProcessError::Order { order, .. } | ProcessError::Asset { order, .. } => Some(*order),
            ProcessError::OrderMismatch { requested, .. } => Some(*requested),
            ProcessError::Store { order, .. } => *order,
        }
    }
}
