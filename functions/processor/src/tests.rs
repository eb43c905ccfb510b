//! The batch handler: group order, failures reported per record, the deadline.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use kode::store::StoreError;
use serde_json::Value;
use tokio::sync::Barrier;

use super::*;

#[derive(Clone, Copy)]
enum Act {
    Ok,
    Fail,
    /// Waits until another group's record also reached the barrier.
    Meet,
    /// Takes this long (paused tokio time).
    Take(Duration),
}

struct Stub {
    acts: HashMap<String, Act>,
    calls: Mutex<Vec<String>>,
    barrier: Barrier,
    metrics: Metrics,
}

impl Stub {
    fn new(acts: &[(&str, Act)]) -> Stub {
        Stub {
            acts: acts.iter().map(|(b, a)| ((*b).to_owned(), *a)).collect(),
            calls: Mutex::new(Vec::new()),
            barrier: Barrier::new(2),
            metrics: Metrics::memory("test-stack"),
        }
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// `RecordsDeferred` of each metric line emitted.
    fn deferred_counts(&self) -> Vec<f64> {
        self.metrics
            .lines()
            .iter()
            .map(|line| {
                let v: Value = serde_json::from_str(line).unwrap();
                assert_eq!(v["Stack"], "test-stack");
                v["RecordsDeferred"].as_f64().unwrap()
            })
            .collect()
    }
}

#[async_trait]
impl RecordHandler for Stub {
    async fn handle(&self, body: &str, _deadline: Deadline) -> Result<(), ProcessError> {
        self.calls.lock().unwrap().push(body.to_owned());
        match self.acts.get(body).copied().unwrap_or(Act::Ok) {
            Act::Ok => Ok(()),
            Act::Fail => Err(ProcessError::Store {
                order: None,
                cause: StoreError::Unavailable("down".into()),
            }),
            Act::Meet => {
                self.barrier.wait().await;
                Ok(())
            }
            Act::Take(d) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
        }
    }

    fn metrics(&self) -> Metrics {
        self.metrics.clone()
    }
}

/// A record whose message id and body are both `name`.
fn record(name: &str, group: Option<&str>) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(name.to_owned());
    m.body = Some(name.to_owned());
    if let Some(g) = group {
        m.attributes.insert("MessageGroupId".into(), g.to_owned());
    }
    m
}

fn event(records: Vec<SqsMessage>) -> SqsEvent {
    let mut e = SqsEvent::default();
    e.records = records;
    e
}

fn failed_ids(response: &SqsBatchResponse) -> Vec<&str> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect()
}

fn long() -> Deadline {
    Deadline::after(Duration::from_secs(900))
}

#[tokio::test]
async fn failure_returns_the_record_and_the_rest_of_its_group_only() {
    let stub = Stub::new(&[("a2", Act::Fail)]);
    let batch = event(vec![
        record("a1", Some("order-1")),
        record("b1", Some("order-2")),
        record("a2", Some("order-1")),
        record("b2", Some("order-2")),
        record("a3", Some("order-1")),
    ]);
    let response = handle_batch(&stub, batch, long(), DEFAULT_DEADLINE_MARGIN)
        .await
        .unwrap();

    assert_eq!(failed_ids(&response), ["a2", "a3"]);
    let calls = stub.calls();
    assert!(
        !calls.contains(&"a3".to_owned()),
        "a3 must not run after a2 failed"
    );
    let order_1: Vec<&String> = calls.iter().filter(|c| c.starts_with('a')).collect();
    assert_eq!(order_1, ["a1", "a2"]);
    let order_2: Vec<&String> = calls.iter().filter(|c| c.starts_with('b')).collect();
    assert_eq!(order_2, ["b1", "b2"]);
    assert!(
        stub.deferred_counts().is_empty(),
        "a3 waits behind a failure, not for lack of time"
    );
}

#[tokio::test]
async fn successful_batch_reports_no_failures() {
    let stub = Stub::new(&[]);
    let batch = event(vec![record("a1", Some("g")), record("a2", Some("g"))]);
    let response = handle_batch(&stub, batch, long(), DEFAULT_DEADLINE_MARGIN)
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(stub.calls(), ["a1", "a2"]);
}

#[tokio::test]
async fn groups_run_concurrently() {
    // Each waits for the other: run one group after the other and this hangs.
    let stub = Stub::new(&[("a1", Act::Meet), ("b1", Act::Meet)]);
    let batch = event(vec![
        record("a1", Some("order-1")),
        record("b1", Some("order-2")),
    ]);
    let response = tokio::time::timeout(
        Duration::from_secs(30),
        handle_batch(&stub, batch, long(), DEFAULT_DEADLINE_MARGIN),
    )
    .await
    .expect("groups were run one after the other")
    .unwrap();
    assert!(response.batch_item_failures.is_empty());
}

#[tokio::test]
async fn records_without_a_group_keep_their_order() {
    let stub = Stub::new(&[("x1", Act::Fail)]);
    let batch = event(vec![record("x1", None), record("x2", None)]);
    let response = handle_batch(&stub, batch, long(), DEFAULT_DEADLINE_MARGIN)
        .await
        .unwrap();
    assert_eq!(failed_ids(&response), ["x1", "x2"]);
    assert_eq!(stub.calls(), ["x1"]);
}

#[tokio::test]
async fn nothing_starts_inside_the_margin() {
    let stub = Stub::new(&[]);
    let batch = event(vec![record("a1", Some("g1")), record("b1", Some("g2"))]);
    let deadline = Deadline::after(Duration::from_secs(4));
    let response = handle_batch(&stub, batch, deadline, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(failed_ids(&response), ["a1", "b1"]);
    assert!(stub.calls().is_empty());
    assert_eq!(stub.deferred_counts(), [2.0], "one count per batch");
}

#[tokio::test(start_paused = true)]
async fn records_left_when_the_deadline_nears_are_returned_untouched() {
    let stub = Stub::new(&[("a1", Act::Take(Duration::from_secs(10)))]);
    let batch = event(vec![
        record("a1", Some("g")),
        record("a2", Some("g")),
        record("a3", Some("g")),
    ]);
    // 7 s of work time: a1 starts, and after its 10 s nothing else may.
    let deadline = Deadline::after(Duration::from_secs(12));
    let response = handle_batch(&stub, batch, deadline, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(failed_ids(&response), ["a2", "a3"]);
    assert_eq!(stub.calls(), ["a1"]);
    assert_eq!(stub.deferred_counts(), [2.0]);
}

#[tokio::test]
async fn a_record_without_message_id_fails_the_whole_batch_before_any_work() {
    let stub = Stub::new(&[]);
    let mut nameless = record("b1", Some("g"));
    nameless.message_id = None;
    let batch = event(vec![record("a1", Some("g")), nameless]);
    let err = handle_batch(&stub, batch, long(), DEFAULT_DEADLINE_MARGIN)
        .await
        .unwrap_err();
    assert!(matches!(err, BatchError::MissingMessageId { index: 1 }));
    assert!(stub.calls().is_empty());
}

#[test]
fn deadline_from_the_context_is_in_the_future() {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let deadline = deadline_from_epoch_ms(now_ms + 60_000);
    assert!(deadline.remaining() > Duration::from_secs(50));
    assert!(deadline_from_epoch_ms(now_ms - 1_000).has_passed());
}

/// Records every visibility change; refuses those of the listed handles.
#[derive(Default)]
struct Queue {
    changes: Mutex<Vec<(String, Duration)>>,
    refuse: Vec<String>,
}

#[async_trait]
impl Visibility for Queue {
    async fn set(&self, receipt_handle: &str, visibility: Duration) -> Result<(), VisibilityError> {
        if self.refuse.iter().any(|h| h == receipt_handle) {
            return Err(VisibilityError::Refused("receipt handle expired".into()));
        }
        self.changes
            .lock()
            .unwrap()
            .push((receipt_handle.to_owned(), visibility));
        Ok(())
    }
}

/// As received from SQS: a receipt handle `rh-<name>` and a receive count.
fn received(name: &str, group: &str, receive_count: u32) -> SqsMessage {
    let mut m = record(name, Some(group));
    m.receipt_handle = Some(format!("rh-{name}"));
    m.attributes
        .insert("ApproximateReceiveCount".into(), receive_count.to_string());
    m
}

async fn redelivered(
    queue: Arc<Queue>,
    stub: &Stub,
    records: Vec<SqsMessage>,
    deadline: Deadline,
) -> Vec<String> {
    let redelivery = Redelivery::new(Backoff::new(Duration::from_secs(1800)), queue);
    let response = handle_batch_redelivering(
        stub,
        &redelivery,
        event(records),
        deadline,
        DEFAULT_DEADLINE_MARGIN,
    )
    .await
    .unwrap();
    failed_ids(&response)
        .into_iter()
        .map(str::to_owned)
        .collect()
}

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_failed_record_and_the_rest_of_its_group_get_its_backoff() {
    let queue = Arc::new(Queue::default());
    let stub = Stub::new(&[("a2", Act::Fail)]);
    let failed = redelivered(
        queue.clone(),
        &stub,
        vec![
            received("a1", "order-1", 1),
            received("b1", "order-2", 1),
            received("a2", "order-1", 2),
            received("a3", "order-1", 1),
        ],
        long(),
    )
    .await;
    assert_eq!(failed, ["a2", "a3"]);
    // a2's second receive failed: 4 minutes, and a3 never before it.
    assert_eq!(
        *queue.changes.lock().unwrap(),
        [
            ("rh-a2".to_owned(), 4 * MINUTE),
            ("rh-a3".to_owned(), 4 * MINUTE)
        ]
    );
}

#[tokio::test]
async fn records_not_started_for_the_deadline_get_a_few_seconds() {
    let queue = Arc::new(Queue::default());
    let stub = Stub::new(&[]);
    let failed = redelivered(
        queue.clone(),
        &stub,
        vec![received("a1", "order-1", 3), received("b1", "order-2", 1)],
        Deadline::after(Duration::from_secs(4)),
    )
    .await;
    assert_eq!(failed, ["a1", "b1"]);
    let mut changes = queue.changes.lock().unwrap().clone();
    changes.sort();
    let five = Duration::from_secs(5);
    assert_eq!(
        changes,
        [("rh-a1".to_owned(), five), ("rh-b1".to_owned(), five)]
    );
}

#[tokio::test]
async fn a_refused_visibility_change_fails_nothing_and_leaves_the_rest_of_its_group_alone() {
    let queue = Arc::new(Queue {
        refuse: vec!["rh-a1".to_owned()],
        ..Queue::default()
    });
    let stub = Stub::new(&[("a1", Act::Fail), ("b1", Act::Fail)]);
    let failed = redelivered(
        queue.clone(),
        &stub,
        vec![
            received("a1", "order-1", 1),
            received("a2", "order-1", 1),
            received("b1", "order-2", 1),
            received("b2", "order-2", 1),
        ],
        long(),
    )
    .await;
    assert_eq!(failed, ["a1", "a2", "b1", "b2"]);
    // a2 keeps the queue's timeout, as a1 does; order-2 is unaffected.
    assert_eq!(
        *queue.changes.lock().unwrap(),
        [("rh-b1".to_owned(), MINUTE), ("rh-b2".to_owned(), MINUTE)]
    );
}
