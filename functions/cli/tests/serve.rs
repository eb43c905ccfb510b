//! `kode serve`, `kode demo` and `kode dead-letters`, driven as a user would:
//! the built binary, a fake KODE on loopback, HTTP pushes, files on disk.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use fake_kode::{samples, AssetSpec, Endpoint, FakeKode, OrderSpec, Recorder};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_leaves_the_sample_files_byte_exact_and_writes_nowhere_else() {
    let cwd = tempfile::tempdir().unwrap();
    let out = run_kode(&["demo", "--data-dir", "demo-data"], cwd.path());
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("Summary"), "{stdout}");

    let data = cwd.path().join("demo-data");
    let orders: Vec<_> = std::fs::read_dir(data.join("assets/orders"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(orders.len(), 1, "{orders:?}");
    let order_id: u64 = orders[0].parse().unwrap();
    let order = samples::meglerpakke_order(order_id);
    // The demo withdraws the second file at sub-order level.
    let withdrawn = order.sub_orders[0].assets[1].clone();
    let assets = assets_of(&order);
    assert!(assets.len() >= 4, "the sample has files at both levels");
    for asset in &assets {
        if asset.id == withdrawn.id {
            assert!(
                files_of(&data, order_id, &asset.id).is_empty(),
                "withdrawn file still there"
            );
        } else {
            assert_stored(&data, order_id, asset);
        }
    }
    assert!(
        stdout.contains(&format!("files stored     {}", assets.len())),
        "{stdout}"
    );
    assert!(stdout.contains("files deleted    1"), "{stdout}");
    // The events `kode serve --notify-url` would send, each once.
    assert_eq!(
        stdout.matches("event asset.stored").count(),
        assets.len(),
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("event order.completed").count(),
        1,
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "event asset.deleted   {order_id}:{}:deleted",
            withdrawn.id
        )),
        "{stdout}"
    );

    let mut top: Vec<_> = std::fs::read_dir(cwd.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    top.sort();
    assert_eq!(top, ["demo-data"], "the demo wrote outside its data dir");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pushes_get_the_webhook_errors_and_nothing_is_queued() {
    let fake = FakeKode::start().await;
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(data.path(), &fake, &[]);
    let http = reqwest::Client::new();
    let push = serde_json::json!({ "orderCollectionId": 4242, "status": "UPDATED" }).to_string();

    let health = http.get(serve.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    let get = http.get(serve.push_url()).send().await.unwrap();
    assert_eq!(get.status(), 405);
    assert_eq!(get.headers()["allow"], "POST");

    let cases: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
        (
            "no secret",
            http.post(serve.url("/push")).body(push.clone()),
            401,
        ),
        (
            "wrong secret",
            http.post(serve.url("/push?token=guess")).body(push.clone()),
            401,
        ),
        (
            "wrong bearer",
            http.post(serve.url("/push"))
                .bearer_auth("guess")
                .body(push.clone()),
            401,
        ),
        (
            "not JSON",
            http.post(serve.push_url()).body("status=NEW"),
            400,
        ),
        (
            "no order id",
            http.post(serve.push_url()).body(r#"{"status":"NEW"}"#),
            400,
        ),
        (
            "order id not a number",
            http.post(serve.push_url())
                .body(r#"{"orderCollectionId":"12a","status":"NEW"}"#),
            400,
        ),
        (
            "one byte over 64 KiB",
            http.post(serve.push_url()).body(vec![b' '; 64 * 1024 + 1]),
            413,
        ),
    ];
    for (what, request, expected) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), expected, "{what}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}: {body}"
        );
    }

    assert_eq!(backlog(data.path()).await, 0, "a rejected push was queued");
    assert_eq!(fake.requests(Endpoint::GetOrder), 0);

    // The same listener takes a good push: the rejections were about the pushes.
    let ok = http
        .post(serve.url("/push"))
        .bearer_auth(PUSH_TOKEN)
        .body(push)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_pushes_download_nothing_twice() {
    let fake = FakeKode::start().await;
    let order = samples::meglerpakke_order(7001);
    fake.add_order(order.clone());
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(data.path(), &fake, &[]);

    for status in ["NEW", "UPDATED", "UPDATED", "FINISHED"] {
        let (code, body) = fake
            .push(&serve.push_url(), &order_push(&order, status))
            .await
            .unwrap();
        assert_eq!(code, 200, "{body}");
    }
    drained(data.path()).await;

    assert_eq!(
        fake.requests(Endpoint::GetOrder),
        4,
        "every push was processed"
    );
    for asset in assets_of(&order) {
        assert_stored(data.path(), order.id, &asset);
        assert_eq!(fake.asset_downloads(&asset.id), 1, "{}", asset.filename);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_acknowledged_before_kill_9_is_processed_after_restart() {
    let fake = FakeKode::start().await;
    let order = samples::meglerpakke_order(7002);
    fake.add_order(order.clone());
    let assets = assets_of(&order);
    let data = tempfile::tempdir().unwrap();
    // KODE is down, so the push cannot be processed before the kill.
    fake.set_down(true);
    let serve = Serve::start(data.path(), &fake, &["--retry-backoff-ms", "100"]);
    let (code, body) = fake
        .push(&serve.push_url(), &order_push(&order, "NEW"))
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    serve.kill();
    assert!(!all_stored(data.path(), order.id, &assets));

    fake.set_down(false);
    let serve = Serve::start(data.path(), &fake, &["--retry-backoff-ms", "100"]);
    eventually("the files after the restart", || async {
        all_stored(data.path(), order.id, &assets).then_some(())
    })
    .await;
    drained(data.path()).await;
    for asset in &assets {
        assert_stored(data.path(), order.id, asset);
    }
    drop(serve);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kode_outage_ends_in_dead_letters_and_retry_completes_it() {
    let fake = FakeKode::start().await;
    let order = samples::meglerpakke_order(7003);
    fake.add_order(order.clone());
    let assets = assets_of(&order);
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap().to_owned();
    fake.set_down(true);
    let serve = Serve::start(
        data.path(),
        &fake,
        &["--max-attempts", "2", "--retry-backoff-ms", "100"],
    );
    let (code, _) = fake
        .push(&serve.push_url(), &order_push(&order, "UPDATED"))
        .await
        .unwrap();
    assert_eq!(code, 200);

    let listing = eventually("the push in the dead-letter table", || async {
        let out = run_kode(&["dead-letters", "--data-dir", &dir], data.path());
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        stdout.contains("1 dead letter(s)").then_some(stdout)
    })
    .await;
    assert!(listing.contains("order 7003 UPDATED"), "{listing}");
    assert!(listing.contains("attempts 2"), "{listing}");
    assert!(
        serve.log().contains("\"action\":\"message_retry\""),
        "{}",
        serve.log()
    );
    assert!(!all_stored(data.path(), order.id, &assets));

    fake.set_down(false);
    let out = run_kode(&["dead-letters", "retry", "--data-dir", &dir], data.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("1 dead letter(s) queued again"));

    // The running serve (another process) picks the requeued push up.
    eventually("the files after the retry", || async {
        all_stored(data.path(), order.id, &assets).then_some(())
    })
    .await;
    for asset in &assets {
        assert_stored(data.path(), order.id, asset);
    }
    let out = run_kode(&["dead-letters", "--data-dir", &dir], data.path());
    assert!(
        text(&out.stdout).contains("no dead letters"),
        "{}",
        text(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_puts_unfinished_work_back_and_exits_0() {
    let fake = FakeKode::start().await;
    let mut order = fake_kode::OrderSpec::new(7004);
    let asset = AssetSpec::ok("slow-asset-1", "Situasjonskart.pdf", vec![7u8; 20_000]);
    order.sub_orders[0].assets.push(asset.clone());
    fake.add_order(order.clone());
    // Far longer than the shutdown grace period.
    fake.slow_asset(&asset.id, Duration::from_secs(25));
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(data.path(), &fake, &[]);
    let (code, _) = fake
        .push(&serve.push_url(), &order_push(&order, "NEW"))
        .await
        .unwrap();
    assert_eq!(code, 200);
    eventually("the download to start", || async {
        (fake.asset_downloads(&asset.id) == 1).then_some(())
    })
    .await;

    let (status, log) = serve.terminate();
    assert!(status.success(), "exit {status}:\n{log}");
    assert!(
        log.contains("1 unfinished push(es) put back in the queue"),
        "{log}"
    );
    assert!(files_of(data.path(), order.id, &asset.id).is_empty());
    assert_eq!(backlog(data.path()).await, 1);

    fake.slow_asset(&asset.id, Duration::ZERO);
    let _serve = Serve::start(data.path(), &fake, &[]);
    drained(data.path()).await;
    assert_stored(data.path(), order.id, &asset);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_files_fail_alone_and_the_next_push_goes_through_at_once() {
    let fake = FakeKode::start().await;
    let recorder = Recorder::start().await;
    let foreign = AssetSpec::ok("p-foreign", "Utenlands.pdf", vec![1u8; 5_000]);
    let missing = AssetSpec::ok("p-404", "Borte.pdf", vec![2u8; 5_000]);
    let large = AssetSpec::ok("p-large", "Stor.pdf", vec![3u8; 150_000]);
    let good: Vec<AssetSpec> = (0..10u8)
        .map(|i| AssetSpec::ok(&format!("g-{i}"), &format!("Kart {i}.pdf"), vec![i; 8_000]))
        .collect();
    let mut order = OrderSpec::new(7010);
    order.sub_orders[0].assets = [foreign.clone(), missing.clone(), large.clone()]
        .into_iter()
        .chain(good.iter().cloned())
        .collect();
    fake.add_order(order.clone());
    fake.set_asset_download_url(&foreign.id, &recorder.url("/shopping/v2/assets/x"));
    let missing_url = fake.asset_download_url(&missing.id);
    fake.set_asset_download_url(&missing.id, &fake.asset_download_url("no-such-asset"));
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap().to_owned();
    let limits = [("MAX_ASSET_BYTES", "100000"), ("FAILED_MAX_ATTEMPTS", "2")];
    let serve = Serve::start_with_env(data.path(), &fake, &[], &limits);

    let (code, body) = fake
        .push(&serve.push_url(), &order_push(&order, "NEW"))
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    drained(data.path()).await;
    for asset in &good {
        assert_stored(data.path(), order.id, asset);
    }
    for asset in [&foreign, &missing, &large] {
        assert!(
            files_of(data.path(), order.id, &asset.id).is_empty(),
            "{}",
            asset.id
        );
    }
    assert!(
        serve.log().contains("\"action\":\"asset_failed\""),
        "{}",
        serve.log()
    );

    // The next push is handled at once (no retry wait, no dead letter) and
    // fetches no good file again; the poison is tried a second time.
    let (code, body) = fake
        .push(&serve.push_url(), &order_push(&order, "FINISHED"))
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    drained(data.path()).await;
    for asset in &good {
        assert_eq!(fake.asset_downloads(&asset.id), 1, "{}", asset.id);
    }
    let out = run_kode(&["dead-letters", "--data-dir", &dir], data.path());
    assert!(
        text(&out.stdout).contains("no dead letters"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        serve.log().contains("\"action\":\"order_finished\"")
            && serve.log().contains("p-404: KODE answered 404"),
        "the completeness report names the failed files:\n{}",
        serve.log()
    );

    // Two failures reached FAILED_MAX_ATTEMPTS: parked, shown with the reason.
    let env = || {
        let mut env = fake_env(&fake);
        env.push(("FAILED_MAX_ATTEMPTS", "2".to_owned()));
        env.push(("MAX_ASSET_BYTES", "100000".to_owned()));
        env
    };
    let args = ["order", "get", "7010", "--data-dir", &dir];
    let out = run_kode_env(&args, data.path(), env());
    let listing = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for (asset, reason) in [
        (&foreign, "not a configured KODE host"),
        (&missing, "404"),
        (&large, "larger than the maximum"),
    ] {
        let row = listing
            .lines()
            .find(|l| l.trim_start().starts_with(&asset.id))
            .unwrap_or_else(|| panic!("{} missing:\n{listing}", asset.id));
        assert!(
            row.contains("PARKED after 2 attempt(s)") && row.contains(reason),
            "{row}"
        );
    }

    // Parked files are not tried by a plain sync; --retry-failed tries them,
    // and the one KODE now serves is stored.
    fake.set_asset_download_url(&missing.id, &missing_url);
    let out = run_kode_env(&["sync", "7010", "--data-dir", &dir], data.path(), env());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(files_of(data.path(), order.id, &missing.id).is_empty());
    assert!(
        text(&out.stderr).contains("--retry-failed"),
        "{}",
        text(&out.stderr)
    );
    let args = ["sync", "7010", "--retry-failed", "--data-dir", &dir];
    let out = run_kode_env(&args, data.path(), env());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_stored(data.path(), order.id, &missing);
    let report = text(&out.stdout);
    assert!(
        report.contains(&large.id) && report.contains("PARKED after 3 attempt(s)"),
        "{report}"
    );
    drop(serve);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_serve_on_the_same_data_dir_is_refused_while_the_first_keeps_working() {
    let fake = FakeKode::start().await;
    let mut order = fake_kode::OrderSpec::new(7005);
    let slow = AssetSpec::ok("lock-slow-1", "Situasjonskart.pdf", vec![5u8; 10_000]);
    order.sub_orders[0].assets.push(slow.clone());
    fake.add_order(order.clone());
    // In flight while the second instance starts: the one a second start
    // used to put back to pending under the first one's feet.
    fake.slow_asset(&slow.id, Duration::from_secs(3));
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap().to_owned();
    let first = Serve::start(data.path(), &fake, &[]);
    let (code, _) = fake
        .push(&first.push_url(), &order_push(&order, "NEW"))
        .await
        .unwrap();
    assert_eq!(code, 200);
    eventually("the download to start", || async {
        (fake.asset_downloads(&slow.id) == 1).then_some(())
    })
    .await;

    let second = run_to_end(serve_command(data.path(), &fake, &[]));
    let stderr = text(&second.stderr);
    assert!(!second.status.success(), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].contains(&dir), "{stderr}");
    assert!(
        lines[0].contains(&format!("pid {}", first.pid())),
        "{stderr}"
    );

    // The one-shot commands work beside it.
    let out = run_kode(&["dead-letters", "--data-dir", &dir], data.path());
    assert!(out.status.success(), "{}", text(&out.stderr));

    // The first instance goes on: its push finishes with one download, and
    // it takes new pushes.
    drained(data.path()).await;
    assert_stored(data.path(), order.id, &slow);
    let later = AssetSpec::ok("lock-later-1", "Kart.pdf", vec![6u8; 5_000]);
    order.sub_orders[0].assets.push(later.clone());
    fake.add_order(order.clone());
    let (code, _) = fake
        .push(&first.push_url(), &order_push(&order, "UPDATED"))
        .await
        .unwrap();
    assert_eq!(code, 200);
    drained(data.path()).await;
    assert_stored(data.path(), order.id, &later);
    assert_eq!(fake.asset_downloads(&slow.id), 1);
}

// ---- the sweep ----

/// A file KODE adds to the order after its last push.
fn late_file(fake: &FakeKode, order: &mut fake_kode::OrderSpec, id: &str) -> AssetSpec {
    let asset = AssetSpec::ok(
        id,
        &format!("{id}.pdf"),
        format!("late file {id}").into_bytes(),
    );
    let sub = order.sub_orders[0].id;
    fake.add_asset(order.id, sub, None, asset.clone());
    order.sub_orders[0].assets.push(asset.clone());
    asset
}

fn sweep_dry_run(data: &std::path::Path) -> String {
    let dir = data.to_str().unwrap();
    let out = run_kode(&["sweep", "--data-dir", dir, "--dry-run"], data);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_sweeps_open_orders_so_files_without_a_push_arrive() {
    let fake = FakeKode::start().await;
    let mut updated = samples::meglerpakke_order(7201);
    let mut finished = samples::meglerpakke_order(7202);
    let mut cancelled = samples::meglerpakke_order(7203);
    for order in [&updated, &finished, &cancelled] {
        fake.add_order(order.clone());
    }
    fake.set_order_status(7203, "CANCELLED");
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(data.path(), &fake, &["--sweep-interval", "1s"]);
    for (order, status) in [
        (&updated, "UPDATED"),
        (&finished, "FINISHED"),
        (&cancelled, "NEW"),
        (&cancelled, "CANCELLED"),
    ] {
        let (code, body) = fake
            .push(&serve.push_url(), &order_push(order, status))
            .await
            .unwrap();
        assert_eq!(code, 200, "{body}");
    }
    drained(data.path()).await;
    assert!(files_of(data.path(), 7203, &cancelled.sub_orders[0].assets[0].id).is_empty());

    // Files added in KODE whose pushes never come.
    let lost = late_file(&fake, &mut updated, "lost-7201");
    let after_finish = late_file(&fake, &mut finished, "late-7202");
    let after_cancel = late_file(&fake, &mut cancelled, "late-7203");
    eventually("the files no push announced", || async {
        (all_stored(data.path(), 7201, &assets_of(&updated))
            && all_stored(data.path(), 7202, &assets_of(&finished)))
        .then_some(())
    })
    .await;
    assert_stored(data.path(), 7201, &lost);
    assert_stored(data.path(), 7202, &after_finish);
    let log = serve.log();
    assert!(log.contains("\"action\":\"sweep_enqueued\""), "{log}");
    assert!(log.contains("\"action\":\"sweep_done\""), "{log}");

    // The purged order is not open, and its late file never comes.
    let listed = sweep_dry_run(data.path());
    assert!(
        listed.contains("2 open order(s) would be swept"),
        "{listed}"
    );
    assert!(
        listed.contains("7201") && listed.contains("7202"),
        "{listed}"
    );
    assert!(!listed.contains("7203"), "{listed}");
    assert!(files_of(data.path(), 7203, &after_cancel.id).is_empty());
    drop(serve);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_refused_at_first_is_stored_by_a_sweep_once_kode_serves_it() {
    let fake = FakeKode::start().await;
    let order = samples::meglerpakke_order(7204);
    fake.add_order(order.clone());
    fake.fail_next(Endpoint::Asset, 1, 404);
    let data = tempfile::tempdir().unwrap();
    // The push's only run stores the other files and records the refused
    // one FAILED; no push comes again, so only the sweep can fetch it.
    let serve = Serve::start(
        data.path(),
        &fake,
        &["--sweep-interval", "1s", "--max-attempts", "1"],
    );
    let (code, _) = fake
        .push(&serve.push_url(), &order_push(&order, "NEW"))
        .await
        .unwrap();
    assert_eq!(code, 200);
    eventually("every file, by the sweep", || async {
        all_stored(data.path(), order.id, &assets_of(&order)).then_some(())
    })
    .await;
    let log = serve.log();
    assert!(log.contains("\"action\":\"asset_failed\""), "{log}");
    assert!(log.contains("\"action\":\"sweep_enqueued\""), "{log}");
    assert!(!log.contains("\"action\":\"dead_letter\""), "{log}");
    drop(serve);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_kode_no_longer_knows_is_closed_after_three_misses_without_a_dead_letter() {
    let fake = FakeKode::start().await;
    let order = samples::meglerpakke_order(7205);
    fake.add_order(order.clone());
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap().to_owned();
    let serve = Serve::start(
        data.path(),
        &fake,
        &["--sweep-interval", "1s", "--max-attempts", "1"],
    );
    let (code, _) = fake
        .push(&serve.push_url(), &order_push(&order, "NEW"))
        .await
        .unwrap();
    assert_eq!(code, 200);
    drained(data.path()).await;
    fake.fail_next(Endpoint::GetOrder, 3, 404);

    eventually("the order closed", || async {
        serve
            .log()
            .contains("\"action\":\"sweep_closed\"")
            .then_some(())
    })
    .await;
    drained(data.path()).await;
    assert_eq!(serve.log().matches("\"action\":\"sweep_miss\"").count(), 2);
    let out = run_kode(&["dead-letters", "--data-dir", &dir], data.path());
    assert!(
        text(&out.stdout).contains("no dead letters"),
        "{}",
        text(&out.stdout)
    );
    assert!(sweep_dry_run(data.path()).contains("0 open order(s)"));
    // A 404 is no cancellation: the files stay.
    assert!(all_stored(data.path(), order.id, &assets_of(&order)));
    drop(serve);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_created_with_a_data_dir_and_never_pushed_gets_its_files_by_kode_sweep() {
    let fake = FakeKode::start().await;
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap().to_owned();
    // No periodic sweep: `kode sweep` beside it does the work.
    let serve = Serve::start(data.path(), &fake, &["--sweep-interval", "0"]);
    eventually("the start-up line", || async {
        serve.log().contains("sweep off").then_some(())
    })
    .await;

    let out = run_kode_against(
        &fake,
        &[
            "order",
            "create",
            "share",
            "--organization-number",
            "948677202",
            "--share-number",
            "57",
            "--product",
            "WI03010900",
            "--reference",
            "OPPDRAG-2024-0077",
            "--json",
            "--data-dir",
            &dir,
        ],
        data.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = created["id"].as_u64().unwrap();
    let sub = created["orders"][0]["id"].as_u64().unwrap();
    {
        use kode::store::Ledger as _;
        let ledger = kode::store::local::SqliteLedger::open(data.path().join("ledger.sqlite"))
            .await
            .unwrap();
        let record = ledger
            .order(kode::model::OrderId(id))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.reference.as_deref(), Some("OPPDRAG-2024-0077"));
        assert_eq!(record.last_status, None, "no push yet");
    }
    let file = AssetSpec::ok(
        "first-file",
        "Eiendomsinformasjon.pdf",
        b"%PDF-1.7 x".to_vec(),
    );
    fake.add_asset(id, sub, None, file.clone());

    let listed = sweep_dry_run(data.path());
    assert!(
        listed.contains("1 open order(s) would be swept"),
        "{listed}"
    );
    assert!(listed.contains(&id.to_string()), "{listed}");
    assert_eq!(backlog(data.path()).await, 0, "a dry run sends nothing");

    let out = run_kode(&["sweep", "--data-dir", &dir], data.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("1 open order(s) enqueued"),
        "{}",
        text(&out.stdout)
    );
    eventually("the file, with no push at all", || async {
        (files_of(data.path(), id, &file.id).len() == 1).then_some(())
    })
    .await;
    assert_stored(data.path(), id, &file);
    drop(serve);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kode_sweep_refuses_a_directory_that_is_not_a_data_dir() {
    let empty = tempfile::tempdir().unwrap();
    let dir = empty.path().to_str().unwrap();
    let out = run_kode(&["sweep", "--data-dir", dir], empty.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("ledger.sqlite"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
    let out = run_kode(&["sweep"], empty.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

/// A plain-HTTP receiver that checks each delivery the way the README tells
/// a consumer to, and answers 500 to the first `refuse` of them.
#[derive(Clone)]
struct Receiver {
    key: Vec<u8>,
    refuse: Arc<AtomicUsize>,
    /// (webhook-id, body) of each delivery with a valid signature.
    accepted: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
    forged: Arc<AtomicUsize>,
}

impl Receiver {
    async fn start(key: Vec<u8>, refuse: usize) -> (Receiver, String) {
        let receiver = Receiver {
            key,
            refuse: Arc::new(AtomicUsize::new(refuse)),
            accepted: Arc::default(),
            forged: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(Receiver::handle))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, url)
    }

    async fn handle(
        axum::extract::State(receiver): axum::extract::State<Receiver>,
        headers: axum::http::HeaderMap,
        body: String,
    ) -> axum::http::StatusCode {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        };
        let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
        let mut mac = Hmac::<Sha256>::new_from_slice(&receiver.key).unwrap();
        mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
        let expected = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
        let fresh = timestamp
            .parse::<i64>()
            .is_ok_and(|t| (jiff::Timestamp::now().as_second() - t).abs() < 300);
        if !fresh
            || !header("webhook-signature")
                .split(' ')
                .any(|s| s == expected)
        {
            receiver.forged.fetch_add(1, Ordering::SeqCst);
            return axum::http::StatusCode::UNAUTHORIZED;
        }
        let refused = receiver
            .refuse
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if refused {
            return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
        }
        let body = serde_json::from_str(&body).unwrap();
        receiver
            .accepted
            .lock()
            .unwrap()
            .push((id.to_owned(), body));
        axum::http::StatusCode::NO_CONTENT
    }

    fn accepted(&self) -> Vec<(String, serde_json::Value)> {
        self.accepted.lock().unwrap().clone()
    }

    fn of_type(&self, event_type: &str) -> Vec<serde_json::Value> {
        self.accepted()
            .into_iter()
            .filter(|(_, body)| body["type"] == event_type)
            .map(|(_, body)| body)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_a_receiver_signed_retried_and_once_each() {
    let key: Vec<u8> = (0u8..32).collect();
    // The receiver is "down" for the first delivery: it comes again.
    let (receiver, hook) = Receiver::start(key.clone(), 1).await;
    let fake = FakeKode::start().await;
    let first = AssetSpec::ok("n-1", "Reguleringskart.pdf", vec![7u8; 30_000]);
    let second = AssetSpec::ok("n-2", "Situasjonskart.pdf", vec![8u8; 5_000]);
    let mut order = fake_kode::OrderSpec::new(7301);
    order.sub_orders[0].assets = vec![first.clone(), second.clone()];
    fake.add_order(order.clone());
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("kode.env");
    std::fs::write(
        &config,
        format!("NOTIFY_SECRET=whsec_{}\n", BASE64.encode(&key)),
    )
    .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let serve = Serve::start(
        data.path(),
        &fake,
        &["--notify-url", &hook, "--config", &config],
    );

    for status in ["NEW", "FINISHED", "FINISHED"] {
        let (code, body) = fake
            .push(&serve.push_url(), &order_push(&order, status))
            .await
            .unwrap();
        assert_eq!(code, 200, "{body}");
    }
    drained(data.path()).await;
    let accepted = eventually("three events delivered", || async {
        let accepted = receiver.accepted();
        (accepted.len() >= 3).then_some(accepted)
    })
    .await;

    let stored = receiver.of_type("asset.stored");
    assert_eq!(stored.len(), 2, "{accepted:#?}");
    for body in &stored {
        let data_field = &body["data"];
        let path = data
            .path()
            .join("assets")
            .join(data_field["key"].as_str().unwrap());
        let bytes = std::fs::read(&path).expect("the announced file");
        assert_eq!(data_field["sha256"], hex_sha256(&bytes));
        assert_eq!(data_field["bytes"], bytes.len());
        assert!(data_field.get("bucket").is_none());
    }
    for (id, body) in &accepted {
        assert_eq!(*id, body["data"]["eventId"], "webhook-id is the event id");
    }
    assert_eq!(receiver.of_type("order.completed").len(), 1);
    assert_eq!(receiver.forged.load(Ordering::SeqCst), 0);

    // Withdrawn, then cancelled: asset.deleted for each file, order.purged once.
    fake.set_asset_status(&second.id, "DELETED");
    for status in ["UPDATED", "CANCELLED", "CANCELLED"] {
        fake.push(&serve.push_url(), &order_push(&order, status))
            .await
            .unwrap();
    }
    drained(data.path()).await;
    eventually("the purge announced", || async {
        (!receiver.of_type("order.purged").is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let deleted: Vec<String> = receiver
        .of_type("asset.deleted")
        .iter()
        .map(|b| b["data"]["assetId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(deleted, [second.id.clone(), first.id.clone()]);
    let purged = receiver.of_type("order.purged");
    assert_eq!(purged.len(), 1);
    assert_eq!(purged[0]["data"]["files"], 1);
    assert_eq!(receiver.accepted().len(), 6, "each event once");
    assert!(
        serve.log().contains("event_delivery_failed"),
        "the 500 was retried"
    );
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_the_receiver_keeps_refusing_is_listed_and_retried_by_dead_letters() {
    let key: Vec<u8> = (100u8..132).collect();
    let (receiver, hook) = Receiver::start(key.clone(), usize::MAX).await;
    let fake = FakeKode::start().await;
    let asset = AssetSpec::ok("d-1", "Kart.pdf", vec![9u8; 1_000]);
    let mut order = fake_kode::OrderSpec::new(7302);
    order.sub_orders[0].assets = vec![asset.clone()];
    fake.add_order(order.clone());
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("kode.env");
    std::fs::write(
        &config,
        format!("NOTIFY_SECRET=whsec_{}\n", BASE64.encode(&key)),
    )
    .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let serve = Serve::start(
        data.path(),
        &fake,
        &[
            "--notify-url",
            &hook,
            "--config",
            &config,
            "--notify-max-attempts",
            "2",
            "--notify-retry-backoff-ms",
            "50",
        ],
    );
    fake.push(&serve.push_url(), &order_push(&order, "NEW"))
        .await
        .unwrap();
    drained(data.path()).await;
    assert_stored(data.path(), order.id, &asset);

    let dir = data.path().to_str().unwrap().to_owned();
    let listing = eventually("the event among the dead letters", || async {
        let out = run_kode(&["dead-letters", "--data-dir", &dir], data.path());
        let stdout = text(&out.stdout);
        stdout.contains("7302:d-1:stored").then_some(stdout)
    })
    .await;
    assert!(listing.contains("asset.stored"), "{listing}");
    assert!(listing.contains("attempts 2"), "{listing}");
    assert!(listing.contains("500 Internal Server Error"), "{listing}");
    assert!(receiver.accepted().is_empty());

    receiver.refuse.store(0, Ordering::SeqCst);
    let out = run_kode(&["dead-letters", "retry", "--data-dir", &dir], data.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("1 event delivery"),
        "{}",
        text(&out.stdout)
    );
    let accepted = eventually("the retried delivery", || async {
        let accepted = receiver.accepted();
        (!accepted.is_empty()).then_some(accepted)
    })
    .await;
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].0, "7302:d-1:stored");
    drop(serve);
}
