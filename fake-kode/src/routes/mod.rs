//! The HTTP surface: KODE's paths, and the gate every request passes first
//! (counting, outage, injected faults, bearer check).

mod assets;
mod kode;
mod token;

use std::sync::Arc;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::spec::Endpoint;
use crate::state::{Fault, State};

pub(crate) fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/authentication/v2/token", post(token::token))
        .route(
            "/kode/v1/orders/{id}",
            get(kode::get_order).post(kode::create_order),
        )
        .route("/kode/v1/products", get(kode::products))
        .route("/kode/v1/prices/{kind}", post(kode::prices))
        .route("/shopping/v2/assets/{id}", get(assets::download))
        .fallback(|| async { message(StatusCode::NOT_FOUND, "No such endpoint") })
        .with_state(state)
}

/// KODE's (undocumented, assumed) error body: `{"message": ...}`.
pub(crate) fn message(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({ "message": text }))).into_response()
}

/// Counts the request, then answers in its place when the server is down or
/// a fault is scripted for this endpoint, then checks the bearer token
/// (except on the token endpoint). `None` means: serve normally.
pub(crate) fn gate(state: &State, endpoint: Endpoint, headers: &HeaderMap) -> Option<Response> {
    let mut inner = state.lock();
    *inner.requests.entry(endpoint).or_default() += 1;
    if inner.down {
        return Some(message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service unavailable",
        ));
    }
    if let Some(fault) = inner.faults.get_mut(&endpoint).and_then(|q| q.pop_front()) {
        return Some(fault_response(fault));
    }
    if endpoint == Endpoint::Token {
        return None;
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match token {
        Some(t) if inner.access_token_valid(t) => None,
        _ => {
            let mut response = message(StatusCode::UNAUTHORIZED, "Unauthorized");
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            Some(response)
        }
    }
}

fn fault_response(fault: Fault) -> Response {
    match fault {
        Fault::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (
                status,
                Json(json!({ "message": "Injected failure", "status": status.as_u16() })),
            )
                .into_response()
        }
        Fault::RateLimit { retry_after_secs } => {
            let mut response = message(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            response
        }
    }
}
