//! Why a queue message could not be processed, classified retryable or
//! permanent (the processor's boundary error).

use crate::api::ApiError;
use crate::envelope::EnvelopeError;
use crate::model::{AssetId, OrderId};
use crate::store::{PutError, StoreError};
use crate::stream::SourceError;

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

/// How one asset's failure bears on its push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssetFault {
    /// The file cannot be had as it is (foreign host, 4xx, too large): the
    /// asset is FAILED and the push goes on.
    Permanent,
    /// It may pass (5xx, 429, 408, a 401 after re-authentication, timeout,
    /// reset): the asset is FAILED and the push fails after the others, so
    /// that it is redelivered.
    Transient,
}

impl AssetError {
    /// The asset's fault, or `None` when the failure is not the asset's
    /// (storage, KODE credentials): then the push fails and nothing is
    /// recorded against the asset.
    pub fn fault(&self) -> Option<AssetFault> {
        let AssetError::Download(api) = self else {
            return None;
        };
        match api {
            ApiError::Status { status, .. } => Some(match status {
                401 | 408 | 429 => AssetFault::Transient,
                400..=499 => AssetFault::Permanent,
                _ => AssetFault::Transient,
            }),
            ApiError::Body(SourceError::TooLarge { .. })
            | ApiError::ForeignHost { .. }
            | ApiError::Decode { .. }
            | ApiError::Invalid(_) => Some(AssetFault::Permanent),
            ApiError::Body(
                SourceError::Truncated { .. } | SourceError::DeadlineExceeded { .. },
            )
            | ApiError::Connect { .. }
            | ApiError::Transport { .. }
            | ApiError::DeadlineExceeded { .. } => Some(AssetFault::Transient),
            ApiError::Auth(_) => None,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> AssetError {
        AssetError::Download(ApiError::Status {
            status,
            what: "asset".into(),
            message: "x".into(),
            retry_after: None,
        })
    }

    #[test]
    fn client_errors_fail_the_asset_for_good_except_auth_timeout_and_throttling() {
        for code in [400, 403, 404, 410, 422] {
            assert_eq!(status(code).fault(), Some(AssetFault::Permanent), "{code}");
        }
        for code in [401, 408, 429, 500, 502, 503] {
            assert_eq!(status(code).fault(), Some(AssetFault::Transient), "{code}");
        }
    }

    #[test]
    fn refusals_are_permanent_and_broken_transfers_transient() {
        let foreign = AssetError::Download(ApiError::ForeignHost {
            host: "evil.test".into(),
            allowed: "kode.test".into(),
        });
        let large = AssetError::from(PutError::Source(SourceError::TooLarge { limit: 10 }));
        let cut = AssetError::from(PutError::Source(SourceError::Truncated {
            received: 1,
            expected: Some(2),
        }));
        let reset = AssetError::Download(ApiError::Transport {
            what: "asset".into(),
            message: "reset".into(),
        });
        assert_eq!(foreign.fault(), Some(AssetFault::Permanent));
        assert_eq!(large.fault(), Some(AssetFault::Permanent));
        assert_eq!(cut.fault(), Some(AssetFault::Transient));
        assert_eq!(reset.fault(), Some(AssetFault::Transient));
    }

    #[test]
    fn storage_and_credential_failures_are_not_the_assets_fault() {
        let store = AssetError::Store(StoreError::Unavailable("S3 503".into()));
        let auth = AssetError::Download(ApiError::Auth("invalid_grant".into()));
        assert_eq!(store.fault(), None);
        assert_eq!(auth.fault(), None);
    }
}
