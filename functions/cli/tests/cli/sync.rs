//! `kode sync` and `kode order get --data-dir` against a local data directory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use fake_kode::{samples, AssetSpec, Endpoint, FakeKode, OrderSpec};
use serde_json::Value;

use crate::support::*;

/// Every asset of the order, at sub-order and line level.
pub fn all_assets(order: &OrderSpec) -> Vec<AssetSpec> {
    order
        .sub_orders
        .iter()
        .flat_map(|s| {
            s.assets
                .iter()
                .chain(s.lines.iter().flat_map(|l| l.assets.iter()))
        })
        .cloned()
        .collect()
}

/// The ids in a JSON array of the report, as a set.
pub fn id_set(report: &Value, field: &str) -> BTreeSet<String> {
    report[field]
        .as_array()
        .unwrap_or_else(|| panic!("{field} is not an array: {report}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

pub fn ids<'a>(assets: impl IntoIterator<Item = &'a AssetSpec>) -> BTreeSet<String> {
    assets.into_iter().map(|a| a.id.clone()).collect()
}

/// Regular files below `dir` (none if it does not exist).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .map(|e| e.unwrap().path())
        .flat_map(|p| if p.is_dir() { files_under(&p) } else { vec![p] })
        .collect()
}

/// The one file stored for an asset: `assets/orders/<order>/<asset>/<name>`.
fn stored_file(data_dir: &Path, order: u64, asset: &str) -> Option<PathBuf> {
    let files = files_under(&data_dir.join(format!("assets/orders/{order}/{asset}")));
    assert!(
        files.len() <= 1,
        "more than one file for {asset}: {files:?}"
    );
    files.into_iter().next()
}

/// The STORED cell of an asset's row in `order get` output.
pub fn stored_cell(stdout: &str, asset: &str) -> String {
    let row = stdout
        .lines()
        .find(|l| l.trim_start().starts_with(asset))
        .unwrap_or_else(|| panic!("asset {asset} missing:\n{stdout}"));
    let header = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("ASSET"))
        .unwrap();
    let at = header.find("STORED").expect("no STORED column");
    row[at..].trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_stores_files_byte_exact_and_a_second_run_downloads_nothing() {
    let fake = FakeKode::start().await;
    let order = samples::meglerpakke_order(8101);
    fake.add_order(order.clone());
    let assets = all_assets(&order);
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();

    let run = kode(&fake, &["sync", "8101", "--data-dir", data_dir, "--json"]).await;
    let report = run.assert_ok().json();
    assert_eq!(report["orderId"], 8101);
    assert_eq!(report["status"], "UPDATED");
    assert_eq!(id_set(&report, "stored"), ids(&assets));
    assert!(id_set(&report, "deleted").is_empty());
    let total: u64 = assets.iter().map(|a| a.content.len()).sum();
    assert_eq!(report["bytesStored"], total);
    for asset in &assets {
        let path = stored_file(dir.path(), 8101, &asset.id)
            .unwrap_or_else(|| panic!("{} not stored", asset.id));
        assert_eq!(
            std::fs::read(&path).unwrap(),
            asset.content.to_bytes(),
            "{}",
            path.display()
        );
        assert_eq!(fake.asset_downloads(&asset.id), 1);
    }

    let downloads = fake.requests(Endpoint::Asset);
    let run = kode(&fake, &["sync", "8101", "--data-dir", data_dir]).await;
    run.assert_ok();
    assert_eq!(
        fake.requests(Endpoint::Asset),
        downloads,
        "downloaded again"
    );
    let summary = run.stdout.lines().next().unwrap();
    assert!(
        summary.starts_with("Order 8101 synced as UPDATED against local ")
            && summary.ends_with(&format!(
                ": 0 stored (0 bytes), {} skipped, 0 deleted.",
                assets.len()
            )),
        "{}",
        run.stdout
    );
    let skipped: BTreeSet<String> = run
        .stdout
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("skipped"))
        .map(|rest| rest.trim().to_owned())
        .collect();
    assert_eq!(skipped, ids(&assets));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawn_asset_is_removed_cancel_removes_all_and_order_get_shows_where() {
    let fake = FakeKode::start().await;
    let order = samples::meglerpakke_order(8102);
    fake.add_order(order.clone());
    let assets = all_assets(&order);
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    kode(&fake, &["sync", "8102", "--data-dir", data_dir])
        .await
        .assert_ok();

    let withdrawn = &assets[1];
    fake.set_asset_status(&withdrawn.id, "DELETED");
    let late = AssetSpec::ok("late-8102", "Sent-levert.pdf", &b"%PDF-1.4 late"[..]);
    fake.add_asset(8102, order.sub_orders[0].id, None, late.clone());
    let run = kode(&fake, &["sync", "8102", "--data-dir", data_dir, "--json"]).await;
    let report = run.assert_ok().json();
    assert_eq!(id_set(&report, "deleted"), ids([withdrawn]));
    assert_eq!(id_set(&report, "stored"), ids([&late]));
    assert_eq!(stored_file(dir.path(), 8102, &withdrawn.id), None);

    // A file KODE offers that was never synced shows as "-".
    let unsynced = AssetSpec::ok("new-8102", "Ny.pdf", &b"%PDF-1.4 new"[..]);
    fake.add_asset(8102, order.sub_orders[0].id, None, unsynced.clone());
    let run = kode(&fake, &["order", "get", "8102", "--data-dir", data_dir]).await;
    run.assert_ok();
    assert_eq!(stored_cell(&run.stdout, &withdrawn.id), "deleted");
    assert_eq!(stored_cell(&run.stdout, &unsynced.id), "-");
    for asset in assets.iter().filter(|a| a.id != withdrawn.id) {
        let path = stored_file(dir.path(), 8102, &asset.id).unwrap();
        assert_eq!(
            stored_cell(&run.stdout, &asset.id),
            format!("local {}", path.display())
        );
    }
    let run = kode(&fake, &["order", "get", "8102"]).await;
    assert!(!run.assert_ok().stdout.contains("STORED"), "{}", run.stdout);

    let run = kode(
        &fake,
        &[
            "sync",
            "8102",
            "--status",
            "cancelled",
            "--data-dir",
            data_dir,
            "--json",
        ],
    )
    .await;
    let report = run.assert_ok().json();
    assert_eq!(report["purged"], true);
    let mut expected = ids(&assets);
    expected.remove(&withdrawn.id);
    expected.insert(late.id.clone());
    assert_eq!(id_set(&report, "deleted"), expected);
    let left = files_under(&dir.path().join("assets/orders/8102"));
    assert!(left.is_empty(), "files left after CANCELLED: {left:?}");
    let run = kode(&fake, &["order", "get", "8102", "--data-dir", data_dir]).await;
    run.assert_ok();
    for asset in assets.iter().chain([&late]) {
        assert_eq!(stored_cell(&run.stdout, &asset.id), "deleted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_without_a_store_or_with_half_an_aws_store_is_a_usage_error() {
    let fake = FakeKode::start().await;
    kode(&fake, &["sync", "1"])
        .await
        .assert_usage_error("--data-dir DIR, or --bucket BUCKET --table TABLE");
    kode(&fake, &["sync", "1", "--bucket", "b"])
        .await
        .assert_usage_error("--table");
    kode(&fake, &["sync", "1", "--data-dir", "d", "--table", "t"])
        .await
        .assert_usage_error("--data-dir");
    kode(&fake, &["sync", "1", "--data-dir", "d", "--status", "DONE"])
        .await
        .assert_usage_error("--status");
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    kode(
        &fake,
        &["order", "get", "1", "--data-dir", missing.to_str().unwrap()],
    )
    .await
    .assert_usage_error("--data-dir");
    assert!(!missing.exists(), "order get created the data directory");
    assert_no_requests(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_of_an_unknown_order_exits_1_with_kodes_status() {
    let fake = FakeKode::start().await;
    let dir = tempfile::tempdir().unwrap();
    let run = kode(
        &fake,
        &["sync", "404404", "--data-dir", dir.path().to_str().unwrap()],
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("404"), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}
