//! FAILED assets: when one is tried again, and when it is parked.

use crate::model::AssetFailure;

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

    /// Whether a failed attempt is announced (`asset.failed`), given the
    /// failure recorded before it: when the file turns FAILED, and again
    /// only when it fails after it was parked, never on each attempt.
    pub fn announces(&self, before: Option<&AssetFailure>) -> bool {
        before.is_none_or(|failure| self.is_parked(failure))
    }

    /// Whether this sync tries the FAILED asset again.
    pub fn retries(&self, failure: &AssetFailure) -> bool {
        self.retry_parked || !self.is_parked(failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(attempts: u32, transient: bool) -> AssetFailure {
        AssetFailure {
            reason: "KODE answered 404".into(),
            attempts,
            last_attempt_at: "2024-05-02T10:00:00Z".into(),
            transient,
        }
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
    fn a_failure_is_announced_when_it_begins_and_after_parking_only() {
        let policy = FailedPolicy {
            max_attempts: 3,
            retry_parked: true,
        };
        assert!(policy.announces(None), "the file turns FAILED");
        assert!(!policy.announces(Some(&failure(1, false))));
        assert!(!policy.announces(Some(&failure(2, false))));
        assert!(
            policy.announces(Some(&failure(3, false))),
            "a retry after it was parked failed"
        );
        assert!(policy.announces(Some(&failure(4, false))));
        assert!(
            !policy.announces(Some(&failure(9, true))),
            "transient failures never park, so they are announced once"
        );
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
