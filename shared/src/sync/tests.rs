//! The sync rules: which push, order and ledger lead to which plan.

use serde_json::json;

use super::*;
use crate::model::{OrderLineId, SubOrderId};

const NOW: &str = "2024-05-02T10:00:00Z";

fn push(status: &str) -> OrderPush {
    OrderPush {
        order_id: OrderId(7),
        status: PushStatus::parse(status),
        reference: Some("ref-1".into()),
        technical_reference: Some("tech-1".into()),
    }
}

fn asset(id: &str, status: &str) -> serde_json::Value {
    json!({
        "id": id,
        "filename": format!("{id}.pdf"),
        "downloadUrl": format!("https://kode.test/assets/{id}"),
        "assetStatus": status,
        "productCategory": "MAP",
    })
}

/// Sub-order 11 holds `order_level`; its line 21 holds `line_level`.
fn order(order_level: Vec<serde_json::Value>, line_level: Vec<serde_json::Value>) -> Order {
    serde_json::from_value(json!({
        "id": 7,
        "orders": [{
            "id": 11,
            "assets": order_level,
            "orderLines": [{ "id": 21, "assets": line_level }],
        }],
    }))
    .unwrap()
}

fn record(id: &str, state: AssetState) -> AssetRecord {
    AssetRecord {
        order_id: OrderId(7),
        asset_id: AssetId::from(id),
        state,
        key: (state == AssetState::Stored)
            .then(|| ObjectKey(format!("orders/7/{id}/old name.pdf"))),
        sub_order_id: Some(SubOrderId(11)),
        order_line_id: None,
        bytes: Some(3),
        sha256: None,
        content_type: None,
        name: Some(format!("{id}.pdf")),
        category: None,
        stored_at: Some("2024-05-01T00:00:00Z".into()),
        deleted_at: None,
        failure: None,
    }
}

/// The plan with the default treatment of FAILED assets.
fn plan(push: &OrderPush, order: &Order, ledger: &LedgerView, now: &str) -> Plan {
    super::plan(push, order, ledger, now, FailedPolicy::default())
}

fn failed(id: &str, attempts: u32, transient: bool) -> AssetRecord {
    AssetRecord {
        key: None,
        bytes: None,
        stored_at: None,
        failure: Some(AssetFailure {
            reason: "KODE answered 404 for the download".into(),
            attempts,
            last_attempt_at: "2024-05-01T00:00:00Z".into(),
            transient,
        }),
        ..record(id, AssetState::Failed)
    }
}

fn ledger(records: Vec<AssetRecord>) -> LedgerView {
    LedgerView {
        assets: records,
        order: None,
    }
}

fn ids<'a>(items: impl IntoIterator<Item = &'a AssetId>) -> Vec<&'a str> {
    items.into_iter().map(AssetId::as_str).collect()
}

fn download_ids(plan: &Plan) -> Vec<&str> {
    ids(plan.downloads.iter().map(|d| &d.asset_id))
}

fn skip_of(plan: &Plan, id: &str) -> Option<SkipReason> {
    plan.skipped
        .iter()
        .find(|s| s.asset_id.as_str() == id)
        .map(|s| s.reason.clone())
}

#[test]
fn new_asset_is_downloaded_to_its_key_with_metadata() {
    let plan = plan(
        &push("UPDATED"),
        &order(vec![asset("a1", "OK")], vec![]),
        &ledger(vec![]),
        NOW,
    );
    assert_eq!(download_ids(&plan), ["a1"]);
    let d = &plan.downloads[0];
    assert_eq!(d.key.as_str(), "orders/7/a1/a1.pdf");
    assert_eq!(d.url, "https://kode.test/assets/a1");
    assert_eq!(d.meta.sub_order_id, SubOrderId(11));
    assert_eq!(d.meta.order_line_id, None);
    assert_eq!(d.meta.product_category.as_deref(), Some("MAP"));
    assert_eq!(d.meta.original_name, "a1.pdf");
    assert!(plan.deletions.is_empty() && plan.tombstones.is_empty() && !plan.purge);
}

#[test]
fn known_asset_is_skipped_without_download() {
    let plan = plan(
        &push("UPDATED"),
        &order(vec![asset("a1", "OK"), asset("a2", "OK")], vec![]),
        &ledger(vec![record("a1", AssetState::Stored)]),
        NOW,
    );
    assert_eq!(download_ids(&plan), ["a2"]);
    assert_eq!(skip_of(&plan, "a1"), Some(SkipReason::AlreadyStored));
}

#[test]
fn deleted_known_asset_is_deleted_under_its_recorded_key() {
    let plan = plan(
        &push("UPDATED"),
        &order(vec![asset("a1", "DELETED")], vec![]),
        &ledger(vec![record("a1", AssetState::Stored)]),
        NOW,
    );
    assert!(plan.downloads.is_empty());
    assert_eq!(
        plan.deletions,
        [PlannedDeletion {
            asset_id: AssetId::from("a1"),
            key: ObjectKey("orders/7/a1/old name.pdf".into()),
        }]
    );
    assert!(plan.tombstones.is_empty());
}

#[test]
fn deleted_unknown_asset_is_tombstoned_not_downloaded() {
    let plan = plan(
        &push("UPDATED"),
        &order(vec![asset("a1", "DELETED")], vec![]),
        &ledger(vec![]),
        NOW,
    );
    assert!(plan.downloads.is_empty() && plan.deletions.is_empty());
    assert_eq!(ids(plan.tombstones.iter().map(|t| &t.asset_id)), ["a1"]);
    assert_eq!(plan.tombstones[0].key.as_str(), "orders/7/a1/a1.pdf");
}

#[test]
fn deleted_asset_already_marked_needs_nothing() {
    let plan = plan(
        &push("UPDATED"),
        &order(vec![asset("a1", "DELETED")], vec![]),
        &ledger(vec![record("a1", AssetState::Deleted)]),
        NOW,
    );
    assert!(plan.deletions.is_empty() && plan.tombstones.is_empty());
    assert_eq!(skip_of(&plan, "a1"), Some(SkipReason::AlreadyDeleted));
}

#[test]
fn ok_asset_deleted_earlier_is_not_resurrected() {
    let plan = plan(
        &push("UPDATED"),
        &order(vec![asset("a1", "OK")], vec![]),
        &ledger(vec![record("a1", AssetState::Deleted)]),
        NOW,
    );
    assert!(plan.downloads.is_empty());
    assert_eq!(skip_of(&plan, "a1"), Some(SkipReason::DeletedEarlier));
    assert_eq!(ids(&plan.ok_not_stored), ["a1"]);
}

fn assert_purges_everything(status: &str) {
    let mut stale = record("gone", AssetState::Stored);
    stale.key = Some(ObjectKey("orders/7/gone/x.pdf".into()));
    let plan = plan(
        &push(status),
        &order(
            vec![asset("a1", "OK"), asset("a2", "OK"), asset("a3", "DELETED")],
            vec![asset("a4", "OK")],
        ),
        &ledger(vec![
            record("a1", AssetState::Stored),
            record("a3", AssetState::Deleted),
            stale,
        ]),
        NOW,
    );
    assert!(plan.purge, "{status}");
    assert!(plan.downloads.is_empty(), "{status} stores nothing new");
    // Every stored file, also one the API no longer lists.
    assert_eq!(
        ids(plan.deletions.iter().map(|d| &d.asset_id)),
        ["a1", "gone"]
    );
    assert_eq!(plan.deletions[1].key.as_str(), "orders/7/gone/x.pdf");
    // Never-stored assets are marked so they cannot be stored later.
    assert_eq!(
        ids(plan.tombstones.iter().map(|d| &d.asset_id)),
        ["a2", "a4"]
    );
    assert_eq!(plan.order_update.purged_at.as_deref(), Some(NOW));
    assert_eq!(plan.order_update.last_status.as_deref(), Some(status));
}

#[test]
fn cancelled_purges_every_file_and_stores_nothing() {
    assert_purges_everything("CANCELLED");
}

#[test]
fn refunded_purges_every_file_and_stores_nothing() {
    assert_purges_everything("REFUNDED");
}

#[test]
fn push_after_purge_stores_nothing() {
    let mut view = ledger(vec![record("a1", AssetState::Deleted)]);
    view.order = Some(OrderRecord {
        purged_at: Some("2024-05-01T00:00:00Z".into()),
        ..OrderRecord::default()
    });
    let plan = plan(
        &push("UPDATED"),
        &order(vec![asset("a1", "OK"), asset("late", "OK")], vec![]),
        &view,
        NOW,
    );
    assert!(plan.purge);
    assert!(plan.downloads.is_empty());
    assert!(plan.deletions.is_empty());
    assert_eq!(ids(plan.tombstones.iter().map(|d| &d.asset_id)), ["late"]);
}

#[test]
fn purge_without_the_order_deletes_what_the_ledger_knows() {
    let plan = plan_purge_from_ledger(
        &push("CANCELLED"),
        &ledger(vec![
            record("a1", AssetState::Stored),
            record("a2", AssetState::Deleted),
        ]),
        NOW,
    );
    assert!(plan.purge);
    assert_eq!(ids(plan.deletions.iter().map(|d| &d.asset_id)), ["a1"]);
    assert!(plan.downloads.is_empty() && plan.tombstones.is_empty());
}

#[test]
fn finished_with_every_file_stored_reports_complete() {
    let plan = plan(
        &push("FINISHED"),
        &order(vec![asset("a1", "OK"), asset("a2", "OK")], vec![]),
        &ledger(vec![record("a1", AssetState::Stored)]),
        NOW,
    );
    assert!(plan.reports_completeness());
    assert_eq!(plan.order_update.finished_at.as_deref(), Some(NOW));
    // Still syncs: the missing file is fetched.
    assert_eq!(download_ids(&plan), ["a2"]);
    assert!(plan.ok_not_stored.is_empty());
}

#[test]
fn finished_with_a_file_that_cannot_be_stored_names_it() {
    let plan = plan(
        &push("FINISHED"),
        &order(vec![asset("a1", "OK"), asset("a2", "OK")], vec![]),
        &ledger(vec![record("a1", AssetState::Deleted)]),
        NOW,
    );
    assert!(plan.reports_completeness());
    assert_eq!(ids(&plan.ok_not_stored), ["a1"]);
    assert_eq!(download_ids(&plan), ["a2"]);
}

#[test]
fn new_records_the_references_and_syncs() {
    let plan = plan(
        &push("NEW"),
        &order(vec![asset("a1", "OK")], vec![]),
        &ledger(vec![]),
        NOW,
    );
    let update = &plan.order_update;
    assert_eq!(update.order_id, Some(OrderId(7)));
    assert_eq!(update.last_status.as_deref(), Some("NEW"));
    assert_eq!(update.reference.as_deref(), Some("ref-1"));
    assert_eq!(update.technical_reference.as_deref(), Some("tech-1"));
    assert_eq!(update.finished_at, None);
    assert_eq!(update.purged_at, None);
    assert_eq!(download_ids(&plan), ["a1"]);
    assert!(!plan.reports_completeness());
}

#[test]
fn unknown_push_status_syncs_like_updated() {
    let plan = plan(
        &push("REOPENED"),
        &order(vec![asset("a1", "OK"), asset("a2", "DELETED")], vec![]),
        &ledger(vec![record("a2", AssetState::Stored)]),
        NOW,
    );
    assert!(!plan.purge);
    assert_eq!(download_ids(&plan), ["a1"]);
    assert_eq!(ids(plan.deletions.iter().map(|d| &d.asset_id)), ["a2"]);
    assert_eq!(plan.order_update.last_status.as_deref(), Some("REOPENED"));
}

#[test]
fn unknown_asset_status_is_neither_stored_nor_deleted() {
    let plan = plan(
        &push("UPDATED"),
        &order(vec![asset("a1", "PENDING"), asset("a2", "PENDING")], vec![]),
        &ledger(vec![record("a2", AssetState::Stored)]),
        NOW,
    );
    assert!(plan.downloads.is_empty() && plan.deletions.is_empty() && plan.tombstones.is_empty());
    assert_eq!(
        skip_of(&plan, "a1"),
        Some(SkipReason::UnknownStatus("PENDING".into()))
    );
}

#[test]
fn assets_at_order_and_line_level_are_both_synced() {
    let plan = plan(
        &push("UPDATED"),
        &order(vec![asset("top", "OK")], vec![asset("line", "OK")]),
        &ledger(vec![]),
        NOW,
    );
    assert_eq!(download_ids(&plan), ["top", "line"]);
    assert_eq!(plan.downloads[0].meta.order_line_id, None);
    assert_eq!(plan.downloads[1].meta.order_line_id, Some(OrderLineId(21)));
    assert_eq!(plan.downloads[1].meta.sub_order_id, SubOrderId(11));
}

#[test]
fn an_asset_listed_twice_is_downloaded_once() {
    let plan = plan(
        &push("UPDATED"),
        &order(vec![asset("a1", "OK")], vec![asset("a1", "OK")]),
        &ledger(vec![]),
        NOW,
    );
    assert_eq!(download_ids(&plan), ["a1"]);
    assert_eq!(
        plan.downloads[0].meta.order_line_id, None,
        "first listing wins"
    );
    assert_eq!(ids(&plan.duplicates), ["a1"]);
}

#[test]
fn an_asset_listed_ok_and_deleted_is_deleted() {
    let plan = plan(
        &push("UPDATED"),
        &order(vec![asset("a1", "OK")], vec![asset("a1", "DELETED")]),
        &ledger(vec![record("a1", AssetState::Stored)]),
        NOW,
    );
    assert!(plan.downloads.is_empty());
    assert_eq!(ids(plan.deletions.iter().map(|d| &d.asset_id)), ["a1"]);
}

#[test]
fn record_of_a_download_carries_what_was_stored() {
    let plan = plan(
        &push("UPDATED"),
        &order(vec![], vec![asset("a1", "OK")]),
        &ledger(vec![]),
        NOW,
    );
    let r = plan.downloads[0].record(42, "ab".into(), NOW);
    assert_eq!(r.state, AssetState::Stored);
    assert_eq!(
        r.key.as_ref().map(ObjectKey::as_str),
        Some("orders/7/a1/a1.pdf")
    );
    assert_eq!((r.bytes, r.sha256.as_deref()), (Some(42), Some("ab")));
    assert_eq!(r.order_line_id, Some(OrderLineId(21)));
    assert_eq!(r.stored_at.as_deref(), Some(NOW));
}

#[test]
fn failed_asset_is_tried_again_until_parked() {
    let order = order(vec![asset("a1", "OK"), asset("a2", "OK")], vec![]);
    let plan = plan(
        &push("UPDATED"),
        &order,
        &ledger(vec![failed("a1", 9, false), failed("a2", 10, false)]),
        NOW,
    );
    assert_eq!(download_ids(&plan), ["a1"]);
    assert!(matches!(
        skip_of(&plan, "a2"),
        Some(SkipReason::Parked(f)) if f.attempts == 10
    ));
    assert_eq!(ids(&plan.ok_not_stored), ["a2"]);
}

#[test]
fn transiently_failed_asset_is_never_parked() {
    let plan = plan(
        &push("UPDATED"),
        &order(vec![asset("a1", "OK")], vec![]),
        &ledger(vec![failed("a1", 50, true)]),
        NOW,
    );
    assert_eq!(download_ids(&plan), ["a1"]);
}

#[test]
fn retry_parked_downloads_parked_assets_and_the_limit_is_configurable() {
    let order = order(vec![asset("a1", "OK")], vec![]);
    let view = ledger(vec![failed("a1", 3, false)]);
    let strict = FailedPolicy {
        max_attempts: 3,
        retry_parked: false,
    };
    let strict_plan = super::plan(&push("UPDATED"), &order, &view, NOW, strict);
    assert!(strict_plan.downloads.is_empty());
    let retry = FailedPolicy {
        retry_parked: true,
        ..strict
    };
    let retry_plan = super::plan(&push("UPDATED"), &order, &view, NOW, retry);
    assert_eq!(download_ids(&retry_plan), ["a1"]);
}

#[test]
fn failed_asset_deleted_in_kode_is_tombstoned() {
    let plan = plan(
        &push("UPDATED"),
        &order(vec![asset("a1", "DELETED")], vec![]),
        &ledger(vec![failed("a1", 10, false)]),
        NOW,
    );
    assert!(plan.downloads.is_empty() && plan.deletions.is_empty());
    assert_eq!(ids(plan.tombstones.iter().map(|d| &d.asset_id)), ["a1"]);
}

#[test]
fn purge_tombstones_failed_assets_with_or_without_the_order() {
    let view = ledger(vec![
        failed("a1", 1, false),
        record("a2", AssetState::Stored),
    ]);
    let with_order = plan(
        &push("CANCELLED"),
        &order(vec![asset("a1", "OK"), asset("a2", "OK")], vec![]),
        &view,
        NOW,
    );
    let from_ledger = plan_purge_from_ledger(&push("CANCELLED"), &view, NOW);
    for plan in [with_order, from_ledger] {
        assert!(plan.downloads.is_empty());
        assert_eq!(ids(plan.deletions.iter().map(|d| &d.asset_id)), ["a2"]);
        assert_eq!(ids(plan.tombstones.iter().map(|d| &d.asset_id)), ["a1"]);
    }
}
