//! Faults the fake injects on request: error statuses, rate limits with Retry-After.

use fake_kode::{samples, Endpoint, FakeKode};

use crate::{get_json, token};

#[tokio::test]
async fn fail_next_answers_the_status_n_times_then_serves() {
    let fake = FakeKode::start().await;
    fake.add_order(samples::meglerpakke_order(500));
    let access = token(&fake).await;
    fake.fail_next(Endpoint::GetOrder, 2, 503);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let (status, body) = get_json(&fake, &access, "/kode/v1/orders/500").await;
        statuses.push(status);
        if status == 503 {
            assert!(body["message"].is_string(), "JSON error body: {body}");
        }
    }
    assert_eq!(statuses, [503, 503, 200]);
    assert_eq!(fake.requests(Endpoint::GetOrder), 3);
    // Faults are per endpoint: the token endpoint was not affected.
    assert_eq!(fake.requests(Endpoint::Token), 1);
}

#[tokio::test]
async fn rate_limit_sends_429_with_retry_after() {
    let fake = FakeKode::start().await;
    let access = token(&fake).await;
    fake.rate_limit_next(Endpoint::Products, 1, 7);
    let response = reqwest::Client::new()
        .get(format!(
            "{}/kode/v1/products?municipality=0301",
            fake.base_url()
        ))
        .bearer_auth(&access)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 429);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("7")
    );
    let (status, _) = get_json(&fake, &access, "/kode/v1/products?municipality=0301").await;
    assert_eq!(status, 200);
}
