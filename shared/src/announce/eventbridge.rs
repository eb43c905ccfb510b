//! [`Announcer`] on an EventBridge bus: `source` `kode-push`, `detail-type`
//! the type in words, `detail` the event's data.

use async_trait::async_trait;
use aws_sdk_eventbridge::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use super::{AnnounceError, Announcer};
use crate::events::{Event, SOURCE};

/// PutEvents takes at most 10 entries and 256 KB per call.
const MAX_ENTRIES: usize = 10;
/// Below the 256 KB limit, leaving room for what EventBridge counts beside
/// the detail (source, detail-type, time).
const MAX_BATCH_BYTES: usize = 200 * 1024;

/// Puts events on one bus. Cheap to clone (the client is shared).
#[derive(Debug, Clone)]
pub struct EventBridgeAnnouncer {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridgeAnnouncer {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> Self {
        EventBridgeAnnouncer {
            client,
            bus: bus.into(),
        }
    }

    /// A client from the one SDK configuration (`crate::aws::sdk_config`).
    pub fn from_config(config: &aws_config::SdkConfig, bus: impl Into<String>) -> Self {
        Self::new(aws_sdk_eventbridge::Client::new(config), bus)
    }

    pub fn bus(&self) -> &str {
        &self.bus
    }

    fn entry(&self, event: &Event) -> PutEventsRequestEntry {
        let time = event
            .timestamp
            .parse::<jiff::Timestamp>()
            .ok()
            .map(|t| aws_smithy_types::DateTime::from_secs(t.as_second()));
        PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(SOURCE)
            .detail_type(event.event_type().detail_type())
            .detail(event.data_json().to_string())
            .set_time(time)
            .build()
    }

    async fn put(&self, events: &[Event]) -> Vec<Result<(), AnnounceError>> {
        let entries: Vec<PutEventsRequestEntry> = events.iter().map(|e| self.entry(e)).collect();
        let output = match self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) => {
                let error = classify(&self.bus, e);
                return events.iter().map(|_| Err(error.clone())).collect();
            }
        };
        // One result entry per request entry, in order; a failed one has an
        // error code instead of an event id.
        let results = output.entries();
        events
            .iter()
            .enumerate()
            .map(|(i, event)| match results.get(i) {
                Some(r) if r.error_code().is_none() && r.event_id().is_some() => Ok(()),
                Some(r) => Err(entry_error(
                    event,
                    r.error_code().unwrap_or("unknown"),
                    r.error_message().unwrap_or(""),
                )),
                None => Err(AnnounceError::Unavailable(format!(
                    "PutEvents on {} answered no result for event {}",
                    self.bus, event.id
                ))),
            })
            .collect()
    }
}

#[async_trait]
impl Announcer for EventBridgeAnnouncer {
    async fn announce(&self, events: &[Event]) -> Vec<Result<(), AnnounceError>> {
        let mut results = Vec::with_capacity(events.len());
        for batch in batches(events) {
            results.extend(self.put(batch).await);
        }
        results
    }
}

/// Consecutive runs of at most [`MAX_ENTRIES`] events and
/// [`MAX_BATCH_BYTES`] of detail.
fn batches(events: &[Event]) -> Vec<&[Event]> {
    let mut batches = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, event) in events.iter().enumerate() {
        let size = event.data_json().to_string().len();
        if i > start && (i - start == MAX_ENTRIES || bytes + size > MAX_BATCH_BYTES) {
            batches.push(&events[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < events.len() {
        batches.push(&events[start..]);
    }
    batches
}

fn entry_error(event: &Event, code: &str, message: &str) -> AnnounceError {
    let text = format!("event {}: {code} {message}", event.id);
    if code.contains("Throttl") || code == "InternalFailure" {
        AnnounceError::Unavailable(text)
    } else {
        AnnounceError::Rejected(text)
    }
}

fn classify<E>(bus: &str, err: SdkError<E>) -> AnnounceError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let retryable = match &err {
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            let code = context.err().code().unwrap_or("");
            status >= 500 || status == 429 || code.contains("Throttl")
        }
        SdkError::ConstructionFailure(_) => false,
        SdkError::DispatchFailure(failure) => !failure.is_user(),
        _ => true,
    };
    let message = format!("PutEvents on {bus}: {}", DisplayErrorContext(&err));
    if retryable {
        AnnounceError::Unavailable(message)
    } else {
        AnnounceError::Rejected(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::order_completed;
    use crate::model::ObjectKey;
    use crate::model::OrderId;

    fn event(order: u64, keys: usize, key_len: usize) -> Event {
        let keys: Vec<ObjectKey> = (0..keys)
            .map(|i| ObjectKey(format!("{i:04}{}", "k".repeat(key_len))))
            .collect();
        order_completed(OrderId(order), None, &keys, "2024-05-01T10:00:00Z")
    }

    #[test]
    fn batches_keep_to_ten_entries_and_the_size_limit() {
        let small: Vec<Event> = (0..23).map(|i| event(i, 1, 10)).collect();
        let sizes: Vec<usize> = batches(&small).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [10, 10, 3]);

        // About 70 KB each: two fit under the limit, a third would not.
        let large: Vec<Event> = (0..5).map(|i| event(i, 100, 700)).collect();
        let sizes: Vec<usize> = batches(&large).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [2, 2, 1]);
        assert!(batches(&[]).is_empty());
    }

    #[test]
    fn throttled_entries_are_retryable_and_refused_ones_are_not() {
        let e = event(1, 0, 0);
        assert!(entry_error(&e, "ThrottlingException", "slow down").is_retryable());
        assert!(entry_error(&e, "InternalFailure", "").is_retryable());
        let refused = entry_error(&e, "AccessDeniedException", "no");
        assert!(!refused.is_retryable());
        assert!(refused.to_string().contains("1:completed"), "{refused}");
    }
}
