//! The fake's token endpoint: grants, rotation, expiry and refused credentials.

use fake_kode::{Endpoint, FakeKode};
use serde_json::{json, Value};

use crate::{get_json, grant, token};

async fn refresh(fake: &FakeKode, refresh_token: &str) -> (u16, Value) {
    let c = fake.credentials();
    let response = reqwest::Client::new()
        .post(fake.token_url())
        .json(&json!({
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": c.client_id,
            "client_secret": c.client_secret,
        }))
        .send()
        .await
        .expect("refresh request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn password_grant_gives_a_bearer_token_the_api_requires() {
    let fake = FakeKode::start().await;
    let (status, _) = get_json(&fake, "not-a-token", "/kode/v1/products?municipality=9999").await;
    assert_eq!(status, 401);

    let body = grant(&fake).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert!(body["refresh_token"].is_string());
    assert!(body["scope"].as_array().is_some_and(|s| !s.is_empty()));
    let access = body["access_token"].as_str().unwrap_or_default();
    let (status, products) = get_json(&fake, access, "/kode/v1/products?municipality=9999").await;
    assert_eq!(status, 200);
    assert_eq!(products[0]["code"], "WI99990033");
    assert_eq!(fake.grants("password"), 1);
    assert_eq!(fake.requests(Endpoint::Token), 1);
    assert_eq!(fake.requests(Endpoint::Products), 2);
}

#[tokio::test]
async fn wrong_password_gets_401_invalid_grant() {
    let fake = FakeKode::start().await;
    let c = fake.credentials();
    let response = reqwest::Client::new()
        .post(fake.token_url())
        .json(&json!({
            "grant_type": "password", "client_id": c.client_id, "client_secret": c.client_secret,
            "username": c.username, "password": "wrong",
        }))
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.expect("error JSON");
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn refresh_token_rotates_and_works_once() {
    let fake = FakeKode::start().await;
    let first = grant(&fake).await;
    let old_refresh = first["refresh_token"].as_str().unwrap_or_default();

    let (status, second) = refresh(&fake, old_refresh).await;
    assert_eq!(status, 200);
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    let (status, _) = refresh(&fake, old_refresh).await;
    assert_eq!(status, 400);
    assert_eq!(fake.grants("refresh_token"), 2);

    fake.reject_refresh_tokens(true);
    let newest = second["refresh_token"].as_str().unwrap_or_default();
    let (status, body) = refresh(&fake, newest).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn expired_tokens_get_401_and_refresh_still_works() {
    let fake = FakeKode::start().await;
    let body = grant(&fake).await;
    let access = body["access_token"].as_str().unwrap_or_default();
    fake.expire_tokens();
    let (status, _) = get_json(&fake, access, "/kode/v1/orders/1").await;
    assert_eq!(status, 401);

    let (status, renewed) =
        refresh(&fake, body["refresh_token"].as_str().unwrap_or_default()).await;
    assert_eq!(status, 200);
    let (status, _) = get_json(
        &fake,
        renewed["access_token"].as_str().unwrap_or_default(),
        "/kode/v1/orders/1",
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_token_outlives_its_lifetime_by_nothing() {
    let fake = FakeKode::start().await;
    fake.set_token_lifetime(0);
    let body = grant(&fake).await;
    assert_eq!(body["expires_in"], 0);
    let (status, _) = get_json(
        &fake,
        body["access_token"].as_str().unwrap_or_default(),
        "/kode/v1/orders/1",
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn down_server_answers_503_everywhere_until_up() {
    let fake = FakeKode::start().await;
    let access = token(&fake).await;
    fake.set_down(true);
    let response = reqwest::Client::new()
        .post(fake.token_url())
        .form(&[("grant_type", "password")])
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), 503);
    let (status, _) = get_json(&fake, &access, "/kode/v1/orders/1").await;
    assert_eq!(status, 503);
    fake.set_down(false);
    let (status, _) = get_json(&fake, &access, "/kode/v1/orders/1").await;
    assert_eq!(status, 404);
}
