//! `/kode/v1/...`: get and create orders, products, prices.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{gate, message};
use crate::create::{build_order, known_kind, validate_create, validate_products};
use crate::render;
use crate::samples::{find_product, gross, products as catalogue};
use crate::spec::Endpoint;
use crate::state::State;

pub(super) async fn get_order(
    AxState(state): AxState<Arc<State>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(response) = gate(&state, Endpoint::GetOrder, &headers) {
        return response;
    }
    let inner = state.lock();
    match id.parse::<u64>().ok().and_then(|n| inner.orders.get(&n)) {
        Some(order) => Json(render::order(order, inner.edition, &|a| {
            download_url(&state, &inner.download_urls, a)
        }))
        .into_response(),
        None => message(StatusCode::NOT_FOUND, &format!("Order {id} not found")),
    }
}

pub(super) async fn create_order(
    AxState(state): AxState<Arc<State>>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(response) = gate(&state, Endpoint::CreateOrder, &headers) {
        return response;
    }
    if !known_kind(&kind) {
        return message(StatusCode::NOT_FOUND, &format!("Unknown order type {kind}"));
    }
    let body = match serde_json::from_slice::<Value>(&body) {
        Ok(v) => v,
        Err(_) => return message(StatusCode::BAD_REQUEST, "Request body is not valid JSON"),
    };
    let request = match validate_create(&kind, &body) {
        Ok(r) => r,
        Err(e) => return message(StatusCode::BAD_REQUEST, &e),
    };
    let mut inner = state.lock();
    let order = build_order(request, || inner.allocate_id());
    inner.created_orders.push((kind, body));
    let rendered = render::order(&order, inner.edition, &|a| {
        download_url(&state, &inner.download_urls, a)
    });
    inner.orders.insert(order.id, order);
    Json(rendered).into_response()
}

pub(super) async fn products(
    AxState(state): AxState<Arc<State>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(response) = gate(&state, Endpoint::Products, &headers) {
        return response;
    }
    match query.get("municipality") {
        Some(m) if m.len() == 4 && m.bytes().all(|b| b.is_ascii_digit()) => {
            Json(catalogue(m)).into_response()
        }
        _ => message(
            StatusCode::BAD_REQUEST,
            "municipality must be a 4-digit municipality number",
        ),
    }
}

pub(super) async fn prices(
    AxState(state): AxState<Arc<State>>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(response) = gate(&state, Endpoint::Prices, &headers) {
        return response;
    }
    if !known_kind(&kind) {
        return message(StatusCode::NOT_FOUND, &format!("Unknown price type {kind}"));
    }
    let body = match serde_json::from_slice::<Value>(&body) {
        Ok(v) => v,
        Err(_) => return message(StatusCode::BAD_REQUEST, "Request body is not valid JSON"),
    };
    let codes = match validate_products(&body) {
        Ok(c) => c,
        Err(e) => return message(StatusCode::BAD_REQUEST, &e),
    };
    state.lock().price_requests.push((kind, body));
    let lines: Vec<(String, f64)> = codes
        .into_iter()
        .map(|c| {
            let net = find_product(&c).map_or(0.0, |p| p.net);
            (c, net)
        })
        .collect();
    let total: f64 = lines.iter().map(|(_, n)| n).sum();
    let products: Vec<Value> = lines
        .into_iter()
        .map(|(code, net)| json!({ "code": code, "priceNet": net, "priceVat": gross(net) }))
        .collect();
    Json(json!({ "products": products, "priceNet": total, "priceVat": gross(total) }))
        .into_response()
}

fn download_url(state: &State, overrides: &HashMap<String, String>, asset_id: &str) -> String {
    overrides
        .get(asset_id)
        .cloned()
        .unwrap_or_else(|| state.default_download_url(asset_id))
}
