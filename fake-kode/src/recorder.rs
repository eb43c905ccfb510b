//! The "foreign host" of off-host tests: records every request and answers
//! 200, so a test can prove what (not) reached it.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{Request, State};
use axum::Router;
use tokio::net::TcpListener;

use crate::server::Running;

/// One request as the recorder saw it. Header names are lower case.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl RecordedRequest {
    /// The first value of a header (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Log = Arc<Mutex<Vec<RecordedRequest>>>;

/// A tiny HTTP server recording every request it gets; stops on drop.
pub struct Recorder {
    server: Running,
    log: Log,
}

/// The body every recorded request gets back.
pub const RECORDER_BODY: &str = "recorded by fake-kode";

impl Recorder {
    /// Listens on 127.0.0.1 on a free port.
    pub async fn start() -> Recorder {
        let log = Log::default();
        let router = Router::new().fallback(record).with_state(log.clone());
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let server = async { Running::start(TcpListener::bind(addr).await?, router) }
            .await
            .unwrap_or_else(|e| panic!("fake-kode recorder cannot listen on 127.0.0.1: {e}"));
        Recorder { server, log }
    }

    /// `http://127.0.0.1:PORT` followed by `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.addr)
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

async fn record(State(log): State<Log>, request: Request) -> &'static str {
    let headers = request
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    log.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(RecordedRequest {
            method: request.method().as_str().to_owned(),
            path: request.uri().path().to_owned(),
            headers,
        });
    RECORDER_BODY
}
