//! The sweep runner and the open-order rules it relies on.

use std::sync::Mutex;

use async_trait::async_trait;

use super::*;
use crate::envelope::{parse_message, QueueMessage};
use crate::model::{OrderRecord, PushStatus, OPEN_FOREVER};
use crate::store::local::SqliteLedger;
use crate::sync::{parse_duration, SweepPolicy};

#[derive(Default)]
struct MemQueue {
    sent: Mutex<Vec<OutgoingMessage>>,
    refuse_group: Option<String>,
}

#[async_trait]
impl Queue for MemQueue {
    async fn send(&self, message: &OutgoingMessage) -> Result<String, StoreError> {
        if self.refuse_group.as_deref() == Some(message.group.as_str()) {
            return Err(StoreError::Unavailable("queue down".into()));
        }
        let mut sent = self.sent.lock().unwrap();
        sent.push(message.clone());
        Ok(format!("m{}", sent.len()))
    }
}

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// A ledger in a temp directory, removed with the directory.
async fn ledger() -> (tempfile::TempDir, SqliteLedger) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = SqliteLedger::open(dir.path().join("ledger.sqlite"))
        .await
        .unwrap();
    (dir, ledger)
}

async fn swept_at(ledger: &SqliteLedger, order: u64) -> Option<String> {
    let record = ledger.order(OrderId(order)).await.unwrap();
    record.expect("an order record").swept_at
}

async fn record(ledger: &SqliteLedger, order: u64, sweep_until: Option<&str>) {
    ledger
        .upsert_order(&OrderRecord {
            order_id: Some(OrderId(order)),
            sweep_until: sweep_until.map(str::to_owned),
            ..OrderRecord::default()
        })
        .await
        .unwrap();
}

#[test]
fn humane_durations_parse_and_nonsense_is_named() {
    let cases = [
        ("90s", 90),
        ("15m", 900),
        ("1h", 3600),
        ("2h30m", 9000),
        ("1d", 86_400),
        ("0", 0),
        ("45", 45),
    ];
    for (text, secs) in cases {
        assert_eq!(
            parse_duration(text),
            Ok(Duration::from_secs(secs)),
            "{text}"
        );
    }
    for bad in ["", "h", "1x", "1h30", "-1s", "1.5h"] {
        let err = parse_duration(bad).unwrap_err();
        assert!(!err.is_empty(), "{bad}");
    }
}

#[test]
fn open_until_follows_the_last_status() {
    let policy = SweepPolicy::default();
    let now = at("2024-05-01T10:00:00.5Z");
    let forever = Some(OPEN_FOREVER.to_owned());
    assert_eq!(policy.open_until(None, None, now), forever);
    for status in ["NEW", "UPDATED", "SOMETHING_NEW"] {
        assert_eq!(
            policy.open_until(Some(&PushStatus::parse(status)), None, now),
            forever,
            "{status}"
        );
    }
    for status in ["CANCELLED", "REFUNDED"] {
        assert_eq!(
            policy.open_until(Some(&PushStatus::parse(status)), None, now),
            None
        );
    }
    // Counted from the first FINISHED, not from a repeated one.
    assert_eq!(
        policy.open_until(Some(&PushStatus::Finished), None, now),
        Some("2024-05-15T10:00:00Z".to_owned())
    );
    assert_eq!(
        policy.open_until(
            Some(&PushStatus::Finished),
            Some("2024-04-20T08:00:00Z"),
            now
        ),
        Some("2024-05-04T08:00:00Z".to_owned())
    );
}

#[tokio::test]
async fn a_sweep_sends_one_message_per_open_order_in_its_group() {
    let (_dir, ledger) = ledger().await;
    let queue = MemQueue::default();
    record(&ledger, 1, Some(OPEN_FOREVER)).await;
    record(&ledger, 2, Some("2024-05-10T00:00:00Z")).await;
    record(&ledger, 3, Some("2024-04-01T00:00:00Z")).await; // FINISHED long ago
    record(&ledger, 4, None).await; // cancelled
    ledger.hold_open(OrderId(3), "failed:a1").await.unwrap();
    ledger.hold_open(OrderId(5), "events").await.unwrap();

    let sweep = Sweep {
        ledger: &ledger,
        queue: &queue,
        interval: Duration::from_secs(3600),
        metrics: Metrics::Off,
    };
    let now = at("2024-05-01T10:00:00Z");
    let summary = sweep.run(now).await.unwrap();
    let ids = |v: &[OrderId]| v.iter().map(|o| o.0).collect::<Vec<_>>();
    assert_eq!(ids(&summary.enqueued), [1, 2, 3, 5]);
    assert_eq!(summary.open, 4);

    let sent = queue.sent.lock().unwrap().clone();
    let groups: Vec<&str> = sent.iter().map(|m| m.group.as_str()).collect();
    assert_eq!(groups, ["order-1", "order-2", "order-3", "order-5"]);
    match parse_message(&sent[0].body).unwrap() {
        QueueMessage::Sweep(s) => assert_eq!(s.order_id, OrderId(1)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        swept_at(&ledger, 1).await.as_deref(),
        Some("2024-05-01T10:00:00Z")
    );

    // Half an interval later nothing is sent again; a full one later it is.
    let again = sweep.run(at("2024-05-01T10:20:00Z")).await.unwrap();
    assert!(again.enqueued.is_empty(), "{again:?}");
    assert_eq!(ids(&again.recent), [1, 2, 3, 5]);
    let later = sweep.run(at("2024-05-01T10:31:00Z")).await.unwrap();
    assert_eq!(ids(&later.enqueued), [1, 2, 3, 5]);
    assert_eq!(queue.sent.lock().unwrap().len(), 8);

    // Released and past its time: no longer open.
    ledger.release_hold(OrderId(3), "failed:a1").await.unwrap();
    let plan = sweep.plan(at("2024-05-02T12:00:00Z")).await.unwrap();
    assert_eq!(ids(&plan.enqueued), [1, 2, 5]);
}

#[tokio::test]
async fn a_send_that_fails_does_not_stop_the_others_and_is_reported() {
    let (_dir, ledger) = ledger().await;
    let queue = MemQueue {
        refuse_group: Some("order-1".into()),
        ..MemQueue::default()
    };
    record(&ledger, 1, Some(OPEN_FOREVER)).await;
    record(&ledger, 2, Some(OPEN_FOREVER)).await;
    let sweep = Sweep {
        ledger: &ledger,
        queue: &queue,
        interval: Duration::from_secs(3600),
        metrics: Metrics::Off,
    };
    let err = sweep.run(at("2024-05-01T10:00:00Z")).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("1 of 2"), "{err}");
    assert_eq!(queue.sent.lock().unwrap().len(), 1);
    // Not marked: the next sweep tries it again.
    assert_eq!(swept_at(&ledger, 1).await, None);
}
