//! `KodeClient`: one per cold start, cheap to clone.

use std::sync::Arc;

use reqwest::header::{HeaderValue, ACCEPT};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::deadline::Deadline;
use crate::model::{MunicipalityNumber, Order, OrderId, OrderKind, Product};
use crate::secret::Secret;

use super::auth::{AccessToken, Auth, DEFAULT_LIFETIME};
use super::download::{redirect_target, Download, MAX_REDIRECTS};
use super::hosts::{host_of, origin_of, AllowedHosts};
use super::retry::{Idempotency, RetryPolicy};
use super::{http, join, ApiConfig, ApiError, TokenInfo};

/// A created order: parsed, and as KODE sent it (its id is the only way to
/// find the order again, so callers may want to keep the raw answer).
#[derive(Debug, Clone)]
pub struct CreatedOrder {
    pub order: Order,
    pub raw: serde_json::Value,
}

#[derive(Clone)]
pub struct KodeClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    config: ApiConfig,
    hosts: AllowedHosts,
    auth: Auth,
    policy: RetryPolicy,
}

impl std::fmt::Debug for KodeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KodeClient")
            .field("api_url", &self.inner.config.api_url.as_str())
            .field("allowed_hosts", &self.inner.hosts.describe())
            .finish_non_exhaustive()
    }
}

/// A request body, serialised once and replayed on retries.
struct Body {
    json: bytes::Bytes,
}

impl KodeClient {
    pub fn new(config: ApiConfig) -> Result<KodeClient, ApiError> {
        for (name, url) in [
            ("API URL", &config.api_url),
            ("token URL", &config.auth_url),
        ] {
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(ApiError::Invalid(format!(
                    "KODE {name} {url} is not an http(s) URL"
                )));
            }
        }
        if config.max_asset_bytes == 0 {
            return Err(ApiError::Invalid(
                "the maximum asset size must be above 0".into(),
            ));
        }
        let hosts = AllowedHosts::new(&config.api_url, &config.auth_url, &config.download_hosts)?;
        let http = reqwest::Client::builder()
            // Redirects are followed by hand (see `download`) so that the
            // token is attached per hop, only for allowed hosts.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.request_timeout)
            // Backstop for any read that the per-call timeouts do not cover.
            .read_timeout(config.request_timeout)
            .user_agent(concat!("kode-push/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiError::Invalid(format!("cannot build the HTTP client: {e}")))?;
        Ok(KodeClient {
            inner: Arc::new(Inner {
                http,
                config,
                hosts,
                auth: Auth::new(),
                policy: RetryPolicy::default(),
            }),
        })
    }

    /// Obtains (or reuses) a token; returns its scopes and lifetime, never
    /// the token.
    pub async fn token_info(&self, deadline: Deadline) -> Result<TokenInfo, ApiError> {
        let token = self.token(deadline).await?;
        Ok(TokenInfo {
            scopes: token.scopes.clone(),
            lifetime: token.granted_lifetime.unwrap_or(DEFAULT_LIFETIME),
            lifetime_assumed: token.granted_lifetime.is_none(),
        })
    }

    pub async fn get_order(&self, id: OrderId, deadline: Deadline) -> Result<Order, ApiError> {
        let url = self.endpoint(&format!("kode/v1/orders/{id}"));
        self.call_json(
            &format!("order {id}"),
            Method::GET,
            url,
            None,
            Idempotency::Safe,
            deadline,
        )
        .await
    }

    pub async fn products(
        &self,
        municipality: &MunicipalityNumber,
        deadline: Deadline,
    ) -> Result<Vec<Product>, ApiError> {
        let mut url = self.endpoint("kode/v1/products");
        url.query_pairs_mut()
            .append_pair("municipality", municipality.as_str());
        let what = format!("products of municipality {municipality}");
        self.call_json(&what, Method::GET, url, None, Idempotency::Safe, deadline)
            .await
    }

    /// POST /kode/v1/prices/{kind}; body is the caller's (already validated) request.
    pub async fn price<B: Serialize + Sync>(
        &self,
        kind: OrderKind,
        body: &B,
        deadline: Deadline,
    ) -> Result<serde_json::Value, ApiError> {
        let url = self.endpoint(&format!("kode/v1/prices/{}", kind.path_segment()));
        let body = encode(body)?;
        // A price query changes nothing, so it is retried like a read.
        self.call_json(
            &format!("{kind} price"),
            Method::POST,
            url,
            Some(&body),
            Idempotency::Safe,
            deadline,
        )
        .await
    }

    /// POST /kode/v1/orders/{kind}; returns the created order collection.
    /// Retried only when KODE cannot have received it: ordering is billed.
    pub async fn create_order<B: Serialize + Sync>(
        &self,
        kind: OrderKind,
        body: &B,
        deadline: Deadline,
    ) -> Result<CreatedOrder, ApiError> {
        let url = self.endpoint(&format!("kode/v1/orders/{}", kind.path_segment()));
        let body = encode(body)?;
        let what = format!("create {kind} order");
        let raw: serde_json::Value = self
            .call_json(
                &what,
                Method::POST,
                url,
                Some(&body),
                Idempotency::Unsafe,
                deadline,
            )
            .await?;
        let order = Order::deserialize(&raw).map_err(|e| ApiError::Decode {
            what,
            message: e.to_string(),
        })?;
        tracing::info!(action = "order_created", orderId = order.id.0, kind = %kind, "KODE order created");
        Ok(CreatedOrder { order, raw })
    }

    /// GET any KODE path relative to api_url, JSON (for `--json` output).
    pub async fn get_json(
        &self,
        path_and_query: &str,
        deadline: Deadline,
    ) -> Result<serde_json::Value, ApiError> {
        if !path_and_query.starts_with('/')
            || path_and_query.starts_with("//")
            || path_and_query.contains('#')
        {
            return Err(ApiError::Invalid(format!(
                "{path_and_query:?} is not a KODE path (expected /kode/v1/...)"
            )));
        }
        let (path, query) = match path_and_query.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path_and_query, None),
        };
        let mut url = self.endpoint(path);
        url.set_query(query);
        self.call_json(path, Method::GET, url, None, Idempotency::Safe, deadline)
            .await
    }

    /// Starts a streaming download (retrying transient failures until headers arrive).
    /// Refuses URLs whose host is not allowed (ApiError::ForeignHost) before any request.
    pub async fn download(&self, url: &str, deadline: Deadline) -> Result<Download, ApiError> {
        let url =
            Url::parse(url).map_err(|e| ApiError::Invalid(format!("bad download URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ApiError::Invalid(format!(
                "download URL scheme {} is not http(s)",
                url.scheme()
            )));
        }
        if !self.inner.hosts.allows(&url) {
            let error = ApiError::ForeignHost {
                host: origin_of(&url),
                allowed: self.inner.hosts.describe(),
            };
            tracing::warn!(action = "download_refused", host = %origin_of(&url), "download URL on a foreign host refused");
            return Err(error);
        }
        let what = format!("download from {}{}", host_of(&url), url.path());
        let response = self
            .with_token(deadline, |token| {
                let inner = &self.inner;
                let url = url.clone();
                let what = what.clone();
                async move {
                    inner
                        .policy
                        .run(&what, deadline, Idempotency::Safe, || {
                            inner.fetch_following(&what, &url, &token, deadline)
                        })
                        .await
                }
            })
            .await?;
        let config = &self.inner.config;
        Download::start(
            what,
            response,
            config.max_asset_bytes,
            config.request_timeout,
            deadline,
        )
    }

    fn endpoint(&self, path: &str) -> Url {
        join(&self.inner.config.api_url, path)
    }

    async fn token(&self, deadline: Deadline) -> Result<AccessToken, ApiError> {
        let inner = &self.inner;
        inner
            .auth
            .token(&inner.http, &inner.config, &inner.policy, deadline)
            .await
    }

    /// Runs `call` with a token; on a 401 the token is dropped, a new one
    /// obtained, and `call` repeated once.
    async fn with_token<T, F, Fut>(&self, deadline: Deadline, mut call: F) -> Result<T, ApiError>
    where
        F: FnMut(AccessToken) -> Fut,
        Fut: std::future::Future<Output = Result<T, ApiError>>,
    {
        let token = self.token(deadline).await?;
        let generation = token.generation;
        match call(token).await {
            Err(ApiError::Status {
                status: 401,
                message,
                ..
            }) => {
                tracing::info!(action = "token_rejected", kode_message = %message, "KODE answered 401; re-authenticating once");
                self.inner.auth.reject(generation).await;
                let token = self.token(deadline).await?;
                call(token).await
            }
            other => other,
        }
    }

    async fn call_json<T: DeserializeOwned>(
        &self,
        what: &str,
        method: Method,
        url: Url,
        body: Option<&Body>,
        idempotency: Idempotency,
        deadline: Deadline,
    ) -> Result<T, ApiError> {
        let inner = &self.inner;
        if !inner.hosts.allows(&url) {
            // Only reachable through a misconfiguration; the token stays home.
            return Err(ApiError::ForeignHost {
                host: origin_of(&url),
                allowed: inner.hosts.describe(),
            });
        }
        self.with_token(deadline, |token| {
            let (method, url) = (method.clone(), url.clone());
            async move {
                inner
                    .policy
                    .run(what, deadline, idempotency, || {
                        let mut request = authorized(
                            inner.http.request(method.clone(), url.clone()),
                            &token.secret,
                        )
                        .header(ACCEPT, HeaderValue::from_static("application/json"));
                        if let Some(body) = body {
                            request = request
                                .header(reqwest::header::CONTENT_TYPE, "application/json")
                                .body(body.json.clone());
                        }
                        let token = &token;
                        async move {
                            let response =
                                http::send(what, request, inner.config.request_timeout, deadline)
                                    .await?;
                            if !response.status().is_success() {
                                return Err(http::status_error(
                                    what,
                                    response,
                                    &[token.secret.expose()],
                                )
                                .await);
                            }
                            http::json(what, response, inner.config.request_timeout, deadline).await
                        }
                    })
                    .await
            }
        })
        .await
    }
}

impl Inner {
    /// One attempt: GET and follow redirects, attaching the token only on
    /// hops to allowed hosts. A 401 counts only from a hop that had the token.
    async fn fetch_following(
        &self,
        what: &str,
        start: &Url,
        token: &AccessToken,
        deadline: Deadline,
    ) -> Result<reqwest::Response, ApiError> {
        let mut url = start.clone();
        for _ in 0..=MAX_REDIRECTS {
            let with_token = self.hosts.allows(&url);
            let mut request = self.http.get(url.clone());
            if with_token {
                request = authorized(request, &token.secret);
            }
            let response = http::send(what, request, self.config.request_timeout, deadline).await?;
            let status = response.status();
            if status.is_redirection() && response.headers().contains_key(reqwest::header::LOCATION)
            {
                let next = redirect_target(&url, &response)?;
                tracing::debug!(action = "download_redirect", from = %host_of(&url), to = %host_of(&next), token_sent = self.hosts.allows(&next), "following redirect");
                url = next;
                continue;
            }
            if status.is_success() {
                return Ok(response);
            }
            let error = http::status_error(what, response, &[token.secret.expose()]).await;
            return match error {
                // A foreign host's 401 says nothing about our token: no re-auth.
                ApiError::Status {
                    status: 401,
                    message,
                    ..
                } if !with_token => Err(ApiError::Auth(format!(
                    "{} wants authentication, but the KODE token is never sent there: {message}",
                    origin_of(&url)
                ))),
                other => Err(other),
            };
        }
        Err(ApiError::Decode {
            what: what.to_owned(),
            message: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }
}

fn encode<B: Serialize>(body: &B) -> Result<Body, ApiError> {
    serde_json::to_vec(body)
        .map(|json| Body { json: json.into() })
        .map_err(|e| ApiError::Invalid(format!("cannot encode the request body: {e}")))
}

/// Every request carrying the token gets it here. `bearer_auth` marks the
/// header sensitive, so hyper and any debug output of the request hide it.
fn authorized(request: reqwest::RequestBuilder, token: &Secret) -> reqwest::RequestBuilder {
    request.bearer_auth(token.expose())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_header_is_marked_sensitive() {
        let request = authorized(
            reqwest::Client::new().get("https://beta-api.ambita.com/x"),
            &Secret::new("tok-4f1c9a"),
        )
        .build()
        .unwrap();
        let header = &request.headers()[reqwest::header::AUTHORIZATION];
        assert!(header.is_sensitive());
        assert_eq!(header.to_str().unwrap(), "Bearer tok-4f1c9a");
        assert!(!format!("{request:?}").contains("tok-4f1c9a"));
    }
}
