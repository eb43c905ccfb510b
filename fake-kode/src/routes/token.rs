//! `POST /authentication/v2/token`: password and refresh-token grants, form
//! encoded or JSON, with refresh-token rotation.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::gate;
use crate::spec::Endpoint;
use crate::state::State;

pub(super) async fn token(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = parse_params(&headers, &body);
    let grant_type = params.get("grant_type").cloned().unwrap_or_default();
    *state.lock().grants.entry(grant_type.clone()).or_default() += 1;
    if let Some(response) = gate(&state, Endpoint::Token, &headers) {
        return response;
    }
    let creds = &state.credentials;
    let param = |k: &str| params.get(k).map(String::as_str);
    let client_ok = param("client_id") == Some(creds.client_id.as_str())
        && param("client_secret") == Some(creds.client_secret.as_str());
    let mut inner = state.lock();
    match grant_type.as_str() {
        "password" => {
            let user_ok = param("username") == Some(creds.username.as_str())
                && param("password") == Some(creds.password.as_str());
            if !(client_ok && user_ok) {
                return oauth_error(StatusCode::UNAUTHORIZED, "Bad credentials");
            }
        }
        "refresh_token" => {
            if inner.reject_refresh {
                return oauth_error(StatusCode::BAD_REQUEST, "Refresh token rejected");
            }
            if !client_ok {
                return oauth_error(StatusCode::UNAUTHORIZED, "Bad client credentials");
            }
            // Rotation: a refresh token works once.
            let known = param("refresh_token").is_some_and(|t| inner.refresh_tokens.remove(t));
            if !known {
                return oauth_error(StatusCode::BAD_REQUEST, "Invalid refresh token");
            }
        }
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({
                    "error": "unsupported_grant_type",
                    "error_description": "Unsupported grant type",
                })),
            )
                .into_response()
        }
    }
    let (access, refresh, expires_in) = inner.issue_tokens();
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "refresh_token": refresh,
        "scope": ["kode.order.write", "kode.order.read", "kode.product.read", "kode.price.read"],
    });
    if inner.omit_token_lifetime {
        body.as_object_mut()
            .expect("an object")
            .remove("expires_in");
    }
    Json(body).into_response()
}

fn oauth_error(status: StatusCode, description: &str) -> Response {
    (
        status,
        Json(json!({ "error": "invalid_grant", "error_description": description })),
    )
        .into_response()
}

/// JSON when the request says so, form encoding otherwise (KODE accepts
/// both; form is the OAuth default).
fn parse_params(headers: &HeaderMap, body: &[u8]) -> HashMap<String, String> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
            return HashMap::new();
        };
        map.into_iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned())))
            .collect()
    } else {
        url::form_urlencoded::parse(body).into_owned().collect()
    }
}
