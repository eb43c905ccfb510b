//! OAuth tokens: one cached access token shared by every caller, fetched by
//! one caller at a time (refreshes rotate the refresh token, so two parallel
//! refreshes would invalidate each other).

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::deadline::Deadline;
use crate::secret::Secret;

use super::retry::{deadline_exceeded, Idempotency, RetryPolicy};
use super::{http, ApiConfig, ApiError, TokenEncoding, TokenResponse};

/// The documented lifetime, assumed when KODE omits `expires_in` (a 401
/// still triggers a re-authentication if it was shorter).
pub(crate) const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// Renew this long before expiry at most ...
const MAX_MARGIN: Duration = Duration::from_secs(60);
/// ... or this fraction of the lifetime for short-lived tokens.
const MARGIN_FRACTION: f64 = 0.1;

/// A usable access token. `generation` tells a stale 401 from a fresh one.
#[derive(Clone)]
pub(crate) struct AccessToken {
    pub secret: Secret,
    pub generation: u64,
    pub scopes: Vec<String>,
    /// `expires_in` as KODE sent it.
    pub granted_lifetime: Option<Duration>,
    renew_at: Instant,
}

#[derive(Default)]
struct State {
    access: Option<AccessToken>,
    refresh: Option<Secret>,
    generation: u64,
}

pub(crate) struct Auth {
    state: Mutex<State>,
}

enum Grant {
    Password,
    Refresh(Secret),
}

impl Grant {
    fn name(&self) -> &'static str {
        match self {
            Grant::Password => "password",
            Grant::Refresh(_) => "refresh_token",
        }
    }
}

impl Auth {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State::default()),
        }
    }

    /// The cached token, or a new one. Callers arriving while a fetch runs
    /// wait for it and reuse its result.
    pub(crate) async fn token(
        &self,
        http: &reqwest::Client,
        config: &ApiConfig,
        policy: &RetryPolicy,
        deadline: Deadline,
    ) -> Result<AccessToken, ApiError> {
        let mut state = tokio::time::timeout_at(deadline.instant(), self.state.lock())
            .await
            .map_err(|_| deadline_exceeded("token", 0, "waited for another token request"))?;
        if let Some(token) = state
            .access
            .as_ref()
            .filter(|t| t.renew_at > Instant::now())
        {
            return Ok(token.clone());
        }
        state.access = None;
        let response = match state.refresh.take() {
            Some(refresh) => {
                match fetch(http, config, policy, Grant::Refresh(refresh), deadline).await {
                    Ok(response) => response,
                    Err(e @ ApiError::DeadlineExceeded { .. }) => return Err(e),
                    Err(e) => {
                        tracing::info!(
                            action = "token_refresh_failed",
                            error = %e,
                            "refresh grant refused; falling back to the password grant"
                        );
                        fetch(http, config, policy, Grant::Password, deadline).await?
                    }
                }
            }
            None => fetch(http, config, policy, Grant::Password, deadline).await?,
        };
        state.generation += 1;
        let granted_lifetime = response.expires_in.map(Duration::from_secs);
        let lifetime = granted_lifetime.unwrap_or(DEFAULT_LIFETIME);
        let margin = MAX_MARGIN.min(lifetime.mul_f64(MARGIN_FRACTION));
        let token = AccessToken {
            secret: response.access_token,
            generation: state.generation,
            scopes: response.scope.0,
            granted_lifetime,
            renew_at: Instant::now() + lifetime.saturating_sub(margin),
        };
        // Rotation: a refresh answer carries the refresh token to use next.
        state.refresh = response.refresh_token.filter(|t| !t.is_empty());
        tracing::info!(
            action = "token_obtained",
            expires_in = lifetime.as_secs(),
            has_refresh_token = state.refresh.is_some(),
            "KODE access token obtained"
        );
        state.access = Some(token.clone());
        Ok(token)
    }

    /// Forgets `generation` after KODE answered 401 to it. A newer token
    /// (another caller already re-authenticated) is kept.
    pub(crate) async fn reject(&self, generation: u64) {
        let mut state = self.state.lock().await;
        if state
            .access
            .as_ref()
            .is_some_and(|t| t.generation == generation)
        {
            state.access = None;
        }
    }
}

async fn fetch(
    http: &reqwest::Client,
    config: &ApiConfig,
    policy: &RetryPolicy,
    grant: Grant,
    deadline: Deadline,
) -> Result<TokenResponse, ApiError> {
    let what = format!("token ({} grant)", grant.name());
    let creds = &config.credentials;
    let mut fields: Vec<(&str, &str)> = vec![
        ("grant_type", grant.name()),
        ("client_id", &creds.client_id),
        ("client_secret", creds.client_secret.expose()),
    ];
    match &grant {
        Grant::Password => {
            fields.push(("username", &creds.username));
            fields.push(("password", creds.password.expose()));
        }
        Grant::Refresh(token) => fields.push(("refresh_token", token.expose())),
    }
    let secrets: Vec<&str> = fields
        .iter()
        .filter(|(k, _)| matches!(*k, "client_secret" | "password" | "refresh_token"))
        .map(|(_, v)| *v)
        .collect();
    let result = policy
        .run(&what, deadline, Idempotency::Safe, || async {
            let request = http.post(config.auth_url.clone());
            let request = match config.token_encoding {
                TokenEncoding::Form => request.form(&fields),
                TokenEncoding::Json => {
                    let body: serde_json::Map<String, serde_json::Value> = fields
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
                        .collect();
                    request.json(&body)
                }
            };
            let response = http::send(&what, request, config.request_timeout, deadline).await?;
            if !response.status().is_success() {
                return Err(http::status_error(&what, response, &secrets).await);
            }
            http::json::<TokenResponse>(&what, response, config.request_timeout, deadline).await
        })
        .await;
    result.map_err(|e| match e {
        // Wrong credentials or a revoked refresh token: say so plainly.
        ApiError::Status {
            status, message, ..
        } if (400..500).contains(&status) && status != 429 && status != 408 => {
            ApiError::Auth(format!("{what} refused with {status}: {message}"))
        }
        other => other,
    })
}
