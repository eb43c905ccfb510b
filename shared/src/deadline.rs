//! The time a caller is willing to spend, passed down to every retry loop.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// A point in time after which no new attempt or sleep may start. In a Lambda
/// it is the invocation deadline minus a safety margin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(Instant);

/// 2001-09-09 in Unix milliseconds: a smaller `Lambda-Runtime-Deadline-Ms`
/// cannot be a wall-clock time. `cargo lambda watch` sends its fixed
/// 10-minute limit as such a duration (600000), and read as a time it would
/// lie in 1970 and fail every invocation at once.
const EARLIEST_EPOCH_MS: u64 = 1_000_000_000_000;

impl Deadline {
    pub fn at(instant: Instant) -> Self {
        Self(instant)
    }

    pub fn after(duration: Duration) -> Self {
        Self(Instant::now() + duration)
    }

    /// The invocation deadline a Lambda runtime receives (Unix milliseconds).
    /// `None` for 0 (no deadline: unit tests, bare local invokes); a value too
    /// small to be a Unix time is the duration a local emulator means.
    pub fn from_lambda_ms(deadline_ms: u64) -> Option<Deadline> {
        if deadline_ms == 0 {
            return None;
        }
        let left_ms = if deadline_ms < EARLIEST_EPOCH_MS {
            deadline_ms
        } else {
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            deadline_ms.saturating_sub(now_ms)
        };
        Some(Deadline::after(Duration::from_millis(left_ms)))
    }

    pub fn instant(&self) -> Instant {
        self.0
    }

    /// Time left; zero once passed.
    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    pub fn has_passed(&self) -> bool {
        self.remaining().is_zero()
    }

    /// Moves the deadline earlier by `margin` (never before now).
    pub fn minus(&self, margin: Duration) -> Deadline {
        let now = Instant::now();
        Deadline(self.0.checked_sub(margin).unwrap_or(now).max(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now_ms() -> u64 {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        u64::try_from(now.as_millis()).unwrap()
    }

    #[test]
    fn lambda_deadline_is_a_unix_time() {
        let left = Deadline::from_lambda_ms(now_ms() + 60_000)
            .unwrap()
            .remaining();
        assert!(left > Duration::from_secs(50) && left <= Duration::from_secs(60));
        assert!(Deadline::from_lambda_ms(now_ms() - 1_000)
            .unwrap()
            .has_passed());
    }

    #[test]
    fn emulator_deadlines_are_none_or_a_duration() {
        assert_eq!(Deadline::from_lambda_ms(0), None);
        // What `cargo lambda watch` sends with every invocation.
        let left = Deadline::from_lambda_ms(600_000).unwrap().remaining();
        assert!(left > Duration::from_secs(590) && left <= Duration::from_secs(600));
    }
}
