//! What a push means, decided without I/O: given the push, the order as the
//! API shows it now and what the ledger already holds, which files to
//! download, which to delete and what to record ("Processing an order push"
//! in `docs/DESIGN.md`). Executing the plan is `crate::process`.

use std::collections::HashMap;

use crate::model::{
    Asset, AssetId, AssetLocation, AssetStatus, Order, OrderId, OrderPush, PushStatus,
};
use crate::model::{AssetFailure, AssetRecord, AssetState, ObjectKey, ObjectMeta, OrderRecord};
use crate::names::object_key;

mod failed;
mod sweep;
#[cfg(test)]
mod tests;

pub use failed::{FailedPolicy, DEFAULT_FAILED_MAX_ATTEMPTS};
pub use sweep::{
    parse_duration, SweepPolicy, DEFAULT_FINISHED_DAYS, DEFAULT_INTERVAL, DEFAULT_MAX_MISSES,
};

/// What the ledger holds for one order before the sync.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LedgerView {
    pub assets: Vec<AssetRecord>,
    pub order: Option<OrderRecord>,
}

impl LedgerView {
    /// Once purged, an order never stores anything again.
    pub fn is_purged(&self) -> bool {
        self.order.as_ref().is_some_and(|o| o.purged_at.is_some())
    }
}

/// Whether this push removes every file of the order: a CANCELLED or
/// REFUNDED push, or any push for an order purged before.
pub fn purges(push: &OrderPush, ledger: &LedgerView) -> bool {
    push.status.purges_files() || ledger.is_purged()
}

/// The work one push implies.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub order_id: OrderId,
    pub status: PushStatus,
    /// Every file of the order goes; nothing is stored.
    pub purge: bool,
    pub downloads: Vec<PlannedDownload>,
    /// Stored files to delete, then mark deleted.
    pub deletions: Vec<PlannedDeletion>,
    /// Assets never recorded that must never be stored: mark them deleted.
    /// The key is deleted too, in case an earlier run uploaded the file and
    /// stopped before recording it.
    pub tombstones: Vec<PlannedDeletion>,
    pub skipped: Vec<Skipped>,
    /// Asset ids the order lists more than once (each is handled once).
    pub duplicates: Vec<AssetId>,
    /// `OK` assets this sync will not store (marked deleted earlier, or
    /// parked after failing too often).
    pub ok_not_stored: Vec<AssetId>,
    pub order_update: OrderRecord,
}

impl Plan {
    /// A FINISHED push asks for a report on whether every file arrived.
    pub fn reports_completeness(&self) -> bool {
        self.status == PushStatus::Finished && !self.purge
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlannedDownload {
    pub asset_id: AssetId,
    pub url: String,
    pub key: ObjectKey,
    /// `content_type` is filled in once the download has started.
    pub meta: ObjectMeta,
}

impl PlannedDownload {
    /// The ledger entry for this file once `bytes` with digest `sha256` are
    /// stored.
    pub fn record(&self, bytes: u64, sha256: String, now: &str) -> AssetRecord {
        AssetRecord {
            order_id: self.meta.order_id,
            asset_id: self.asset_id.clone(),
            state: AssetState::Stored,
            key: Some(self.key.clone()),
            sub_order_id: Some(self.meta.sub_order_id),
            order_line_id: self.meta.order_line_id,
            bytes: Some(bytes),
            sha256: Some(sha256),
            content_type: self.meta.content_type.clone(),
            name: Some(self.meta.original_name.clone()),
            category: self.meta.product_category.clone(),
            stored_at: Some(now.to_owned()),
            deleted_at: None,
            failure: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedDeletion {
    pub asset_id: AssetId,
    pub key: ObjectKey,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub asset_id: AssetId,
    pub reason: SkipReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    AlreadyStored,
    AlreadyDeleted,
    /// `OK` in the API but marked deleted in the ledger: a deleted file
    /// never comes back.
    DeletedEarlier,
    /// An asset status this version does not know: neither stored nor
    /// deleted until KODE says `OK` or `DELETED`.
    UnknownStatus(String),
    /// FAILED too often for good: not tried again by itself.
    Parked(AssetFailure),
}

/// Plans a push with the order as the API returned it; `failed` decides
/// which FAILED assets are tried again.
pub fn plan(
    push: &OrderPush,
    order: &Order,
    ledger: &LedgerView,
    now: &str,
    failed: FailedPolicy,
) -> Plan {
    plan_with(push, Some(order), ledger, now, failed)
}

/// Plans a purge when the API could not be asked (a cancelled order may be
/// gone from it): every file the ledger knows is deleted.
pub fn plan_purge_from_ledger(push: &OrderPush, ledger: &LedgerView, now: &str) -> Plan {
    plan_with(push, None, ledger, now, FailedPolicy::default())
}

/// The order record that marks the order purged. Written before the ledger
/// is read for a purging push: a concurrent run's `record_stored` is then
/// either refused or visible to the purge.
pub fn purge_mark(push: &OrderPush, now: &str) -> OrderRecord {
    order_update(push, true, now)
}

fn plan_with(
    push: &OrderPush,
    order: Option<&Order>,
    ledger: &LedgerView,
    now: &str,
    failed: FailedPolicy,
) -> Plan {
    let purge = purges(push, ledger);
    let (assets, duplicates) = order.map(unique_assets).unwrap_or_default();
    let known: HashMap<&AssetId, &AssetRecord> =
        ledger.assets.iter().map(|r| (&r.asset_id, r)).collect();

    let mut plan = Plan {
        order_id: push.order_id,
        status: push.status.clone(),
        purge,
        downloads: Vec::new(),
        deletions: Vec::new(),
        tombstones: Vec::new(),
        skipped: Vec::new(),
        duplicates,
        ok_not_stored: Vec::new(),
        order_update: order_update(push, purge, now),
    };

    if purge {
        for record in &ledger.assets {
            let deletion = || PlannedDeletion {
                asset_id: record.asset_id.clone(),
                key: stored_key(
                    record,
                    assets.iter().find(|u| u.asset.id == record.asset_id),
                ),
            };
            match record.state {
                AssetState::Stored => plan.deletions.push(deletion()),
                AssetState::Failed => plan.tombstones.push(deletion()),
                AssetState::Deleted => {}
            }
        }
    }

    for listed in &assets {
        let id = &listed.asset.id;
        let record = known.get(id).copied();
        let skip = |reason| Skipped {
            asset_id: id.clone(),
            reason,
        };
        match (record, &listed.status) {
            // Stored and failed assets are already among the deletions and
            // tombstones, from the ledger.
            (Some(r), _) if purge => {
                if r.state == AssetState::Deleted {
                    plan.skipped.push(skip(SkipReason::AlreadyDeleted));
                }
            }
            (None, _) if purge => plan.tombstones.push(listed.deletion(push.order_id)),
            (_, AssetStatus::Unknown(raw)) => plan
                .skipped
                .push(skip(SkipReason::UnknownStatus(raw.clone()))),
            (Some(r), AssetStatus::Ok) => match r.state {
                AssetState::Stored => plan.skipped.push(skip(SkipReason::AlreadyStored)),
                AssetState::Deleted => {
                    plan.ok_not_stored.push(id.clone());
                    plan.skipped.push(skip(SkipReason::DeletedEarlier));
                }
                AssetState::Failed => match &r.failure {
                    Some(f) if !failed.retries(f) => {
                        plan.ok_not_stored.push(id.clone());
                        plan.skipped.push(skip(SkipReason::Parked(f.clone())));
                    }
                    _ => plan.downloads.push(listed.download(push.order_id)),
                },
            },
            (Some(r), AssetStatus::Deleted) => match r.state {
                AssetState::Stored => plan.deletions.push(PlannedDeletion {
                    asset_id: id.clone(),
                    key: stored_key(r, Some(listed)),
                }),
                AssetState::Deleted => plan.skipped.push(skip(SkipReason::AlreadyDeleted)),
                // Never stored, but an earlier attempt may have left the file
                // under the key before failing to record it.
                AssetState::Failed => plan.tombstones.push(listed.deletion(push.order_id)),
            },
            (None, AssetStatus::Ok) => plan.downloads.push(listed.download(push.order_id)),
            (None, AssetStatus::Deleted) => plan.tombstones.push(listed.deletion(push.order_id)),
        }
    }
    plan
}

fn order_update(push: &OrderPush, purge: bool, now: &str) -> OrderRecord {
    OrderRecord {
        order_id: Some(push.order_id),
        last_status: Some(push.status.as_str().to_owned()),
        reference: push.reference.clone(),
        technical_reference: push.technical_reference.clone(),
        finished_at: (push.status == PushStatus::Finished).then(|| now.to_owned()),
        // The ledger keeps the first purge time; a later push re-sends it
        // harmlessly.
        purged_at: purge.then(|| now.to_owned()),
        updated_at: Some(now.to_owned()),
        ..OrderRecord::default()
    }
}

/// An asset as listed in the order, once per id.
struct Listed<'a> {
    asset: &'a Asset,
    location: AssetLocation,
    status: AssetStatus,
}

impl Listed<'_> {
    fn key(&self, order: OrderId) -> ObjectKey {
        object_key(order, &self.asset.id, self.asset.display_name())
    }

    fn deletion(&self, order: OrderId) -> PlannedDeletion {
        PlannedDeletion {
            asset_id: self.asset.id.clone(),
            key: self.key(order),
        }
    }

    fn download(&self, order: OrderId) -> PlannedDownload {
        PlannedDownload {
            asset_id: self.asset.id.clone(),
            url: self.asset.download_url.clone(),
            key: self.key(order),
            meta: ObjectMeta {
                order_id: order,
                sub_order_id: self.location.sub_order,
                order_line_id: self.location.order_line,
                asset_id: self.asset.id.clone(),
                product_category: self.asset.product_category.clone(),
                original_name: self.asset.display_name().to_owned(),
                content_type: None,
            },
        }
    }
}

/// Every asset once, in document order, with the ids listed more than once.
/// The first listing gives name, URL and place; if any listing says
/// `DELETED` the asset is deleted, since withdrawing a file is the
/// direction that must not be missed.
fn unique_assets(order: &Order) -> (Vec<Listed<'_>>, Vec<AssetId>) {
    let mut listed: Vec<Listed<'_>> = Vec::new();
    let mut index: HashMap<&AssetId, usize> = HashMap::new();
    let mut duplicates = Vec::new();
    for (location, asset) in order.assets() {
        match index.get(&asset.id) {
            Some(&i) => {
                if !duplicates.contains(&asset.id) {
                    duplicates.push(asset.id.clone());
                }
                let first = &mut listed[i];
                if asset.asset_status == AssetStatus::Deleted
                    || matches!(first.status, AssetStatus::Unknown(_))
                {
                    first.status = asset.asset_status.clone();
                }
            }
            None => {
                index.insert(&asset.id, listed.len());
                listed.push(Listed {
                    asset,
                    location,
                    status: asset.asset_status.clone(),
                });
            }
        }
    }
    (listed, duplicates)
}

/// The key a stored file was written under: the ledger's, which stays right
/// even if KODE renames the file later.
fn stored_key(record: &AssetRecord, listed: Option<&Listed<'_>>) -> ObjectKey {
    match (&record.key, listed) {
        (Some(key), _) => key.clone(),
        (None, Some(listed)) => listed.key(record.order_id),
        (None, None) => object_key(
            record.order_id,
            &record.asset_id,
            record.name.as_deref().unwrap_or(""),
        ),
    }
}
