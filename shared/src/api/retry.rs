//! Retrying transient failures: jittered exponential backoff, `Retry-After`
//! honoured, never sleeping past the caller's deadline.

use std::future::Future;
use std::time::Duration;

use crate::deadline::Deadline;

use super::ApiError;

/// How often and how long to wait between attempts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Longest `Retry-After` we are willing to honour at all.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

/// Which failures a request may be repeated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idempotency {
    /// Reads and price queries: every transient failure.
    Safe,
    /// Creating an order: only failures that prove KODE did not act on the
    /// request (connection refused, 429), so a retry cannot order twice.
    Unsafe,
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (attempt counts from 1): full
    /// jitter in the upper half of an exponentially growing window.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_delay);
        let half = exp / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// Runs `attempt` until it succeeds, fails permanently, runs out of
    /// attempts, or the next wait would end after `deadline`.
    pub(crate) async fn run<T, F, Fut>(
        &self,
        what: &str,
        deadline: Deadline,
        idempotency: Idempotency,
        mut attempt: F,
    ) -> Result<T, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let mut attempts = 0u32;
        let mut previous: Option<String> = None;
        loop {
            if deadline.has_passed() {
                return Err(deadline_exceeded(
                    what,
                    attempts,
                    "no time left for an attempt",
                ));
            }
            attempts += 1;
            let error = match attempt().await {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            if let ApiError::DeadlineExceeded { last, .. } = &error {
                // The attempt ran into the deadline: report the whole story.
                let last = match &previous {
                    Some(before) => format!("{last} (before that: {before})"),
                    None => last.clone(),
                };
                return Err(deadline_exceeded(what, attempts, &last));
            }
            if !is_transient(&error, idempotency) || attempts >= self.max_attempts {
                return Err(error);
            }
            let wait = match retry_after(&error) {
                Some(after) if after > self.max_retry_after => return Err(error),
                Some(after) => after,
                None => self.backoff(attempts),
            };
            if wait >= deadline.remaining() {
                return Err(deadline_exceeded(what, attempts, &error.to_string()));
            }
            tracing::warn!(
                action = "kode_retry",
                what,
                attempt = attempts,
                wait_ms = wait.as_millis() as u64,
                error = %error,
                "transient KODE failure; retrying"
            );
            previous = Some(error.to_string());
            tokio::time::sleep(wait).await;
        }
    }
}

pub(crate) fn deadline_exceeded(what: &str, attempts: u32, last: &str) -> ApiError {
    ApiError::DeadlineExceeded {
        what: what.to_owned(),
        attempts,
        last: last.to_owned(),
    }
}

fn is_transient(error: &ApiError, idempotency: Idempotency) -> bool {
    match (error, idempotency) {
        (ApiError::Status { status, .. }, Idempotency::Safe) => {
            matches!(status, 408 | 429) || *status >= 500
        }
        (ApiError::Transport { .. }, Idempotency::Safe) => true,
        (ApiError::Connect { .. }, _) => true,
        (ApiError::Status { status, .. }, Idempotency::Unsafe) => *status == 429,
        _ => false,
    }
}

fn retry_after(error: &ApiError) -> Option<Duration> {
    match error {
        ApiError::Status { retry_after, .. } => *retry_after,
        _ => None,
    }
}

/// `Retry-After` as delta-seconds or an HTTP-date (a date in the past means
/// "now").
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let delta = when.duration_since(jiff::Timestamp::now());
    Some(Duration::try_from(delta).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn status(status: u16, retry_after: Option<Duration>) -> ApiError {
        ApiError::Status {
            status,
            what: "test".into(),
            message: "nope".into(),
            retry_after,
        }
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
            ..RetryPolicy::default()
        }
    }

    async fn run_with(
        policy: RetryPolicy,
        idempotency: Idempotency,
        deadline: Deadline,
        errors: Vec<ApiError>,
    ) -> (Result<u32, ApiError>, u32) {
        let calls = AtomicU32::new(0);
        let errors = std::sync::Mutex::new(errors.into_iter());
        let result = policy
            .run("test", deadline, idempotency, || {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                let next = errors.lock().unwrap().next();
                async move { next.map_or(Ok(n), Err) }
            })
            .await;
        (result, calls.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_success() {
        let errors = vec![
            status(503, None),
            ApiError::Transport {
                what: "t".into(),
                message: "reset".into(),
            },
            status(429, Some(Duration::from_millis(1))),
            status(408, None),
        ];
        let (result, calls) = run_with(
            fast(),
            Idempotency::Safe,
            Deadline::after(Duration::from_secs(5)),
            errors,
        )
        .await;
        assert_eq!(result.unwrap(), 5);
        assert_eq!(calls, 5);
    }

    #[tokio::test]
    async fn permanent_failures_are_not_retried() {
        for code in [400, 401, 403, 404, 409, 422] {
            let (result, calls) = run_with(
                fast(),
                Idempotency::Safe,
                Deadline::after(Duration::from_secs(5)),
                vec![status(code, None)],
            )
            .await;
            assert_eq!(result.unwrap_err().status(), Some(code));
            assert_eq!(calls, 1, "{code}");
        }
    }

    #[tokio::test]
    async fn unsafe_requests_retry_only_what_kode_cannot_have_acted_on() {
        let deadline = Deadline::after(Duration::from_secs(5));
        let sent = ApiError::Transport {
            what: "t".into(),
            message: "timed out".into(),
        };
        let (result, calls) = run_with(fast(), Idempotency::Unsafe, deadline, vec![sent]).await;
        assert!(matches!(result, Err(ApiError::Transport { .. })));
        assert_eq!(calls, 1);
        let (result, calls) = run_with(
            fast(),
            Idempotency::Unsafe,
            deadline,
            vec![status(502, None)],
        )
        .await;
        assert_eq!(result.unwrap_err().status(), Some(502));
        assert_eq!(calls, 1);
        let refused = ApiError::Connect {
            what: "t".into(),
            message: "refused".into(),
        };
        let errors = vec![refused, status(429, Some(Duration::ZERO))];
        let (result, calls) = run_with(fast(), Idempotency::Unsafe, deadline, errors).await;
        assert_eq!(result.unwrap(), 3);
        assert_eq!(calls, 3);
    }

    #[tokio::test]
    async fn attempts_are_bounded() {
        let errors = (0..10).map(|_| status(500, None)).collect();
        let (result, calls) = run_with(
            fast(),
            Idempotency::Safe,
            Deadline::after(Duration::from_secs(5)),
            errors,
        )
        .await;
        assert_eq!(result.unwrap_err().status(), Some(500));
        assert_eq!(calls, fast().max_attempts);
    }

    #[tokio::test]
    async fn never_sleeps_past_the_deadline() {
        // Retry-After far beyond the deadline: give up at once with the cause.
        let errors = vec![status(429, Some(Duration::from_secs(60)))];
        let (result, calls) = run_with(
            fast(),
            Idempotency::Safe,
            Deadline::after(Duration::from_secs(2)),
            errors,
        )
        .await;
        match result {
            Err(ApiError::DeadlineExceeded { attempts, last, .. }) => {
                assert_eq!(attempts, 1);
                assert!(last.contains("429"), "{last}");
            }
            other => panic!("expected DeadlineExceeded, got {other:?}"),
        }
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn a_passed_deadline_makes_no_attempt() {
        let deadline = Deadline::after(Duration::ZERO);
        let (result, calls) = run_with(fast(), Idempotency::Safe, deadline, vec![]).await;
        assert!(matches!(
            result,
            Err(ApiError::DeadlineExceeded { attempts: 0, .. })
        ));
        assert_eq!(calls, 0);
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let policy = RetryPolicy::default();
        for _ in 0..100 {
            let first = policy.backoff(1);
            assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(200));
            let third = policy.backoff(3);
            assert!(third >= Duration::from_millis(400) && third <= Duration::from_millis(800));
            assert!(policy.backoff(30) <= policy.max_delay);
        }
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        let future = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(120);
        let header =
            jiff::fmt::rfc2822::to_string(&future.to_zoned_datetime(jiff::tz::TimeZone::UTC))
                .unwrap();
        let parsed = parse_retry_after(&header).unwrap();
        assert!(
            parsed > Duration::from_secs(100) && parsed <= Duration::from_secs(120),
            "{parsed:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }
}
