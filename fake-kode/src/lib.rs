//! A scriptable fake of Ambita's KODE API (docs/kode-api.md), for tests and
//! `kode demo`. It renders KODE's JSON with `serde_json` on its own, not with
//! the `kode` crate's model, so tests check that model against an independent
//! rendering.

mod content;
mod create;
mod recorder;
mod render;
mod routes;
pub mod samples;
mod server;
mod spec;
mod state;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;

pub use content::AssetContent;
pub use recorder::{RecordedRequest, Recorder, RECORDER_BODY};
pub use spec::{AssetSpec, Edition, Endpoint, FakeCredentials, LineSpec, OrderSpec, SubOrderSpec};

use server::Running;
use state::{Fault, Inner, State};

/// The running fake. One handle per server; dropping it stops the server.
///
/// Scripting methods panic when a test refers to an order or asset it never
/// added: that is a bug in the test, and should fail it loudly.
pub struct FakeKode {
    state: Arc<State>,
    server: Running,
    http: reqwest::Client,
}

impl FakeKode {
    /// Binds 127.0.0.1:0 and serves in a background tokio task.
    pub async fn start() -> FakeKode {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        FakeKode::start_on(addr)
            .await
            .unwrap_or_else(|e| panic!("fake-kode cannot listen on {addr}: {e}"))
    }

    pub async fn start_on(addr: SocketAddr) -> std::io::Result<FakeKode> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::new(format!("http://{addr}")));
        let server = Running::start(listener, routes::router(state.clone()))?;
        let http = reqwest::Client::builder()
            .build()
            .map_err(std::io::Error::other)?;
        Ok(FakeKode {
            state,
            server,
            http,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// `http://127.0.0.1:PORT`: the KODE API base URL.
    pub fn base_url(&self) -> String {
        self.state.base_url.clone()
    }

    pub fn token_url(&self) -> String {
        format!("{}/authentication/v2/token", self.state.base_url)
    }

    /// The credentials the token endpoint accepts.
    pub fn credentials(&self) -> FakeCredentials {
        self.state.credentials.clone()
    }

    /// Graceful stop: open requests get a few seconds to finish.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }

    // ---- orders and assets ----

    /// Adds the order, replacing one with the same id.
    pub fn add_order(&self, order: OrderSpec) {
        self.state.lock().orders.insert(order.id, order);
    }

    /// Adds a file to a sub-order, or to one of its lines with `line_id`.
    pub fn add_asset(
        &self,
        order_id: u64,
        sub_order_id: u64,
        line_id: Option<u64>,
        asset: AssetSpec,
    ) {
        let mut inner = self.state.lock();
        let sub = inner
            .orders
            .get_mut(&order_id)
            .and_then(|o| o.sub_orders.iter_mut().find(|s| s.id == sub_order_id))
            .unwrap_or_else(|| {
                panic!("fake-kode: no sub-order {sub_order_id} in order {order_id}")
            });
        match line_id {
            None => sub.assets.push(asset),
            Some(line_id) => sub
                .lines
                .iter_mut()
                .find(|l| l.id == line_id)
                .unwrap_or_else(|| {
                    panic!("fake-kode: no line {line_id} in sub-order {sub_order_id}")
                })
                .assets
                .push(asset),
        }
    }

    /// `"OK"`, `"DELETED"`, or anything else a test wants to see handled.
    pub fn set_asset_status(&self, asset_id: &str, status: &str) {
        let mut inner = self.state.lock();
        let asset = inner
            .orders
            .values_mut()
            .flat_map(|o| o.assets_mut())
            .find(|a| a.id == asset_id)
            .unwrap_or_else(|| panic!("fake-kode: no asset {asset_id}"));
        asset.status = status.into();
    }

    pub fn set_order_status(&self, order_id: u64, status: &str) {
        let mut inner = self.state.lock();
        let order = inner
            .orders
            .get_mut(&order_id)
            .unwrap_or_else(|| panic!("fake-kode: no order {order_id}"));
        order.status = status.into();
    }

    pub fn set_edition(&self, edition: Edition) {
        self.state.lock().edition = edition;
    }

    /// The `downloadUrl` the fake renders for an asset.
    pub fn asset_download_url(&self, asset_id: &str) -> String {
        self.state
            .lock()
            .download_urls
            .get(asset_id)
            .cloned()
            .unwrap_or_else(|| self.state.default_download_url(asset_id))
    }

    /// Renders `url` as the asset's `downloadUrl`, e.g. one on a foreign host.
    pub fn set_asset_download_url(&self, asset_id: &str, url: &str) {
        self.state
            .lock()
            .download_urls
            .insert(asset_id.into(), url.into());
    }

    // ---- faults ----

    /// The next `count` requests to `endpoint` get `status` with a JSON body.
    pub fn fail_next(&self, endpoint: Endpoint, count: u32, status: u16) {
        self.push_faults(endpoint, count, Fault::Status(status));
    }

    /// The next `count` requests to `endpoint` get 429 with `Retry-After`.
    pub fn rate_limit_next(&self, endpoint: Endpoint, count: u32, retry_after_secs: u64) {
        self.push_faults(endpoint, count, Fault::RateLimit { retry_after_secs });
    }

    fn push_faults(&self, endpoint: Endpoint, count: u32, fault: Fault) {
        let mut inner = self.state.lock();
        let queue = inner.faults.entry(endpoint).or_default();
        queue.extend(std::iter::repeat_n(fault, count as usize));
    }

    /// Every access token issued so far now gets 401; refresh tokens stay valid.
    pub fn expire_tokens(&self) {
        self.state.lock().access_tokens.clear();
    }

    /// `expires_in` of tokens issued from now on (default 3600); the fake
    /// also rejects them once that time has passed.
    pub fn set_token_lifetime(&self, secs: u64) {
        self.state.lock().token_lifetime_secs = secs;
    }

    /// While on, token answers leave out `expires_in` (the documentation
    /// shows it, but a client must not depend on it).
    pub fn omit_token_lifetime(&self, on: bool) {
        self.state.lock().omit_token_lifetime = on;
    }

    /// While on, the refresh grant answers 400 `invalid_grant`.
    pub fn reject_refresh_tokens(&self, on: bool) {
        self.state.lock().reject_refresh = on;
    }

    /// The asset's body goes out in 8 KiB chunks with `chunk_delay` between.
    pub fn slow_asset(&self, asset_id: &str, chunk_delay: Duration) {
        self.state.lock().slow.insert(asset_id.into(), chunk_delay);
    }

    /// Content-Length announces the full size, but the connection is
    /// aborted after `after_bytes`.
    pub fn truncate_asset(&self, asset_id: &str, after_bytes: u64) {
        self.state
            .lock()
            .truncate
            .insert(asset_id.into(), after_bytes);
    }

    /// Downloads of the asset answer 302 with this `Location`.
    pub fn redirect_asset(&self, asset_id: &str, location: &str) {
        self.state
            .lock()
            .redirect
            .insert(asset_id.into(), location.into());
    }

    /// While down, every endpoint (the token endpoint too) answers 503.
    pub fn set_down(&self, down: bool) {
        self.state.lock().down = down;
    }

    // ---- observation ----

    /// Requests received by `endpoint`, whatever they were answered.
    pub fn requests(&self, endpoint: Endpoint) -> u32 {
        self.read(|i| i.requests.get(&endpoint).copied().unwrap_or(0))
    }

    /// Downloads of the asset that got a 200 and a body started (truncated
    /// ones included; redirects, errors and 404s not).
    pub fn asset_downloads(&self, asset_id: &str) -> u32 {
        self.read(|i| i.downloads.get(asset_id).copied().unwrap_or(0))
    }

    /// Token requests with that `grant_type` (`"password"`, `"refresh_token"`),
    /// counted on receipt, whatever they were answered.
    pub fn grants(&self, grant_type: &str) -> u32 {
        self.read(|i| i.grants.get(grant_type).copied().unwrap_or(0))
    }

    /// Accepted create-order requests: (kind, JSON body), oldest first.
    pub fn created_orders(&self) -> Vec<(String, Value)> {
        self.read(|i| i.created_orders.clone())
    }

    /// Accepted price requests: (kind, JSON body), oldest first.
    pub fn price_requests(&self) -> Vec<(String, Value)> {
        self.read(|i| i.price_requests.clone())
    }

    fn read<T>(&self, f: impl FnOnce(&Inner) -> T) -> T {
        f(&self.state.lock())
    }

    // ---- pushes ----

    /// POSTs `body` as JSON to `callback_url` (which may carry ?token=...).
    /// Returns the HTTP status and response body.
    pub async fn push(&self, callback_url: &str, body: &Value) -> Result<(u16, String), String> {
        let response = self
            .http
            .post(callback_url)
            .json(body)
            .send()
            .await
            .map_err(|e| format!("push to callback failed: {}", e.without_url()))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| format!("reading the callback's answer failed: {}", e.without_url()))?;
        Ok((status, text))
    }
}
