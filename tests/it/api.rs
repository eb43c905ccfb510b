//! The KODE client against the fake KODE server: auth, retries, downloads and
//! where the token may go.

use std::time::{Duration, Instant};

use fake_kode::{AssetSpec, Edition, Endpoint, FakeKode, OrderSpec, Recorder};
use kode::api::{ApiConfig, ApiError, Credentials, Download, KodeClient, TokenEncoding};
use kode::model::{MunicipalityNumber, OrderId, OrderKind};
use kode::stream::{ChunkSource, SourceError};
use kode::{Deadline, Secret};
use reqwest::Url;
use serde_json::json;

fn config(fake: &FakeKode) -> ApiConfig {
    let c = fake.credentials();
    let credentials = Credentials {
        client_id: c.client_id,
        client_secret: Secret::new(c.client_secret),
        username: c.username,
        password: Secret::new(c.password),
    };
    let url = Url::parse(&fake.base_url()).expect("fake base URL");
    ApiConfig::new(url, credentials)
}

fn client(fake: &FakeKode) -> KodeClient {
    KodeClient::new(config(fake)).expect("client")
}

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(30))
}

/// An order with one asset of `content`; returns the asset's download URL.
fn order_with_asset(fake: &FakeKode, order_id: u64, asset_id: &str, content: Vec<u8>) -> String {
    let mut order = OrderSpec::new(order_id);
    order.sub_orders[0]
        .assets
        .push(AssetSpec::ok(asset_id, "Reguleringsplan.pdf", content));
    fake.add_order(order);
    fake.asset_download_url(asset_id)
}

fn pseudo_random(len: usize) -> Vec<u8> {
    let mut rng = fastrand_like(42);
    (0..len).map(|_| rng()).collect()
}

/// A tiny deterministic generator (no extra dev-dependency).
fn fastrand_like(mut state: u64) -> impl FnMut() -> u8 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 24) as u8
    }
}

async fn read_all(download: &mut Download) -> Result<Vec<u8>, SourceError> {
    let mut body = Vec::new();
    while let Some(chunk) = download.next_chunk().await? {
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[tokio::test]
async fn concurrent_calls_share_one_token_request() {
    let fake = FakeKode::start().await;
    fake.add_order(OrderSpec::new(100));
    let client = client(&fake);
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let client = client.clone();
        calls.spawn(async move { client.get_order(OrderId(100), deadline()).await });
    }
    while let Some(result) = calls.join_next().await {
        assert_eq!(result.expect("task").expect("order").id, OrderId(100));
    }
    assert_eq!(fake.requests(Endpoint::Token), 1);
    assert_eq!(fake.requests(Endpoint::GetOrder), 8);
    // Later calls keep reusing the cached token.
    client.get_order(OrderId(100), deadline()).await.unwrap();
    let info = client.token_info(deadline()).await.unwrap();
    assert_eq!(fake.requests(Endpoint::Token), 1);
    assert!(
        info.scopes.iter().any(|s| s == "kode.order.read"),
        "{:?}",
        info.scopes
    );
    assert_eq!(
        info.lifetime,
        Duration::from_secs(3600),
        "as the fake grants it"
    );
    assert!(!info.lifetime_assumed);
}

#[tokio::test]
async fn an_expired_token_triggers_one_reauthentication_with_the_refresh_token() {
    let fake = FakeKode::start().await;
    fake.add_order(OrderSpec::new(200));
    let client = client(&fake);
    client.get_order(OrderId(200), deadline()).await.unwrap();
    fake.expire_tokens();
    let order = client.get_order(OrderId(200), deadline()).await.unwrap();
    assert_eq!(order.id, OrderId(200));
    assert_eq!(fake.grants("password"), 1);
    assert_eq!(fake.grants("refresh_token"), 1);
    // First call, the 401, and its single retry.
    assert_eq!(fake.requests(Endpoint::GetOrder), 3);
}

#[tokio::test]
async fn concurrent_401s_share_one_reauthentication() {
    let fake = FakeKode::start().await;
    fake.add_order(OrderSpec::new(250));
    let client = client(&fake);
    client.get_order(OrderId(250), deadline()).await.unwrap();
    fake.expire_tokens();
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let client = client.clone();
        calls.spawn(async move { client.get_order(OrderId(250), deadline()).await });
    }
    while let Some(result) = calls.join_next().await {
        result.expect("task").expect("order");
    }
    assert_eq!(fake.grants("password") + fake.grants("refresh_token"), 2);
}

#[tokio::test]
async fn a_rejected_refresh_token_falls_back_to_the_password_grant() {
    let fake = FakeKode::start().await;
    fake.add_order(OrderSpec::new(300));
    let client = client(&fake);
    client.get_order(OrderId(300), deadline()).await.unwrap();
    fake.expire_tokens();
    fake.reject_refresh_tokens(true);
    client.get_order(OrderId(300), deadline()).await.unwrap();
    assert_eq!(fake.grants("refresh_token"), 1);
    assert_eq!(fake.grants("password"), 2);
}

#[tokio::test]
async fn wrong_credentials_fail_once_with_kodes_message() {
    let fake = FakeKode::start().await;
    let mut config = config(&fake);
    config.credentials.password = Secret::new("wrong-password");
    let client = KodeClient::new(config).unwrap();
    let err = client.get_order(OrderId(1), deadline()).await.unwrap_err();
    assert!(matches!(err, ApiError::Auth(_)), "{err:?}");
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert!(text.contains("Bad credentials"), "{text}");
    assert!(!text.contains("wrong-password") && !format!("{err:?}").contains("wrong-password"));
    assert_eq!(fake.requests(Endpoint::Token), 1);
    assert_eq!(fake.requests(Endpoint::GetOrder), 0);
}

#[tokio::test]
async fn json_token_requests_are_accepted() {
    let fake = FakeKode::start().await;
    fake.add_order(OrderSpec::new(400));
    let mut config = config(&fake);
    config.token_encoding = TokenEncoding::Json;
    let client = KodeClient::new(config).unwrap();
    client.get_order(OrderId(400), deadline()).await.unwrap();
    assert_eq!(fake.grants("password"), 1);
}

#[tokio::test]
async fn two_503s_then_success() {
    let fake = FakeKode::start().await;
    fake.add_order(OrderSpec::new(500));
    fake.fail_next(Endpoint::GetOrder, 2, 503);
    let order = client(&fake)
        .get_order(OrderId(500), deadline())
        .await
        .unwrap();
    assert_eq!(order.id, OrderId(500));
    assert_eq!(fake.requests(Endpoint::GetOrder), 3);
}

#[tokio::test]
async fn a_429_waits_at_least_retry_after() {
    let fake = FakeKode::start().await;
    fake.add_order(OrderSpec::new(600));
    let client = client(&fake);
    client.token_info(deadline()).await.unwrap();
    fake.rate_limit_next(Endpoint::GetOrder, 1, 1);
    let started = Instant::now();
    client.get_order(OrderId(600), deadline()).await.unwrap();
    // A lower bound set by the protocol, not a speed claim.
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(fake.requests(Endpoint::GetOrder), 2);
}

#[tokio::test]
async fn a_404_is_permanent_and_not_retried() {
    let fake = FakeKode::start().await;
    let err = client(&fake)
        .get_order(OrderId(404404), deadline())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("Order 404404 not found"), "{err}");
    assert_eq!(fake.requests(Endpoint::GetOrder), 1);
}

#[tokio::test]
async fn the_deadline_bounds_retries() {
    let fake = FakeKode::start().await;
    fake.set_down(true);
    let err = client(&fake)
        .get_order(OrderId(1), Deadline::after(Duration::from_millis(1500)))
        .await
        .unwrap_err();
    match &err {
        ApiError::DeadlineExceeded { attempts, last, .. } => {
            assert!(*attempts >= 2, "{err}");
            assert!(last.contains("503"), "{err}");
        }
        other => panic!("expected DeadlineExceeded, got {other:?}"),
    }
    assert!(err.is_retryable());
}

#[tokio::test]
async fn products_prices_and_orders_round_trip() {
    let fake = FakeKode::start().await;
    let client = client(&fake);
    let municipality = MunicipalityNumber::parse("0301").unwrap();
    let products = client.products(&municipality, deadline()).await.unwrap();
    let package = products.iter().find(|p| p.is_package()).expect("a package");
    assert_eq!(package.code, "WI03010033");
    assert!(!package.children.is_empty());

    let body = json!({
        "orderData": { "address": "Storgata 12, 0155 Oslo", "cadastre": "0301-207-45-0-0" },
        "products": [ { "code": "WI03010033" } ],
        "reference": "OPPDRAG-2024-0042",
        "technicalReference": "acme-7f3c2a"
    });
    let price = client
        .price(OrderKind::Cadastre, &body, deadline())
        .await
        .unwrap();
    assert_eq!(price["products"][0]["code"], "WI03010033");
    assert_eq!(fake.price_requests()[0].0, "cadastre");

    let created = client
        .create_order(OrderKind::Cadastre, &body, deadline())
        .await
        .unwrap();
    assert_eq!(created.raw["id"], serde_json::json!(created.order.id.0));
    let order = created.order;
    let lines = &order.orders[0].order_lines;
    assert_eq!(lines[0].product.as_deref(), Some("WI03010033"));
    assert_eq!(lines.len(), 1 + package.children.len());
    assert_eq!(
        fake.created_orders(),
        vec![("cadastre".to_owned(), body.clone())]
    );

    let raw = client
        .get_json(&format!("/kode/v1/orders/{}", order.id), deadline())
        .await
        .unwrap();
    assert_eq!(raw["id"], json!(order.id.0));
    let raw = client
        .get_json("/kode/v1/products?municipality=0301", deadline())
        .await
        .unwrap();
    assert_eq!(raw[0]["code"], "WI03010033");
    for bad in ["kode/v1/x", "//evil.example/kode", "https://evil.example/"] {
        assert!(
            matches!(
                client.get_json(bad, deadline()).await,
                Err(ApiError::Invalid(_))
            ),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn a_rejected_create_is_not_retried_and_says_why() {
    let fake = FakeKode::start().await;
    let client = client(&fake);
    let body = json!({ "orderData": {}, "products": [], "reference": "R" });
    let err = client
        .create_order(OrderKind::Cadastre, &body, deadline())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(err.to_string().contains("orderData.cadastre"), "{err}");
    fake.fail_next(Endpoint::CreateOrder, 1, 502);
    let good = json!({
        "orderData": { "cadastre": "0301-207-45-0-0" },
        "products": [ { "code": "WI03010033" } ], "reference": "R" });
    let err = client
        .create_order(OrderKind::Cadastre, &good, deadline())
        .await
        .unwrap_err();
    // A 502 may have been processed: ordering twice would bill twice.
    assert_eq!(err.status(), Some(502));
    assert_eq!(fake.requests(Endpoint::CreateOrder), 2);
    assert!(fake.created_orders().is_empty());
}

#[tokio::test]
async fn old_edition_orders_parse() {
    let fake = FakeKode::start().await;
    fake.set_edition(Edition::Old);
    fake.add_order(fake_kode::samples::meglerpakke_order(700));
    let order = client(&fake)
        .get_order(OrderId(700), deadline())
        .await
        .unwrap();
    assert_eq!(order.id, OrderId(700));
    assert!(order
        .date_ordered
        .as_ref()
        .and_then(|d| d.instant())
        .is_some());
    assert!(order.orders[0]
        .order_lines
        .iter()
        .any(|l| l.product_type() == Some("PACKAGE")));
}

#[tokio::test]
async fn a_download_is_byte_exact() {
    let fake = FakeKode::start().await;
    let content = pseudo_random(300 * 1024 + 17);
    let url = order_with_asset(&fake, 800, "a800", content.clone());
    let mut download = client(&fake).download(&url, deadline()).await.unwrap();
    assert_eq!(download.content_length(), Some(content.len() as u64));
    assert_eq!(download.content_type(), Some("application/pdf"));
    let body = read_all(&mut download).await.unwrap();
    assert!(body == content, "body differs");
    assert_eq!(download.bytes_read(), body.len() as u64);
    assert_eq!(fake.asset_downloads("a800"), 1);
}

#[tokio::test]
async fn a_truncated_body_fails() {
    let fake = FakeKode::start().await;
    let url = order_with_asset(&fake, 900, "a900", pseudo_random(64 * 1024));
    fake.truncate_asset("a900", 10_000);
    // Paced, so that the headers surely leave the fake before the cut (an
    // abort before the headers is a connection error, retried, not this).
    fake.slow_asset("a900", Duration::from_millis(20));
    let mut download = client(&fake).download(&url, deadline()).await.unwrap();
    match read_all(&mut download).await {
        Err(SourceError::Truncated { received, expected }) => {
            assert!(received <= 10_000, "{received}");
            assert_eq!(expected, Some(64 * 1024));
        }
        other => panic!("expected Truncated, got {:?}", other.map(|b| b.len())),
    }
}

#[tokio::test]
async fn the_size_cap_refuses_large_files() {
    let fake = FakeKode::start().await;
    let url = order_with_asset(&fake, 1000, "a1000", pseudo_random(5000));
    let mut config = config(&fake);
    config.max_asset_bytes = 4096;
    let err = KodeClient::new(config)
        .unwrap()
        .download(&url, deadline())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::Body(SourceError::TooLarge { limit: 4096 })),
        "{err:?}"
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_download_retries_transient_failures_until_headers_arrive() {
    let fake = FakeKode::start().await;
    let url = order_with_asset(&fake, 1100, "a1100", b"%PDF-1.7 small".to_vec());
    fake.fail_next(Endpoint::Asset, 2, 500);
    let mut download = client(&fake).download(&url, deadline()).await.unwrap();
    assert_eq!(read_all(&mut download).await.unwrap(), b"%PDF-1.7 small");
    assert_eq!(fake.requests(Endpoint::Asset), 3);
}

#[tokio::test]
async fn an_off_host_download_url_is_refused_before_any_request() {
    let fake = FakeKode::start().await;
    let recorder = Recorder::start().await;
    order_with_asset(&fake, 1200, "a1200", b"file".to_vec());
    fake.set_asset_download_url("a1200", &recorder.url("/shopping/v2/assets/a1200"));
    let client = client(&fake);
    let order = client.get_order(OrderId(1200), deadline()).await.unwrap();
    let (_, asset) = order.assets().next().expect("an asset");
    let err = client
        .download(&asset.download_url, deadline())
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::ForeignHost { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert!(recorder.requests().is_empty(), "{:?}", recorder.requests());
}

#[tokio::test]
async fn a_redirect_to_a_foreign_host_never_carries_the_token() {
    let fake = FakeKode::start().await;
    let recorder = Recorder::start().await;
    let url = order_with_asset(&fake, 1300, "a1300", b"file".to_vec());
    fake.redirect_asset("a1300", &recorder.url("/elsewhere/a1300"));
    let mut download = client(&fake).download(&url, deadline()).await.unwrap();
    let body = read_all(&mut download).await.unwrap();
    assert_eq!(body, fake_kode::RECORDER_BODY.as_bytes());
    let seen = recorder.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/elsewhere/a1300");
    assert_eq!(
        seen[0].header("authorization"),
        None,
        "{:?}",
        seen[0].headers
    );
    // The first hop, on the KODE host, did carry it (else the fake answers 401).
    assert_eq!(fake.requests(Endpoint::Asset), 1);
}

/// `host:port` of the recorder, whose URLs are plain http.
fn recorder_host_port(recorder: &Recorder) -> String {
    let url = Url::parse(&recorder.url("/")).unwrap();
    format!("{}:{}", url.host_str().unwrap(), url.port().unwrap())
}

#[tokio::test]
async fn a_bare_extra_host_means_https_so_an_http_url_there_gets_no_token() {
    let fake = FakeKode::start().await;
    let recorder = Recorder::start().await;
    let mut config = config(&fake);
    let host = Url::parse(&recorder.url("/")).unwrap();
    config
        .download_hosts
        .push(host.host_str().unwrap().to_owned());
    let client = KodeClient::new(config).unwrap();
    let err = client
        .download(&recorder.url("/files/x.pdf"), deadline())
        .await
        .unwrap_err();
    match &err {
        ApiError::ForeignHost { host, allowed } => {
            assert!(host.starts_with("http://"), "{err}");
            assert!(allowed.contains("https://127.0.0.1:443"), "{err}");
        }
        other => panic!("expected ForeignHost, got {other:?}"),
    }
    assert!(recorder.requests().is_empty(), "{:?}", recorder.requests());
}

#[tokio::test]
async fn an_http_extra_host_gets_the_token_only_beside_an_http_api_url() {
    let fake = FakeKode::start().await;
    let recorder = Recorder::start().await;
    let entry = format!("http://{}", recorder_host_port(&recorder));

    // The production shape: an https API URL refuses the entry outright.
    let mut https = config(&fake);
    https.api_url = Url::parse("https://beta-api.ambita.com").unwrap();
    https.auth_url = kode::api::default_auth_url(&https.api_url);
    https.download_hosts.push(entry.clone());
    let err = KodeClient::new(https).unwrap_err();
    assert!(matches!(err, ApiError::Invalid(_)), "{err:?}");
    assert!(err.to_string().contains("plain http"), "{err}");

    // A local KODE on http (as here) may name a local http file host.
    let mut local = config(&fake);
    local.download_hosts.push(entry);
    let client = KodeClient::new(local).unwrap();
    let mut download = client
        .download(&recorder.url("/files/x.pdf"), deadline())
        .await
        .unwrap();
    read_all(&mut download).await.unwrap();
    let seen = recorder.requests();
    assert_eq!(seen.len(), 1);
    assert!(seen[0]
        .header("authorization")
        .is_some_and(|v| v.starts_with("Bearer ")));
}
