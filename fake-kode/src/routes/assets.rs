//! `GET /shopping/v2/assets/{id}`: streamed bodies, with scripted redirects,
//! slowness and truncation.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State as AxState};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{gate, message};
use crate::spec::Endpoint;
use crate::state::State;

pub(super) async fn download(
    AxState(state): AxState<Arc<State>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(response) = gate(&state, Endpoint::Asset, &headers) {
        return response;
    }
    let mut inner = state.lock();
    if let Some(location) = inner.redirect.get(&id) {
        return match HeaderValue::from_str(location) {
            Ok(v) => (StatusCode::FOUND, [(header::LOCATION, v)]).into_response(),
            Err(_) => message(StatusCode::INTERNAL_SERVER_ERROR, "Bad redirect location"),
        };
    }
    // A withdrawn file is gone from the store.
    let Some(asset) = inner.find_asset(&id).filter(|a| a.status != "DELETED") else {
        return message(StatusCode::NOT_FOUND, &format!("Asset {id} not found"));
    };
    let content = asset.content.clone();
    let content_type = content_type(&asset.filename, &asset.name);
    let stop_after = inner.truncate.get(&id).copied();
    let delay = inner.slow.get(&id).copied();
    *inner.downloads.entry(id).or_default() += 1;
    drop(inner);

    let len = content.len();
    let body = Body::from_stream(content.stream(stop_after, delay));
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // Announced even for truncated bodies: the client must notice
            // the shortfall.
            (header::CONTENT_LENGTH, HeaderValue::from(len)),
        ],
        body,
    )
        .into_response()
}

/// From the file extension, like a plain file server would.
pub(crate) fn content_type(filename: &str, name: &str) -> &'static str {
    let file = if filename.contains('.') {
        filename
    } else {
        name
    };
    let ext = file
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "pdf" => "application/pdf",
        "txt" => "text/plain; charset=utf-8",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "xls" => "application/vnd.ms-excel",
        "csv" => "text/csv",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "tif" | "tiff" => "image/tiff",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::content_type;

    #[test]
    fn content_type_follows_the_extension() {
        assert_eq!(content_type("a.PDF", ""), "application/pdf");
        assert_eq!(content_type("kart.png", ""), "image/png");
        assert_eq!(content_type("noext", "x.csv"), "text/csv");
        assert_eq!(content_type("data.sos", ""), "application/octet-stream");
    }
}
