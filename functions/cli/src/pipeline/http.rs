//! The HTTP face of the local pipeline: every request to `/push` or
//! `/healthz` becomes an [`IntakeRequest`] for the webhook's own [`Intake`],
//! so `kode serve` answers exactly as the Lambda does.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{ALLOW, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use futures_util::StreamExt;
use kode::intake::{query_pairs, Intake, IntakeRequest, IntakeResponse, RequestId, MAX_BODY_BYTES};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tracing::error;

/// Serves until `stop` fires (or its sender is dropped), then lets open
/// requests finish.
pub(super) async fn serve(listener: TcpListener, intake: Arc<Intake>, stop: oneshot::Receiver<()>) {
    let app = Router::new()
        .route("/push", any(handle))
        .route("/healthz", any(handle))
        .with_state(intake);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async {
            // A dropped sender means stop as well.
            let _ = stop.await;
        })
        .await;
    if let Err(e) = result {
        error!(action = "http_failed", error = %e, "the push listener stopped");
    }
}

async fn handle(State(intake): State<Arc<Intake>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match read_capped(body, MAX_BODY_BYTES + 1).await {
        Ok(body) => body,
        Err(e) => {
            let message = format!("could not read the request body: {e}");
            return respond(IntakeResponse {
                status: StatusCode::BAD_REQUEST,
                body: serde_json::json!({ "error": message }),
                allow: None,
            });
        }
    };
    let request = IntakeRequest {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(query_pairs).unwrap_or_default(),
        headers: parts.headers,
        body,
        request_id: RequestId::fresh(),
    };
    respond(intake.handle(&request).await.response)
}

/// Reads at most `cap` bytes. A longer body is cut at `cap`, which is enough
/// for the intake to answer 413 without holding an unbounded body in memory.
async fn read_capped(body: Body, cap: usize) -> Result<Bytes, axum::Error> {
    let mut stream = body.into_data_stream();
    let mut buffer = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        let room = cap - buffer.len();
        buffer.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buffer.len() == cap {
            break;
        }
    }
    Ok(Bytes::from(buffer))
}

fn respond(response: IntakeResponse) -> Response {
    let mut http = (response.status, response.body_string()).into_response();
    let headers = http.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(IntakeResponse::CONTENT_TYPE),
    );
    if let Some(allow) = response.allow {
        headers.insert(ALLOW, HeaderValue::from_static(allow));
    }
    http
}
