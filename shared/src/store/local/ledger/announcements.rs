//! The `announcements` table: events still to announce, each written in
//! the same transaction as the change it reports.

use rusqlite::{params, Connection};

use crate::events::{Event, EventScope};
use crate::store::local::sql_error;
use crate::store::StoreError;

fn scope_key(scope: EventScope) -> String {
    match scope {
        EventScope::Order(order) => format!("order:{order}"),
        EventScope::Distributor => "distributor".to_owned(),
    }
}

/// Remembers `event` unless its id is already there; returns whether it
/// was added.
pub(super) fn insert(conn: &Connection, event: Option<&Event>) -> Result<bool, StoreError> {
    let Some(event) = event else {
        return Ok(false);
    };
    let mut data = event.data_json();
    if let Some(fields) = data.as_object_mut() {
        // The id has its own column.
        fields.remove("eventId");
    }
    let added = conn
        .execute(
            "INSERT INTO announcements (event_id, scope, event_type, timestamp, data) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (event_id) DO NOTHING",
            params![
                event.id.as_str(),
                scope_key(event.scope()),
                event.event_type().name(),
                event.timestamp,
                data.to_string(),
            ],
        )
        .map_err(sql_error)?;
    Ok(added == 1)
}

/// Oldest first: in the order the changes were recorded.
pub(super) fn pending(conn: &Connection, scope: EventScope) -> Result<Vec<Event>, StoreError> {
    let mut stmt = conn
        .prepare(
            "SELECT event_id, event_type, timestamp, data FROM announcements \
             WHERE scope = ?1 AND sent_at IS NULL ORDER BY rowid",
        )
        .map_err(sql_error)?;
    let rows = stmt
        .query_map([scope_key(scope)], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
            ))
        })
        .map_err(sql_error)?;
    let mut events = Vec::new();
    for row in rows {
        let (id, event_type, timestamp, data) = row.map_err(sql_error)?;
        let event = Event::from_parts(&id, &event_type, &timestamp, &data)
            .map_err(|e| StoreError::Permanent(format!("announcement {id} cannot be read: {e}")))?;
        events.push(event);
    }
    Ok(events)
}

/// Once-per-order events stay, marked sent, as the record that they were
/// said; the others go.
pub(super) fn sent(conn: &Connection, event: &Event, at: &str) -> Result<(), StoreError> {
    if event.event_type().once_per_order() {
        conn.execute(
            "UPDATE announcements SET sent_at = ?2 WHERE event_id = ?1",
            params![event.id.as_str(), at],
        )
    } else {
        conn.execute(
            "DELETE FROM announcements WHERE event_id = ?1",
            [event.id.as_str()],
        )
    }
    .map_err(sql_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::events::{self, Event, EventScope};
    use crate::model::{AssetId, OrderId};
    use crate::model::{AssetRecord, AssetState, ObjectKey};
    use crate::store::local::SqliteLedger;
    use crate::store::{Ledger, RecordOutcome};

    const AT: &str = "2025-03-01T10:00:00Z";

    fn stored(asset: &str) -> AssetRecord {
        AssetRecord {
            order_id: OrderId(1),
            asset_id: AssetId::from(asset),
            state: AssetState::Stored,
            key: Some(ObjectKey(format!("orders/1/{asset}/Kart.pdf"))),
            sub_order_id: None,
            order_line_id: None,
            bytes: Some(3),
            sha256: Some("ab".repeat(32)),
            content_type: None,
            name: Some("Kart.pdf".into()),
            category: None,
            stored_at: Some(AT.into()),
            deleted_at: None,
            failure: None,
        }
    }

    fn ids(events: &[Event]) -> Vec<&str> {
        events.iter().map(|e| e.id.as_str()).collect()
    }

    #[tokio::test]
    async fn an_announcement_is_kept_with_its_change_and_only_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = SqliteLedger::open(dir.path().join("ledger.sqlite"))
            .await
            .unwrap();
        let scope = EventScope::Order(OrderId(1));
        let record = stored("a1");
        let event = events::asset_stored(&record, None, None, AT).unwrap();

        let first = ledger.record_stored_announcing(&record, Some(&event)).await;
        assert_eq!(first.unwrap(), RecordOutcome::Recorded);
        let replay = ledger.record_stored_announcing(&record, Some(&event)).await;
        assert_eq!(replay.unwrap(), RecordOutcome::AlreadyRecorded);
        let pending = ledger.pending_announcements(scope).await.unwrap();
        assert_eq!(
            pending,
            std::slice::from_ref(&event),
            "read back whole, once"
        );

        // Deleting a stored asset remembers its event; a tombstone does not.
        let key = record.key.clone().unwrap();
        let deleted = events::asset_deleted(OrderId(1), &record.asset_id, &key, AT);
        ledger
            .mark_deleted_announcing(OrderId(1), &record.asset_id, AT, Some(&deleted))
            .await
            .unwrap();
        let never = AssetId::from("never");
        let tombstone = events::asset_deleted(OrderId(1), &never, &key, AT);
        ledger
            .mark_deleted_announcing(OrderId(1), &never, AT, Some(&tombstone))
            .await
            .unwrap();
        let pending = ledger.pending_announcements(scope).await.unwrap();
        assert_eq!(ids(&pending), ["1:a1:stored", "1:a1:deleted"]);

        for event in &pending {
            ledger.announcement_sent(event, AT).await.unwrap();
        }
        assert!(ledger
            .pending_announcements(scope)
            .await
            .unwrap()
            .is_empty());
        assert!(ledger
            .pending_announcements(EventScope::Distributor)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn an_order_event_is_remembered_once_even_after_it_was_sent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.sqlite");
        let ledger = SqliteLedger::open(&path).await.unwrap();
        let completed = events::order_completed(OrderId(1), None, &[], AT);

        let first = ledger.record_announcement(&completed).await.unwrap();
        assert_eq!(first, RecordOutcome::Recorded);
        ledger.announcement_sent(&completed, AT).await.unwrap();
        drop(ledger);

        let reopened = SqliteLedger::open(&path).await.unwrap();
        let again = reopened.record_announcement(&completed).await.unwrap();
        assert_eq!(again, RecordOutcome::AlreadyRecorded);
        let pending = reopened.pending_announcements(EventScope::Order(OrderId(1)));
        assert!(pending.await.unwrap().is_empty());
    }
}
