//! FAILED assets: which failures fail only the asset, and when a FAILED
//! asset is tried again.

use crate::api::ApiError;
use crate::store::{AssetFailure, PutError};

/// Attempts after which a permanently failing asset is parked.
pub const DEFAULT_FAILED_MAX_ATTEMPTS: u32 = 10;

/// How FAILED assets are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedPolicy {
    /// A FAILED asset whose last failure was permanent is parked after this
    /// many attempts: listed, no longer tried by itself.
    pub max_attempts: u32,
    /// Try parked assets too (`kode sync --retry-failed`).
    pub retry_parked: bool,
}

impl Default for FailedPolicy {
    fn default() -> Self {
        FailedPolicy {
            max_attempts: DEFAULT_FAILED_MAX_ATTEMPTS,
            retry_parked: false,
        }
    }
}

impl FailedPolicy {
    /// Parked: failed for good `max_attempts` times. A transient failure
    /// never parks: its push is redelivered and ends in the DLQ if KODE
    /// stays down, and a DLQ retry must still fetch the file.
    pub fn is_parked(&self, failure: &AssetFailure) -> bool {
        self.parks(failure.attempts, failure.transient)
    }

    /// Whether a file that has failed `attempts` times, the last one
    /// transiently or not, is parked.
    pub fn parks(&self, attempts: u32, transient: bool) -> bool {
        !transient && attempts >= self.max_attempts
    }

    /// Whether this sync tries the FAILED asset again.
    pub fn retries(&self, failure: &AssetFailure) -> bool {
        self.retry_parked || !self.is_parked(failure)
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

/// The fault of the asset, or `None` when the failure is not the asset's
/// (storage, KODE credentials): then the push fails and nothing is recorded
/// against the asset.
pub fn asset_fault(error: &PutError) -> Option<AssetFault> {
    let PutError::Source(api) = error else {
        return None;
    };
    match api {
        ApiError::Status { status, .. } => Some(match status {
            401 | 408 | 429 => AssetFault::Transient,
            400..=499 => AssetFault::Permanent,
            _ => AssetFault::Transient,
        }),
        ApiError::ForeignHost { .. }
        | ApiError::TooLarge { .. }
        | ApiError::Decode { .. }
        | ApiError::Invalid(_) => Some(AssetFault::Permanent),
        ApiError::Connect { .. }
        | ApiError::Transport { .. }
        | ApiError::Truncated { .. }
        | ApiError::DeadlineExceeded { .. } => Some(AssetFault::Transient),
        ApiError::Auth(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    fn status(status: u16) -> PutError {
        PutError::Source(ApiError::Status {
            status,
            what: "asset".into(),
            message: "x".into(),
            retry_after: None,
        })
    }

    fn failure(attempts: u32, transient: bool) -> AssetFailure {
        AssetFailure {
            reason: "KODE answered 404".into(),
            attempts,
            last_attempt_at: "2024-05-02T10:00:00Z".into(),
            transient,
        }
    }

    #[test]
    fn client_errors_fail_the_asset_for_good_except_auth_timeout_and_throttling() {
        for code in [400, 403, 404, 410, 422] {
            assert_eq!(
                asset_fault(&status(code)),
                Some(AssetFault::Permanent),
                "{code}"
            );
        }
        for code in [401, 408, 429, 500, 502, 503] {
            assert_eq!(
                asset_fault(&status(code)),
                Some(AssetFault::Transient),
                "{code}"
            );
        }
    }

    #[test]
    fn refusals_are_permanent_and_broken_transfers_transient() {
        let foreign = PutError::Source(ApiError::ForeignHost {
            host: "evil.test".into(),
            allowed: "kode.test".into(),
        });
        let large = PutError::Source(ApiError::TooLarge { limit: 10 });
        let cut = PutError::Source(ApiError::Truncated {
            received: 1,
            expected: Some(2),
        });
        let reset = PutError::Source(ApiError::Transport {
            what: "asset".into(),
            message: "reset".into(),
        });
        assert_eq!(asset_fault(&foreign), Some(AssetFault::Permanent));
        assert_eq!(asset_fault(&large), Some(AssetFault::Permanent));
        assert_eq!(asset_fault(&cut), Some(AssetFault::Transient));
        assert_eq!(asset_fault(&reset), Some(AssetFault::Transient));
    }

    #[test]
    fn storage_and_credential_failures_are_not_the_assets_fault() {
        let store = PutError::Store(StoreError::Unavailable("S3 503".into()));
        let auth = PutError::Source(ApiError::Auth("invalid_grant".into()));
        assert_eq!(asset_fault(&store), None);
        assert_eq!(asset_fault(&auth), None);
    }

    #[test]
    fn permanent_failures_park_at_the_limit_transient_ones_never() {
        let policy = FailedPolicy {
            max_attempts: 3,
            retry_parked: false,
        };
        assert!(policy.retries(&failure(2, false)));
        assert!(!policy.retries(&failure(3, false)));
        assert!(policy.is_parked(&failure(3, false)));
        assert!(policy.retries(&failure(30, true)));
        assert!(!policy.is_parked(&failure(30, true)));
    }

    #[test]
    fn retry_parked_tries_parked_assets_again() {
        let policy = FailedPolicy {
            max_attempts: 3,
            retry_parked: true,
        };
        assert!(policy.is_parked(&failure(5, false)));
        assert!(policy.retries(&failure(5, false)));
    }
}
