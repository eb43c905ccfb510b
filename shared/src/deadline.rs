//! The time a caller is willing to spend, passed down to every retry loop.

use std::time::Duration;

use tokio::time::Instant;

/// A point in time after which no new attempt or sleep may start. In a Lambda
/// it is the invocation deadline minus a safety margin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(Instant);

impl Deadline {
    pub fn at(instant: Instant) -> Self {
        Self(instant)
    }

    pub fn after(duration: Duration) -> Self {
        Self(Instant::now() + duration)
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
