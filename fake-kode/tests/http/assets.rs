//! Asset downloads from the fake: exact bytes, announced hashes, cut-off bodies.

use std::time::Duration;

use bytes::Bytes;
use fake_kode::{AssetContent, AssetSpec, Endpoint, FakeKode, OrderSpec, Recorder, RECORDER_BODY};
use sha2::{Digest, Sha256};

use crate::token;

/// A fake with order 900 holding `asset`, and a token for it.
async fn fake_with(asset: AssetSpec) -> (FakeKode, String) {
    let fake = FakeKode::start().await;
    let mut order = OrderSpec::new(900);
    order.sub_orders[0].assets.push(asset);
    fake.add_order(order);
    let access = token(&fake).await;
    (fake, access)
}

async fn download(fake: &FakeKode, access: &str, id: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(fake.asset_download_url(id))
        .bearer_auth(access)
        .send()
        .await
        .expect("download request")
}

#[tokio::test]
async fn download_is_byte_exact_with_length_and_type() {
    let content = Bytes::from_static(b"%PDF-1.4 small plan");
    let (fake, access) = fake_with(AssetSpec::ok("p1", "Plan_Østre.pdf", content.clone())).await;
    let response = download(&fake, &access, "p1").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.content_length(), Some(content.len() as u64));
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/pdf")
    );
    assert_eq!(response.bytes().await.expect("body"), content);
    assert_eq!(fake.asset_downloads("p1"), 1);
}

#[tokio::test]
async fn generated_content_streams_with_the_announced_sha256() {
    let content = AssetContent::Generated {
        len: 3 * 1024 * 1024 + 5,
        seed: 99,
    };
    let asset = AssetSpec {
        content: content.clone(),
        ..AssetSpec::ok("g1", "big.zip", Bytes::new())
    };
    let (fake, access) = fake_with(asset).await;
    let mut response = download(&fake, &access, "g1").await;
    assert_eq!(response.content_length(), Some(content.len()));
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    while let Some(chunk) = response.chunk().await.expect("chunk") {
        received += chunk.len() as u64;
        hasher.update(&chunk);
    }
    assert_eq!(received, content.len());
    assert_eq!(hex::encode(hasher.finalize()), content.sha256_hex());
}

#[tokio::test]
async fn truncated_body_is_an_error_for_the_client() {
    let content = AssetContent::Generated {
        len: 200_000,
        seed: 3,
    };
    let asset = AssetSpec {
        content,
        ..AssetSpec::ok("t1", "cut.pdf", Bytes::new())
    };
    let (fake, access) = fake_with(asset).await;
    fake.truncate_asset("t1", 100_000);
    let response = download(&fake, &access, "t1").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.content_length(), Some(200_000));
    let mut response = response;
    let mut received = 0;
    let outcome = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => received += chunk.len(),
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    assert!(outcome.is_err(), "a short body must fail");
    assert!(received <= 100_000, "sent {received} bytes past the cut");
    assert_eq!(fake.asset_downloads("t1"), 1);
}

#[tokio::test]
async fn slow_body_still_arrives_whole() {
    let content = AssetContent::Generated {
        len: 40_000,
        seed: 4,
    };
    let asset = AssetSpec {
        content: content.clone(),
        ..AssetSpec::ok("s1", "slow.txt", Bytes::new())
    };
    let (fake, access) = fake_with(asset).await;
    fake.slow_asset("s1", Duration::from_millis(2));
    let response = download(&fake, &access, "s1").await;
    assert_eq!(response.bytes().await.expect("body"), content.to_bytes());
}

#[tokio::test]
async fn deleted_or_unknown_assets_are_404_and_not_counted() {
    let (fake, access) = fake_with(AssetSpec::ok("d1", "gone.pdf", &b"x"[..])).await;
    fake.set_asset_status("d1", "DELETED");
    assert_eq!(download(&fake, &access, "d1").await.status(), 404);
    assert_eq!(download(&fake, &access, "nope").await.status(), 404);
    assert_eq!(fake.asset_downloads("d1"), 0);
    assert_eq!(fake.requests(Endpoint::Asset), 2);
}

#[tokio::test]
async fn download_requires_the_bearer_token() {
    let (fake, _) = fake_with(AssetSpec::ok("b1", "a.pdf", &b"x"[..])).await;
    let response = reqwest::get(fake.asset_download_url("b1"))
        .await
        .expect("request");
    assert_eq!(response.status(), 401);
    assert_eq!(fake.asset_downloads("b1"), 0);
}

#[tokio::test]
async fn redirect_points_at_the_recorder_which_records_headers() {
    let recorder = Recorder::start().await;
    let (fake, access) = fake_with(AssetSpec::ok("r1", "a.pdf", &b"x"[..])).await;
    fake.redirect_asset("r1", &recorder.url("/files/r1"));
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let response = no_follow
        .get(fake.asset_download_url("r1"))
        .bearer_auth(&access)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 302);
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert_eq!(location, recorder.url("/files/r1"));

    let answer = reqwest::Client::new()
        .get(location)
        .header("x-probe", "seen")
        .send()
        .await
        .expect("request");
    assert_eq!(answer.text().await.expect("body"), RECORDER_BODY);
    let recorded = recorder.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        (recorded[0].method.as_str(), recorded[0].path.as_str()),
        ("GET", "/files/r1")
    );
    assert_eq!(recorded[0].header("X-Probe"), Some("seen"));
    assert_eq!(recorded[0].header("authorization"), None);
}

#[tokio::test]
async fn push_posts_json_to_the_callback() {
    let recorder = Recorder::start().await;
    let fake = FakeKode::start().await;
    let push =
        serde_json::json!({ "orderCollectionId": 900, "reference": "R", "status": "UPDATED" });
    let (status, body) = fake
        .push(&recorder.url("/push?token=abc"), &push)
        .await
        .expect("push");
    assert_eq!((status, body.as_str()), (200, RECORDER_BODY));
    let recorded = recorder.requests();
    assert_eq!(recorded[0].method, "POST");
    assert_eq!(recorded[0].path, "/push");
    assert_eq!(recorded[0].header("content-type"), Some("application/json"));
}
