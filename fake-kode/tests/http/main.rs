//! The fake over real HTTP on 127.0.0.1, as a client sees it.

mod assets;
mod auth;
mod faults;
mod orders;

use fake_kode::FakeKode;
use serde_json::Value;

/// A password grant with the fake's credentials; returns the access token.
async fn token(fake: &FakeKode) -> String {
    let body = grant(fake).await;
    body["access_token"].as_str().unwrap_or_default().to_owned()
}

/// The full token response of a form-encoded password grant.
async fn grant(fake: &FakeKode) -> Value {
    let c = fake.credentials();
    let response = reqwest::Client::new()
        .post(fake.token_url())
        .form(&[
            ("grant_type", "password"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.client_secret.as_str()),
            ("username", c.username.as_str()),
            ("password", c.password.as_str()),
        ])
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), 200);
    response.json().await.expect("token JSON")
}

/// GET `path` with the bearer token; returns status and JSON (Null if none).
async fn get_json(fake: &FakeKode, token: &str, path: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", fake.base_url()))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// POST JSON to `path` with the bearer token; returns status and JSON.
async fn post_json(fake: &FakeKode, token: &str, path: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", fake.base_url()))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}
