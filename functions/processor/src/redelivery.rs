//! When a record handed back to the queue may be received again.
//!
//! Left alone, a returned record stays invisible for the queue's whole
//! visibility timeout (30 minutes). The processor sets it instead: a few
//! seconds for a record it did not start because the invocation was ending,
//! and for a failed record a backoff that grows with its receive count (by
//! default 1, 4, 16 minutes, then the queue's timeout), so a short KODE
//! outage costs minutes, not half hours.
//!
//! FIFO order holds: SQS returns nothing of a group while one of its
//! messages is in flight, and every later record of a failed group gets the
//! failed record's visibility, so none of them is due before it. Should a
//! change fail, the changes of the later records of that group are skipped:
//! they wait out the queue's timeout like the record whose change failed.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::SqsMessage;
use tracing::{info, warn};

/// What became of one record of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Processed: Lambda deletes it from the queue.
    Done,
    Failed,
    /// Not started: the invocation was ending, or an earlier record of its
    /// group failed.
    NotStarted,
}

/// The visibility a returned record gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// For a record not started because the invocation was ending.
    pub deferred: Duration,
    /// After a record's first failed receive.
    pub first: Duration,
    /// Growth per further failed receive.
    pub factor: u32,
    /// The queue's visibility timeout: no record waits longer than Lambda
    /// would have let it.
    pub cap: Duration,
}

impl Backoff {
    /// 5 s for deferred records; 1, 4, 16 … minutes for failed ones, up to `cap`.
    pub fn new(cap: Duration) -> Backoff {
        Backoff {
            deferred: Duration::from_secs(5),
            first: Duration::from_secs(60),
            factor: 4,
            cap,
        }
    }

    /// After the `receive_count`-th receive of a record failed:
    /// `first × factor^(receive_count − 1)`, capped.
    pub fn after_failure(&self, receive_count: u32) -> Duration {
        let growth = self
            .factor
            .saturating_pow(receive_count.max(1).saturating_sub(1));
        self.first.saturating_mul(growth).min(self.cap)
    }

    /// For the records of one group in order, each with its outcome and
    /// receive count: the visibility to set, `None` for records that are done.
    pub fn plan(&self, group: &[(Outcome, u32)]) -> Vec<Option<Duration>> {
        let mut failed: Option<Duration> = None;
        group
            .iter()
            .map(|&(outcome, receive_count)| match outcome {
                Outcome::Done => None,
                Outcome::Failed => {
                    let visibility = self.after_failure(receive_count);
                    failed = Some(visibility);
                    Some(visibility)
                }
                Outcome::NotStarted => Some(failed.unwrap_or(self.deferred.min(self.cap))),
            })
            .collect()
    }
}

/// A visibility change that did not happen; the record then waits out the
/// queue's visibility timeout.
#[derive(Debug, thiserror::Error)]
pub enum VisibilityError {
    /// Network trouble, throttling, a 5xx, or no answer in time.
    #[error("SQS unavailable: {0}")]
    Unavailable(String),
    /// A refusal another try will not change (expired receipt handle,
    /// missing permission, unknown queue).
    #[error("SQS refused: {0}")]
    Refused(String),
}

impl VisibilityError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, VisibilityError::Unavailable(_))
    }
}

/// Sets how long a received message stays invisible (SQS
/// `ChangeMessageVisibility`).
#[async_trait]
pub trait Visibility: Send + Sync {
    async fn set(&self, receipt_handle: &str, visibility: Duration) -> Result<(), VisibilityError>;
}

/// One change may take this long; a hanging SQS must not use up the time
/// kept free at the end of the invocation.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(2);

/// The backoff and the queue it is applied to. Build once per cold start.
#[derive(Clone)]
pub struct Redelivery {
    backoff: Backoff,
    queue: Arc<dyn Visibility>,
}

impl Redelivery {
    pub fn new(backoff: Backoff, queue: Arc<dyn Visibility>) -> Redelivery {
        Redelivery { backoff, queue }
    }

    /// Sets the visibility of every record of one group that goes back to
    /// the queue, in group order, stopping at the first change that fails.
    pub(crate) async fn hand_back(&self, group: &[(&str, &SqsMessage, Outcome)]) {
        let plan = self.backoff.plan(
            &group
                .iter()
                .map(|(_, record, outcome)| (*outcome, receive_count(record)))
                .collect::<Vec<_>>(),
        );
        for ((id, record, _), visibility) in group.iter().zip(plan) {
            let Some(visibility) = visibility else {
                continue;
            };
            let changed = match record.receipt_handle.as_deref() {
                Some(handle) if !handle.is_empty() => {
                    match tokio::time::timeout(CHANGE_TIMEOUT, self.queue.set(handle, visibility))
                        .await
                    {
                        Ok(result) => result,
                        Err(_) => Err(VisibilityError::Unavailable(format!(
                            "no answer within {} s",
                            CHANGE_TIMEOUT.as_secs()
                        ))),
                    }
                }
                _ => Err(VisibilityError::Refused(
                    "the record has no receipt handle".into(),
                )),
            };
            let group_id = record.attributes.get("MessageGroupId").map(String::as_str);
            match changed {
                Ok(()) => {
                    info!(action = "record_visibility", messageId = %id, group = group_id, visibilitySecs = visibility.as_secs(), "returned record visible again after visibilitySecs")
                }
                Err(e) => {
                    warn!(action = "visibility_failed", messageId = %id, group = group_id, retryable = e.is_retryable(), error = %e, "record and the rest of its group wait for the queue's visibility timeout");
                    break;
                }
            }
        }
    }
}

/// SQS's `ApproximateReceiveCount`; 1 when absent or unreadable (the record
/// was received at least once, or we would not hold it).
fn receive_count(record: &SqsMessage) -> u32 {
    record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|count| count.parse().ok())
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    use Outcome::{Done, Failed, NotStarted};

    const MIN: Duration = Duration::from_secs(60);

    fn backoff() -> Backoff {
        Backoff::new(30 * MIN)
    }

    #[test]
    fn failed_records_wait_1_4_16_minutes_then_the_queue_timeout() {
        let b = backoff();
        let waits: Vec<Duration> = (1..=6).map(|n| b.after_failure(n)).collect();
        assert_eq!(
            waits,
            [MIN, 4 * MIN, 16 * MIN, 30 * MIN, 30 * MIN, 30 * MIN]
        );
        assert_eq!(
            b.after_failure(0),
            MIN,
            "an unknown count is a first receive"
        );
        assert_eq!(b.after_failure(u32::MAX), 30 * MIN, "no overflow");
    }

    #[test]
    fn the_retry_window_before_the_dead_letter_queue_is_at_least_two_and_a_half_hours() {
        // template.yaml: maxReceiveCount 8 with the queue's 30 minutes.
        let b = backoff();
        let window: Duration = (1..=8).map(|n| b.after_failure(n)).sum();
        assert_eq!(window, Duration::from_secs(10_260));
        assert!(window >= Duration::from_secs(9_000), "{window:?}");
        let one_less: Duration = (1..=7).map(|n| b.after_failure(n)).sum();
        assert!(
            one_less < Duration::from_secs(9_000),
            "8 is the least that keeps 2.5 h"
        );
    }

    #[test]
    fn later_records_of_a_failed_group_share_its_visibility() {
        let plan = backoff().plan(&[(Done, 1), (Failed, 3), (NotStarted, 1), (NotStarted, 7)]);
        assert_eq!(plan, [None, Some(16 * MIN), Some(16 * MIN), Some(16 * MIN)]);
    }

    #[test]
    fn records_not_started_for_the_deadline_come_back_in_seconds() {
        let plan = backoff().plan(&[(Done, 2), (NotStarted, 2), (NotStarted, 1)]);
        let five = Duration::from_secs(5);
        assert_eq!(plan, [None, Some(five), Some(five)]);
    }

    #[test]
    fn a_done_group_changes_nothing_and_nothing_exceeds_the_cap() {
        assert_eq!(backoff().plan(&[(Done, 1), (Done, 9)]), [None, None]);
        let tight = Backoff {
            cap: Duration::from_secs(2),
            ..backoff()
        };
        assert_eq!(
            tight.plan(&[(NotStarted, 1)]),
            [Some(Duration::from_secs(2))]
        );
    }
}
