//! `SqliteQueue`: FIFO per group, claims, retries and dead letters.

use super::*;

const OPTIONS: QueueOptions = QueueOptions {
    max_attempts: 3,
    base_backoff: Duration::from_secs(1),
    max_backoff: Duration::from_secs(3),
};

async fn queue() -> (tempfile::TempDir, SqliteQueue) {
    let dir = tempfile::tempdir().unwrap();
    let queue = SqliteQueue::open(dir.path().join("queue.sqlite"), OPTIONS)
        .await
        .unwrap();
    (dir, queue)
}

fn msg(group: &str, body: &str) -> OutgoingMessage {
    OutgoingMessage {
        group: group.into(),
        dedup_id: uuid::Uuid::new_v4().to_string(),
        body: body.into(),
    }
}

fn t0() -> Timestamp {
    Timestamp::now()
}

fn later(at: Timestamp, secs: u64) -> Timestamp {
    add(at, Duration::from_secs(secs)).unwrap()
}

async fn claim_body(queue: &SqliteQueue, now: Timestamp) -> Option<String> {
    queue.claim_next(now).await.unwrap().map(|m| m.body)
}

#[tokio::test]
async fn messages_of_one_group_come_out_in_order_one_at_a_time() {
    let (_dir, queue) = queue().await;
    let now = t0();
    for body in ["NEW", "UPDATED", "FINISHED"] {
        queue.send(&msg("order-1", body)).await.unwrap();
    }

    let first = queue.claim_next(now).await.unwrap().unwrap();
    assert_eq!((first.body.as_str(), first.attempt), ("NEW", 1));
    assert_eq!(first.group, "order-1");
    // The head is in flight: the group waits.
    assert_eq!(claim_body(&queue, now).await, None);

    queue.complete(&first.id).await.unwrap();
    let second = queue.claim_next(now).await.unwrap().unwrap();
    assert_eq!(second.body, "UPDATED");
    queue.complete(&second.id).await.unwrap();
    assert_eq!(claim_body(&queue, now).await.as_deref(), Some("FINISHED"));
}

#[tokio::test]
async fn a_busy_group_does_not_hold_up_other_groups() {
    let (_dir, queue) = queue().await;
    let now = t0();
    queue.send(&msg("order-1", "a1")).await.unwrap();
    queue.send(&msg("order-1", "a2")).await.unwrap();
    queue.send(&msg("order-2", "b1")).await.unwrap();

    assert_eq!(claim_body(&queue, now).await.as_deref(), Some("a1"));
    assert_eq!(claim_body(&queue, now).await.as_deref(), Some("b1"));
    assert_eq!(claim_body(&queue, now).await, None);
    assert_eq!(queue.backlog().await.unwrap(), 3);
}

#[tokio::test]
async fn a_failed_message_is_retried_after_a_growing_backoff_and_blocks_its_group() {
    let (_dir, queue) = queue().await;
    let now = t0();
    queue.send(&msg("order-1", "NEW")).await.unwrap();
    queue.send(&msg("order-1", "UPDATED")).await.unwrap();
    queue.send(&msg("order-2", "other")).await.unwrap();

    let m = queue.claim_next(now).await.unwrap().unwrap();
    let outcome = queue.fail(&m.id, "KODE 503", now).await.unwrap();
    assert_eq!(
        outcome,
        FailOutcome::Retrying {
            attempt: 1,
            ready_at: later(now, 1)
        }
    );
    // Waiting for its retry, NEW still holds back UPDATED; other groups go on.
    assert_eq!(claim_body(&queue, now).await.as_deref(), Some("other"));
    assert_eq!(claim_body(&queue, now).await, None);

    let retry = queue.claim_next(later(now, 1)).await.unwrap().unwrap();
    assert_eq!((retry.id.as_str(), retry.attempt), (m.id.as_str(), 2));
    let outcome = queue
        .fail(&retry.id, "KODE 503", later(now, 1))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        FailOutcome::Retrying {
            attempt: 2,
            ready_at: later(now, 3)
        }
    );
    assert_eq!(claim_body(&queue, later(now, 2)).await, None);
    assert_eq!(
        claim_body(&queue, later(now, 3)).await.as_deref(),
        Some("NEW")
    );
}

#[test]
fn backoff_doubles_up_to_the_cap() {
    let waits: Vec<u64> = (1..=5).map(|a| backoff(&OPTIONS, a).as_secs()).collect();
    assert_eq!(waits, [1, 2, 3, 3, 3]);
    assert_eq!(
        backoff(&QueueOptions::default(), 60),
        Duration::from_secs(300)
    );
}

#[tokio::test]
async fn after_max_attempts_the_message_is_dead_lettered_and_its_group_proceeds() {
    let (_dir, queue) = queue().await;
    let mut now = t0();
    queue.send(&msg("order-1", "NEW")).await.unwrap();
    queue.send(&msg("order-1", "UPDATED")).await.unwrap();

    let mut outcome = None;
    for attempt in 1..=3 {
        let m = queue.claim_next(now).await.unwrap().unwrap();
        assert_eq!((m.body.as_str(), m.attempt), ("NEW", attempt));
        outcome = Some(
            queue
                .fail(&m.id, &format!("boom {attempt}"), now)
                .await
                .unwrap(),
        );
        now = later(now, 10);
    }

    assert_eq!(outcome, Some(FailOutcome::DeadLettered { attempts: 3 }));
    let dead = queue.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (
            dead[0].group.as_str(),
            dead[0].body.as_str(),
            dead[0].attempts
        ),
        ("order-1", "NEW", 3)
    );
    assert_eq!(dead[0].last_error, "boom 3");
    assert_eq!(claim_body(&queue, now).await.as_deref(), Some("UPDATED"));
}

#[tokio::test]
async fn retried_dead_letters_are_requeued_in_order_behind_their_group() {
    let (_dir, queue) = queue().await;
    let now = t0();
    let one = QueueOptions {
        max_attempts: 1,
        ..OPTIONS
    };
    let queue = SqliteQueue {
        options: one,
        ..queue
    };
    for body in ["A", "B"] {
        queue.send(&msg("order-1", body)).await.unwrap();
        let m = queue.claim_next(now).await.unwrap().unwrap();
        queue.fail(&m.id, "down", now).await.unwrap();
    }
    queue.send(&msg("order-1", "C")).await.unwrap();

    assert_eq!(queue.retry_dead_letters().await.unwrap(), 2);
    assert!(queue.dead_letters().await.unwrap().is_empty());

    let mut order = Vec::new();
    while let Some(m) = queue.claim_next(now).await.unwrap() {
        assert_eq!(m.attempt, 1, "{} starts with fresh attempts", m.body);
        order.push(m.body);
        queue.complete(&m.id).await.unwrap();
    }
    assert_eq!(order, ["C", "A", "B"]);
}

#[tokio::test]
async fn a_sent_message_survives_closing_and_reopening_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.sqlite");
    let id = {
        let queue = SqliteQueue::open(&path, OPTIONS).await.unwrap();
        queue.send(&msg("order-1", "NEW")).await.unwrap()
    };

    let queue = SqliteQueue::open(&path, OPTIONS).await.unwrap();
    let m = queue.claim_next(t0()).await.unwrap().unwrap();
    assert_eq!((m.id, m.body), (id, "NEW".to_owned()));
}

#[tokio::test]
async fn messages_in_flight_when_the_process_died_are_delivered_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.sqlite");
    let now = t0();
    let claimed = {
        let queue = SqliteQueue::open(&path, OPTIONS).await.unwrap();
        queue.send(&msg("order-1", "NEW")).await.unwrap();
        queue.claim_next(now).await.unwrap().unwrap()
    };

    let queue = SqliteQueue::open(&path, OPTIONS).await.unwrap();
    assert_eq!(claim_body(&queue, now).await, None);
    assert_eq!(queue.release_in_flight().await.unwrap(), 1);

    let again = queue.claim_next(now).await.unwrap().unwrap();
    assert_eq!(again.id, claimed.id);
    assert_eq!(again.attempt, 2);
}

#[tokio::test]
async fn a_message_that_keeps_killing_the_process_ends_in_the_dead_letters() {
    let (_dir, queue) = queue().await;
    let now = t0();
    queue.send(&msg("order-1", "poison")).await.unwrap();
    for _ in 0..3 {
        queue.claim_next(now).await.unwrap().unwrap();
        queue.release_in_flight().await.unwrap();
    }

    assert_eq!(claim_body(&queue, now).await, None);
    let dead = queue.dead_letters().await.unwrap();
    assert_eq!((dead.len(), dead[0].attempts), (1, 3));
}

#[tokio::test]
async fn release_puts_a_message_back_without_counting_the_attempt() {
    let (_dir, queue) = queue().await;
    let now = t0();
    queue.send(&msg("order-1", "NEW")).await.unwrap();
    let m = queue.claim_next(now).await.unwrap().unwrap();

    queue.release(&m.id).await.unwrap();

    let again = queue.claim_next(now).await.unwrap().unwrap();
    assert_eq!((again.id, again.attempt), (m.id, 1));
}

#[tokio::test]
async fn a_repeated_dedup_id_within_five_minutes_is_not_queued_twice() {
    let (_dir, queue) = queue().await;
    let now = t0();
    let m = msg("order-1", "UPDATED");

    let first = queue.send_at(&m, now).await.unwrap();
    let repeat = queue.send_at(&m, later(now, 299)).await.unwrap();
    assert_eq!(repeat, first);
    assert_eq!(queue.backlog().await.unwrap(), 1);

    // Even once the first is processed, the id is remembered for the window.
    queue.claim_next(now).await.unwrap().unwrap();
    queue.complete(&first).await.unwrap();
    assert_eq!(queue.send_at(&m, later(now, 299)).await.unwrap(), first);
    assert_eq!(queue.backlog().await.unwrap(), 0);

    let after_window = queue.send_at(&m, later(now, 301)).await.unwrap();
    assert_ne!(after_window, first);
    assert_eq!(queue.backlog().await.unwrap(), 1);
}

#[tokio::test]
async fn identical_bodies_with_different_dedup_ids_are_both_queued() {
    let (_dir, queue) = queue().await;
    queue.send(&msg("order-1", "UPDATED")).await.unwrap();
    queue.send(&msg("order-1", "UPDATED")).await.unwrap();
    assert_eq!(queue.backlog().await.unwrap(), 2);
}

#[tokio::test]
async fn two_concurrent_claimers_never_get_the_same_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.sqlite");
    let a = SqliteQueue::open(&path, OPTIONS).await.unwrap();
    // A second connection, as a second process would have.
    let b = SqliteQueue::open(&path, OPTIONS).await.unwrap();
    for i in 0..40 {
        a.send(&msg(&format!("order-{i}"), &i.to_string()))
            .await
            .unwrap();
    }
    let now = t0();
    let drain = |q: SqliteQueue| {
        tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(m) = q.claim_next(now).await.unwrap() {
                got.push(m.body);
            }
            got
        })
    };

    let (x, y) = (drain(a), drain(b));
    let mut all = x.await.unwrap();
    all.extend(y.await.unwrap());
    all.sort_by_key(|b| b.parse::<u32>().unwrap());
    let expected: Vec<String> = (0..40).map(|i: u32| i.to_string()).collect();
    assert_eq!(all, expected);
}

#[tokio::test]
async fn fail_on_a_message_not_in_flight_is_an_error() {
    let (_dir, queue) = queue().await;
    let id = queue.send(&msg("order-1", "NEW")).await.unwrap();
    assert!(queue.fail(&id, "x", t0()).await.is_err());
    assert_eq!(claim_body(&queue, t0()).await.as_deref(), Some("NEW"));
}

#[tokio::test]
async fn wait_for_work_returns_when_a_message_is_sent() {
    let (_dir, queue) = queue().await;
    let waiter = {
        let queue = queue.clone();
        tokio::spawn(async move { queue.wait_for_work(Duration::from_secs(3600)).await })
    };
    tokio::task::yield_now().await;

    queue.send(&msg("order-1", "NEW")).await.unwrap();

    // Generous bound: without the wake-up this would take an hour.
    let woke = tokio::time::timeout(Duration::from_secs(60), waiter).await;
    assert!(woke.is_ok(), "consumer was not woken by send");
}
