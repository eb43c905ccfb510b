//! The KODE API client: OAuth tokens, orders, products, prices, downloads.

mod auth;
mod client;
mod download;
mod error;
pub(crate) mod hosts;
mod http;
mod retry;
mod token;

use std::time::Duration;

use url::Url;

use crate::secret::Secret;

pub use client::{CreatedOrder, KodeClient};
pub use download::Download;
pub use error::ApiError;
pub use token::{Scopes, TokenResponse};

/// The beta ("test") environment every KODE example uses.
pub const DEFAULT_API_URL: &str = "https://beta-api.ambita.com";
/// The token endpoint, relative to the API URL.
pub const TOKEN_PATH: &str = "authentication/v2/token";
/// Default cap on one downloaded file.
pub const DEFAULT_MAX_ASSET_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// The KODE API user: a client (id + secret) and a user (name + password).
#[derive(Debug, Clone)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: Secret,
    pub username: String,
    pub password: Secret,
}

/// How the token request body is encoded. KODE's pages disagree; form
/// encoding is standard OAuth 2 and accepted per every edition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TokenEncoding {
    #[default]
    Form,
    Json,
}

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub api_url: Url,
    /// The token endpoint itself.
    pub auth_url: Url,
    pub credentials: Credentials,
    /// Extra hosts the token may be sent to: `host` (https on port 443) or
    /// `scheme://host[:port]`, http only beside an http `api_url`; the API
    /// and token URLs' own origins always are.
    pub download_hosts: Vec<String>,
    pub max_asset_bytes: u64,
    pub token_encoding: TokenEncoding,
    /// Per attempt: connect plus response headers (and the gap between two
    /// body chunks of a download).
    pub request_timeout: Duration,
}

impl ApiConfig {
    /// Defaults for everything else: token URL under the API URL, no extra
    /// hosts, 2 GiB cap, form encoding, 30 s per attempt.
    pub fn new(api_url: Url, credentials: Credentials) -> ApiConfig {
        let auth_url = default_auth_url(&api_url);
        ApiConfig {
            api_url,
            auth_url,
            credentials,
            download_hosts: Vec::new(),
            max_asset_bytes: DEFAULT_MAX_ASSET_BYTES,
            token_encoding: TokenEncoding::Form,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// `<api_url>/authentication/v2/token`, keeping any path prefix of the API URL.
pub fn default_auth_url(api_url: &Url) -> Url {
    join(api_url, TOKEN_PATH)
}

/// Joins a path below `base`, keeping the base's own path as a prefix.
fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let prefix = base.path().trim_end_matches('/');
    url.set_path(&format!("{prefix}/{}", path.trim_start_matches('/')));
    url
}

/// What a token grants; the token itself is never handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub scopes: Vec<String>,
    /// The token's lifetime as KODE granted it (`expires_in`), or the
    /// documented 3600 s when KODE sent none.
    pub lifetime: Duration,
    /// KODE sent no `expires_in`, so `lifetime` is the assumed default.
    pub lifetime_assumed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_url_defaults_below_the_api_url() {
        let plain = Url::parse("https://beta-api.ambita.com").unwrap();
        assert_eq!(
            default_auth_url(&plain).as_str(),
            "https://beta-api.ambita.com/authentication/v2/token"
        );
        let prefixed = Url::parse("http://127.0.0.1:8099/gw/").unwrap();
        assert_eq!(
            default_auth_url(&prefixed).as_str(),
            "http://127.0.0.1:8099/gw/authentication/v2/token"
        );
    }
}
