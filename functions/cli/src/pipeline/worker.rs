//! A queue consumer: claims the next ready message (the queue hands out one
//! message per order at a time, so per-order order holds with any number of
//! workers), runs it through the processor and settles it.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kode::process::{Outcome, Processor, SweepOutcome};
use kode::store::local::{ClaimedMessage, FailOutcome, SqliteQueue};
use kode::store::StoreError;
use kode::Deadline;
use tokio::sync::watch;
use tracing::{error, info, warn};

/// How often an idle worker looks for work another process added (e.g.
/// `kode dead-letters retry`); sends in this process wake it at once.
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Pause after the queue itself failed, so a broken disk is not hammered.
const QUEUE_ERROR_PAUSE: Duration = Duration::from_secs(1);
/// Settling (complete/fail) is retried this often before the message is left
/// in flight for the next start to requeue.
const SETTLE_ATTEMPTS: u32 = 3;
/// On top of the message deadline: the processor honours the deadline
/// itself, this only catches a call that does not.
const HARD_TIMEOUT_SLACK: Duration = Duration::from_secs(30);

#[derive(Clone, Copy)]
enum Settle<'a> {
    Complete,
    Fail(&'a str),
    Release,
}

pub(super) struct Worker {
    pub number: usize,
    pub queue: SqliteQueue,
    pub processor: Arc<Processor>,
    pub message_timeout: Duration,
    /// Set at shutdown: finish the current message, claim no new one.
    pub stop_claiming: watch::Receiver<bool>,
    /// Set when the shutdown grace period is over: drop the current message
    /// back into the queue.
    pub abort: watch::Receiver<bool>,
}

impl Worker {
    /// Runs until shutdown; returns whether a message had to be released.
    pub async fn run(mut self) -> bool {
        loop {
            if *self.stop_claiming.borrow() {
                return false;
            }
            match self.queue.claim_next(Timestamp::now()).await {
                Ok(Some(message)) => {
                    if !self.handle(message).await {
                        return true;
                    }
                }
                Ok(None) => {
                    let waited = tokio::select! {
                        waited = self.queue.wait_for_work(IDLE_POLL) => waited,
                        _ = self.stop_claiming.wait_for(|stop| *stop) => Ok(()),
                    };
                    if let Err(e) = waited {
                        self.queue_failed(&e).await;
                    }
                }
                Err(e) => self.queue_failed(&e).await,
            }
        }
    }

    /// Processes one message; returns false if it was released on abort.
    async fn handle(&self, message: ClaimedMessage) -> bool {
        let deadline = Deadline::after(self.message_timeout);
        let work = tokio::time::timeout(
            self.message_timeout + HARD_TIMEOUT_SLACK,
            self.processor.handle_envelope(&message.body, deadline),
        );
        let mut abort = self.abort.clone();
        let result = tokio::select! {
            result = work => Some(result),
            _ = abort.wait_for(|abort| *abort) => None,
        };
        let Some(result) = result else {
            self.release(&message).await;
            return false;
        };
        match result {
            Ok(Ok(outcome)) => self.complete(&message, &outcome).await,
            Ok(Err(e)) => self.fail(&message, &e.to_string()).await,
            Err(_) => {
                let error = format!(
                    "processing did not end within {} s",
                    (self.message_timeout + HARD_TIMEOUT_SLACK).as_secs()
                );
                self.fail(&message, &error).await;
            }
        }
        true
    }

    async fn complete(&self, message: &ClaimedMessage, outcome: &Outcome) {
        if self.settle(message, Settle::Complete).await.is_some() {
            let (stored, deleted) = match outcome {
                Outcome::Order(report) | Outcome::Sweep(SweepOutcome::Synced(report)) => {
                    (report.stored.len(), report.deleted.len())
                }
                Outcome::Message(_) | Outcome::Sweep(_) => (0, 0),
            };
            info!(
                action = "message_done",
                messageId = %message.id,
                group = %message.group,
                attempt = message.attempt,
                worker = self.number,
                stored,
                deleted,
                "queue message processed"
            );
        }
    }

    async fn fail(&self, message: &ClaimedMessage, error: &str) {
        match self.settle(message, Settle::Fail(error)).await {
            Some(Some(FailOutcome::Retrying { attempt, ready_at })) => warn!(
                action = "message_retry",
                messageId = %message.id,
                group = %message.group,
                attempt,
                retryAt = %ready_at,
                error,
                "queue message failed; it will be retried"
            ),
            Some(Some(FailOutcome::DeadLettered { attempts })) => error!(
                action = "dead_letter",
                messageId = %message.id,
                group = %message.group,
                attempts,
                error,
                "queue message failed for the last time; see `kode dead-letters`"
            ),
            Some(None) | None => {}
        }
    }

    async fn release(&self, message: &ClaimedMessage) {
        if self.settle(message, Settle::Release).await.is_some() {
            warn!(
                action = "message_released",
                messageId = %message.id,
                group = %message.group,
                "shutting down: the message goes back to the queue unfinished"
            );
        }
    }

    /// Settles a message, retrying a few times; `None` if that never worked.
    /// The message then stays in flight and the next start makes it ready
    /// again: processing is idempotent, so a second run is harmless.
    async fn settle(
        &self,
        message: &ClaimedMessage,
        how: Settle<'_>,
    ) -> Option<Option<FailOutcome>> {
        for attempt in 1..=SETTLE_ATTEMPTS {
            let id = &message.id;
            let result = match how {
                Settle::Complete => self.queue.complete(id).await.map(|()| None),
                Settle::Fail(error) => self.queue.fail(id, error, Timestamp::now()).await.map(Some),
                Settle::Release => self.queue.release(id).await.map(|()| None),
            };
            match result {
                Ok(outcome) => return Some(outcome),
                Err(e) => {
                    error!(
                        action = "settle_failed",
                        messageId = %message.id,
                        attempt,
                        error = %e,
                        "could not update the queue"
                    );
                    if attempt < SETTLE_ATTEMPTS {
                        tokio::time::sleep(QUEUE_ERROR_PAUSE).await;
                    }
                }
            }
        }
        None
    }

    async fn queue_failed(&mut self, e: &StoreError) {
        error!(action = "queue_failed", worker = self.number, error = %e, "cannot read the queue");
        tokio::select! {
            () = tokio::time::sleep(QUEUE_ERROR_PAUSE) => {}
            _ = self.stop_claiming.wait_for(|stop| *stop) => {}
        }
    }
}
