//! processor Lambda: takes SQS FIFO batches of push envelopes and runs each
//! through [`kode::process::Processor`]. Records of one message group (one
//! order) run in order; groups run side by side. A failed record and every
//! later record of its group go back to the queue as batch item failures,
//! so an order's pushes are never applied out of order. How soon they come
//! back is set in [`redelivery`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::future::join_all;
use kode::metrics::{Metric, Metrics};
use kode::process::{ProcessError, Processor};
use kode::Deadline;
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use tracing::{error, warn};

pub mod redelivery;
mod sqs;

pub use redelivery::{Backoff, Outcome, Redelivery, Visibility, VisibilityError};
pub use sqs::SqsVisibility;

/// Time kept free at the end of an invocation: no record starts, and no
/// KODE retry sleeps, inside it (`PROCESSOR_DEADLINE_MARGIN_SECS`).
pub const DEFAULT_DEADLINE_MARGIN: Duration = Duration::from_secs(5);

/// Handles one queue message body.
#[async_trait]
pub trait RecordHandler: Send + Sync {
    async fn handle(&self, body: &str, deadline: Deadline) -> Result<(), ProcessError>;

    /// Where the batch's own metrics go (records deferred for lack of time).
    fn metrics(&self) -> Metrics {
        Metrics::Off
    }
}

#[async_trait]
impl RecordHandler for Processor {
    async fn handle(&self, body: &str, deadline: Deadline) -> Result<(), ProcessError> {
        self.handle_envelope(body, deadline).await.map(|_| ())
    }

    fn metrics(&self) -> Metrics {
        self.metrics.clone()
    }
}

/// A batch that cannot be answered record by record; Lambda then retries
/// the whole batch.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// Without a message id a failure could not be reported, and an empty
    /// `itemIdentifier` would fail the batch anyway.
    #[error("SQS record {index} has no messageId")]
    MissingMessageId { index: usize },
}

impl BatchError {
    /// Always worth retrying: nothing of the batch was processed.
    pub fn is_retryable(&self) -> bool {
        true
    }
}

impl From<BatchError> for Diagnostic {
    fn from(error: BatchError) -> Diagnostic {
        Diagnostic {
            error_type: "BatchError".into(),
            error_message: error.to_string(),
        }
    }
}

/// Processes a batch: groups concurrently, each group's records in order.
/// `deadline` is the invocation's; no record starts once less than
/// `margin` of it remains, and such records are reported as failures.
/// Records reported as failures wait out the queue's visibility timeout;
/// the Lambda uses [`handle_batch_redelivering`].
pub async fn handle_batch<H: RecordHandler + ?Sized>(
    handler: &H,
    event: SqsEvent,
    deadline: Deadline,
    margin: Duration,
) -> Result<SqsBatchResponse, BatchError> {
    run_batch(handler, None, event, deadline, margin).await
}

/// [`handle_batch`], and every record reported as a failure gets its
/// visibility from `redelivery` as soon as its group is through.
pub async fn handle_batch_redelivering<H: RecordHandler + ?Sized>(
    handler: &H,
    redelivery: &Redelivery,
    event: SqsEvent,
    deadline: Deadline,
    margin: Duration,
) -> Result<SqsBatchResponse, BatchError> {
    run_batch(handler, Some(redelivery), event, deadline, margin).await
}

async fn run_batch<H: RecordHandler + ?Sized>(
    handler: &H,
    redelivery: Option<&Redelivery>,
    event: SqsEvent,
    deadline: Deadline,
    margin: Duration,
) -> Result<SqsBatchResponse, BatchError> {
    let mut records = Vec::with_capacity(event.records.len());
    for (index, record) in event.records.into_iter().enumerate() {
        match record.message_id.clone() {
            Some(id) if !id.is_empty() => records.push((id, record)),
            _ => return Err(BatchError::MissingMessageId { index }),
        }
    }

    // A record without a group (not a FIFO queue) joins the "" group, so
    // ordering is kept rather than guessed.
    let mut groups: Vec<Vec<&(String, SqsMessage)>> = Vec::new();
    let mut group_of: HashMap<&str, usize> = HashMap::new();
    for record in &records {
        let group = record
            .1
            .attributes
            .get("MessageGroupId")
            .map(String::as_str)
            .unwrap_or("");
        let index = *group_of.entry(group).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[index].push(record);
    }

    let work_deadline = deadline.minus(margin);
    let out_of_time = AtomicUsize::new(0);
    let failed = join_all(
        groups
            .iter()
            .map(|group| run_group(handler, redelivery, group, work_deadline, &out_of_time)),
    )
    .await;
    // Counted per batch, so that an alarm can tell batches that no longer
    // fit the timeout from records deferred behind a failure.
    let out_of_time = out_of_time.into_inner();
    if out_of_time > 0 {
        handler
            .metrics()
            .emit(&[(Metric::RecordsDeferred, out_of_time as f64)]);
    }

    let mut response = SqsBatchResponse::default();
    for id in failed.into_iter().flatten() {
        response.add_failure(id);
    }
    Ok(response)
}

/// Runs one group's records in order, then hands back those not done;
/// returns the ids to report as failed and adds those left unstarted for
/// lack of time to `out_of_time`.
async fn run_group<H: RecordHandler + ?Sized>(
    handler: &H,
    redelivery: Option<&Redelivery>,
    records: &[&(String, SqsMessage)],
    deadline: Deadline,
    out_of_time: &AtomicUsize,
) -> Vec<String> {
    let mut outcomes = Vec::with_capacity(records.len());
    let mut stopped: Option<&'static str> = None;
    for (index, (id, record)) in records.iter().map(|r| (&r.0, &r.1)).enumerate() {
        let group = record.attributes.get("MessageGroupId").map(String::as_str);
        if stopped.is_none() && deadline.has_passed() {
            stopped = Some("invocation deadline near");
            out_of_time.fetch_add(records.len() - index, Ordering::Relaxed);
        }
        if let Some(reason) = stopped {
            warn!(action = "record_deferred", messageId = %id, group, reason, "record returned to the queue");
            outcomes.push((id.as_str(), record, Outcome::NotStarted));
            continue;
        }
        // A record without a body fails like any unparseable envelope.
        let body = record.body.as_deref().unwrap_or("");
        match handler.handle(body, deadline).await {
            Ok(()) => outcomes.push((id.as_str(), record, Outcome::Done)),
            Err(e) => {
                error!(action = "record_failed", messageId = %id, group, retryable = e.is_retryable(), error = %e, "record failed");
                outcomes.push((id.as_str(), record, Outcome::Failed));
                stopped = Some("an earlier record of its group failed");
            }
        }
    }
    if let Some(redelivery) = redelivery {
        redelivery.hand_back(&outcomes).await;
    }
    outcomes
        .into_iter()
        .filter(|(_, _, outcome)| *outcome != Outcome::Done)
        .map(|(id, _, _)| id.to_owned())
        .collect()
}

/// The invocation deadline from the Lambda context (milliseconds since the
/// Unix epoch; see [`Deadline::from_lambda_ms`] for what local emulators
/// send). Without one no record starts.
pub fn deadline_from_epoch_ms(deadline_ms: u64) -> Deadline {
    Deadline::from_lambda_ms(deadline_ms).unwrap_or_else(|| Deadline::after(Duration::ZERO))
}

/// Serves SQS batches until the runtime stops.
pub async fn run<H: RecordHandler + 'static>(
    handler: Arc<H>,
    redelivery: Redelivery,
    margin: Duration,
) -> Result<(), lambda_runtime::Error> {
    let redelivery = Arc::new(redelivery);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let (handler, redelivery) = (handler.clone(), redelivery.clone());
        async move {
            let deadline = deadline_from_epoch_ms(event.context.deadline);
            handle_batch_redelivering(
                handler.as_ref(),
                &redelivery,
                event.payload,
                deadline,
                margin,
            )
            .await
        }
    }))
    .await
}

#[cfg(test)]
mod tests;
