//! Settings from the environment (names of DESIGN.md "Configuration"). A
//! missing or malformed setting is a `ConfigError` naming the variable, so
//! start-up stops with one clear line.
//!
//! Every reader takes a lookup function; the public wrappers pass the process
//! environment, tests pass a map.

use std::time::Duration;

use url::Url;

use crate::api::{self, ApiConfig, Credentials, TokenEncoding};
use crate::secret::Secret;
use crate::sync::DEFAULT_FAILED_MAX_ATTEMPTS;
use crate::sync::{
    parse_duration, SweepPolicy, DEFAULT_FINISHED_DAYS, DEFAULT_INTERVAL, DEFAULT_MAX_MISSES,
};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(String),
    #[error("{name} is invalid: {reason}")]
    Invalid { name: String, reason: String },
    /// The credentials secret could not be read (Secrets Manager).
    #[error("could not read the KODE credentials secret: {0}")]
    Secret(String),
}

impl ConfigError {
    /// Only reading a secret can work on a second try; a wrong setting stays wrong.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ConfigError::Secret(_))
    }
}

/// A lookup of one environment variable; empty values count as unset.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn get(lookup: Lookup<'_>, name: &str) -> Option<String> {
    lookup(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn required(lookup: Lookup<'_>, name: &str) -> Result<String, ConfigError> {
    get(lookup, name).ok_or_else(|| ConfigError::Missing(name.to_owned()))
}

fn invalid(name: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name: name.to_owned(),
        reason: reason.into(),
    }
}

fn parse_number<T: std::str::FromStr>(
    lookup: Lookup<'_>,
    name: &str,
    default: T,
) -> Result<T, ConfigError> {
    match get(lookup, name) {
        None => Ok(default),
        Some(raw) => raw
            .parse()
            .map_err(|_| invalid(name, format!("expected a whole number, got {raw:?}"))),
    }
}

/// A non-negative whole number, e.g. `DOWNLOAD_CONCURRENCY`.
pub fn env_usize(name: &str, default: usize) -> Result<usize, ConfigError> {
    parse_number(&process_env, name, default)
}

pub fn env_u64(name: &str, default: u64) -> Result<u64, ConfigError> {
    parse_number(&process_env, name, default)
}

/// `FAILED_MAX_ATTEMPTS`: failed attempts after which an asset is parked
/// (at least 1; default [`DEFAULT_FAILED_MAX_ATTEMPTS`]).
pub fn failed_max_attempts_from(lookup: Lookup<'_>) -> Result<u32, ConfigError> {
    const NAME: &str = "FAILED_MAX_ATTEMPTS";
    match parse_number(lookup, NAME, DEFAULT_FAILED_MAX_ATTEMPTS)? {
        0 => Err(invalid(NAME, "must be at least 1")),
        n => Ok(n),
    }
}

pub fn env_failed_max_attempts() -> Result<u32, ConfigError> {
    failed_max_attempts_from(&process_env)
}

pub fn env_required(name: &str) -> Result<String, ConfigError> {
    required(&process_env, name)
}

/// KODE settings: `KODE_API_URL`, `KODE_AUTH_URL`, credentials from
/// `KODE_SECRET_ARN` (Secrets Manager JSON `{client_id, client_secret,
/// username, password}`) or `KODE_CLIENT_ID`/`KODE_CLIENT_SECRET`/
/// `KODE_USERNAME`/`KODE_PASSWORD`, `DOWNLOAD_HOSTS`, `MAX_ASSET_BYTES`,
/// `KODE_TOKEN_ENCODING` (`form` or `json`).
pub async fn kode_api_config_from_env(
    aws: Option<&aws_config::SdkConfig>,
) -> Result<ApiConfig, ConfigError> {
    config_with(&process_env, aws).await
}

async fn config_with(
    lookup: Lookup<'_>,
    aws: Option<&aws_config::SdkConfig>,
) -> Result<ApiConfig, ConfigError> {
    let credentials = match get(lookup, "KODE_SECRET_ARN") {
        Some(arn) => {
            let aws = aws.ok_or_else(|| {
                invalid(
                    "KODE_SECRET_ARN",
                    "set, but no AWS configuration is available here",
                )
            })?;
            let json = crate::aws::secret_string(aws, &arn)
                .await
                .map_err(ConfigError::Secret)?;
            credentials_from_secret_json(&json)?
        }
        None => credentials_from(lookup)?,
    };
    api_config_from(lookup, credentials)
}

/// Everything except the credentials.
pub fn api_config_from(
    lookup: Lookup<'_>,
    credentials: Credentials,
) -> Result<ApiConfig, ConfigError> {
    let api_url = match get(lookup, "KODE_API_URL") {
        Some(raw) => http_url("KODE_API_URL", &raw)?,
        None => http_url("KODE_API_URL", api::DEFAULT_API_URL)?,
    };
    let mut config = ApiConfig::new(api_url, credentials);
    if let Some(raw) = get(lookup, "KODE_AUTH_URL") {
        config.auth_url = http_url("KODE_AUTH_URL", &raw)?;
        if config.auth_url.scheme() == "http" && config.api_url.scheme() != "http" {
            return Err(invalid(
                "KODE_AUTH_URL",
                "plain http is only accepted when KODE_API_URL is http too",
            ));
        }
    }
    if let Some(raw) = get(lookup, "DOWNLOAD_HOSTS") {
        config.download_hosts = raw
            .split([',', ' ', '\n', '\t'])
            .filter(|h| !h.trim().is_empty())
            .map(|h| {
                api::hosts::parse_host_entry(h, &config.api_url)
                    .map(|_| h.trim().to_owned())
                    .map_err(|e| invalid("DOWNLOAD_HOSTS", e.to_string()))
            })
            .collect::<Result<_, _>>()?;
    }
    config.max_asset_bytes = parse_number(lookup, "MAX_ASSET_BYTES", config.max_asset_bytes)?;
    if config.max_asset_bytes == 0 {
        return Err(invalid("MAX_ASSET_BYTES", "must be above 0"));
    }
    if let Some(raw) = get(lookup, "KODE_TOKEN_ENCODING") {
        config.token_encoding = match raw.to_ascii_lowercase().as_str() {
            "form" => TokenEncoding::Form,
            "json" => TokenEncoding::Json,
            _ => {
                return Err(invalid(
                    "KODE_TOKEN_ENCODING",
                    format!("expected form or json, got {raw:?}"),
                ))
            }
        };
    }
    let timeout = parse_number(
        lookup,
        "KODE_REQUEST_TIMEOUT_SECS",
        config.request_timeout.as_secs(),
    )?;
    if timeout == 0 {
        return Err(invalid("KODE_REQUEST_TIMEOUT_SECS", "must be above 0"));
    }
    config.request_timeout = Duration::from_secs(timeout);
    Ok(config)
}

/// From `KODE_CLIENT_ID`, `KODE_CLIENT_SECRET`, `KODE_USERNAME`, `KODE_PASSWORD`.
pub fn credentials_from(lookup: Lookup<'_>) -> Result<Credentials, ConfigError> {
    Ok(Credentials {
        client_id: required(lookup, "KODE_CLIENT_ID")?,
        client_secret: Secret::new(required(lookup, "KODE_CLIENT_SECRET")?),
        username: required(lookup, "KODE_USERNAME")?,
        password: Secret::new(required(lookup, "KODE_PASSWORD")?),
    })
}

/// The Secrets Manager JSON. Errors name the missing keys only: serde's
/// messages may quote values, and these values are secrets.
pub fn credentials_from_secret_json(json: &str) -> Result<Credentials, ConfigError> {
    let name = "KODE_SECRET_ARN";
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|_| invalid(name, "the secret is not a JSON object"))?;
    let object = value
        .as_object()
        .ok_or_else(|| invalid(name, "the secret is not a JSON object"))?;
    let field = |key: &str| -> Result<String, ConfigError> {
        match object.get(key) {
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
            _ => Err(invalid(
                name,
                format!("the secret has no non-empty string {key:?}"),
            )),
        }
    };
    Ok(Credentials {
        client_id: field("client_id")?,
        client_secret: Secret::new(field("client_secret")?),
        username: field("username")?,
        password: Secret::new(field("password")?),
    })
}

fn http_url(name: &str, raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw).map_err(|e| invalid(name, format!("{raw:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(name, format!("{raw:?} is not an http(s) URL")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(name, "credentials do not belong in the URL"));
    }
    Ok(url)
}

/// `SWEEP_FINISHED_DAYS` and `SWEEP_MAX_MISSES` from the environment.
pub fn sweep_policy_from_env() -> Result<SweepPolicy, ConfigError> {
    let finished_days = env_u64("SWEEP_FINISHED_DAYS", u64::from(DEFAULT_FINISHED_DAYS))?;
    let max_misses = env_u64("SWEEP_MAX_MISSES", u64::from(DEFAULT_MAX_MISSES))?;
    let invalid = |name: &str, reason: &str| ConfigError::Invalid {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    Ok(SweepPolicy {
        finished_days: u32::try_from(finished_days)
            .ok()
            .filter(|d| *d <= 36_500)
            .ok_or_else(|| invalid("SWEEP_FINISHED_DAYS", "at most 36500"))?,
        max_misses: u32::try_from(max_misses)
            .ok()
            .filter(|m| *m >= 1)
            .ok_or_else(|| invalid("SWEEP_MAX_MISSES", "a whole number from 1"))?,
    })
}

/// The sweep interval from the environment variable `name` (a humane
/// duration, default one hour).
pub fn sweep_interval_from_env(name: &str) -> Result<Duration, ConfigError> {
    match std::env::var(name).ok().filter(|v| !v.trim().is_empty()) {
        None => Ok(DEFAULT_INTERVAL),
        Some(raw) => parse_duration(&raw).map_err(|reason| ConfigError::Invalid {
            name: name.to_owned(),
            reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn creds() -> Credentials {
        credentials_from(&env(&[
            ("KODE_CLIENT_ID", "acme-kode"),
            ("KODE_CLIENT_SECRET", "s3cr3t"),
            ("KODE_USERNAME", "acme-api"),
            ("KODE_PASSWORD", "pa55word"),
        ]))
        .unwrap()
    }

    #[test]
    fn defaults_point_at_the_beta_host() {
        let config = api_config_from(&env(&[]), creds()).unwrap();
        assert_eq!(config.api_url.as_str(), "https://beta-api.ambita.com/");
        assert_eq!(
            config.auth_url.as_str(),
            "https://beta-api.ambita.com/authentication/v2/token"
        );
        assert!(config.download_hosts.is_empty());
        assert_eq!(config.max_asset_bytes, api::DEFAULT_MAX_ASSET_BYTES);
        assert_eq!(config.token_encoding, TokenEncoding::Form);
    }

    #[test]
    fn every_setting_is_read() {
        let config = api_config_from(
            &env(&[
                ("KODE_API_URL", "http://127.0.0.1:8099"),
                ("KODE_AUTH_URL", "https://auth.example/oauth/token"),
                (
                    "DOWNLOAD_HOSTS",
                    "files.ambita.com, https://cdn.ambita.com:8443",
                ),
                ("MAX_ASSET_BYTES", "1048576"),
                ("KODE_TOKEN_ENCODING", "JSON"),
                ("KODE_REQUEST_TIMEOUT_SECS", "5"),
            ]),
            creds(),
        )
        .unwrap();
        assert_eq!(config.api_url.as_str(), "http://127.0.0.1:8099/");
        assert_eq!(config.auth_url.as_str(), "https://auth.example/oauth/token");
        assert_eq!(
            config.download_hosts,
            vec!["files.ambita.com", "https://cdn.ambita.com:8443"]
        );
        assert_eq!(config.max_asset_bytes, 1_048_576);
        assert_eq!(config.token_encoding, TokenEncoding::Json);
        assert_eq!(config.request_timeout, Duration::from_secs(5));
    }

    #[test]
    fn auth_url_follows_a_custom_api_url() {
        let config =
            api_config_from(&env(&[("KODE_API_URL", "http://127.0.0.1:8099")]), creds()).unwrap();
        assert_eq!(
            config.auth_url.as_str(),
            "http://127.0.0.1:8099/authentication/v2/token"
        );
    }

    #[test]
    fn malformed_settings_name_the_variable() {
        let cases = [
            ("KODE_API_URL", "beta-api.ambita.com"),
            ("KODE_API_URL", "ftp://beta-api.ambita.com"),
            ("KODE_API_URL", "https://user:pw@beta-api.ambita.com"),
            ("KODE_AUTH_URL", "not a url"),
            ("DOWNLOAD_HOSTS", "files.ambita.com:8443"),
            ("DOWNLOAD_HOSTS", "http://files.ambita.com"),
            (
                "KODE_AUTH_URL",
                "http://beta-api.ambita.com/authentication/v2/token",
            ),
            ("MAX_ASSET_BYTES", "2GB"),
            ("MAX_ASSET_BYTES", "0"),
            ("KODE_TOKEN_ENCODING", "xml"),
            ("KODE_REQUEST_TIMEOUT_SECS", "-1"),
        ];
        for (name, value) in cases {
            match api_config_from(&env(&[(name, value)]), creds()) {
                Err(ConfigError::Invalid { name: got, .. }) => assert_eq!(got, name, "{value}"),
                other => panic!("{name}={value}: expected Invalid, got {other:?}"),
            }
        }
    }

    #[test]
    fn plain_http_hosts_are_accepted_only_beside_an_http_api_url() {
        let http = [("DOWNLOAD_HOSTS", "http://127.0.0.1:8100")];
        let config = api_config_from(
            &env(&[http[0], ("KODE_API_URL", "http://127.0.0.1:8099")]),
            creds(),
        )
        .unwrap();
        assert_eq!(config.download_hosts, vec!["http://127.0.0.1:8100"]);
        let err = api_config_from(&env(&http), creds()).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { name, reason }
                if name == "DOWNLOAD_HOSTS" && reason.contains("plain http")),
            "{err:?}"
        );
    }

    #[test]
    fn missing_credentials_name_the_first_missing_variable() {
        let err = credentials_from(&env(&[
            ("KODE_CLIENT_ID", "acme"),
            ("KODE_CLIENT_SECRET", " "),
        ]))
        .unwrap_err();
        assert!(
            matches!(&err, ConfigError::Missing(n) if n == "KODE_CLIENT_SECRET"),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "KODE_CLIENT_SECRET is not set");
        assert!(!err.is_retryable());
    }

    #[test]
    fn credentials_are_secret_in_debug_output() {
        let shown = format!("{:?}", creds());
        assert!(shown.contains("acme-kode"));
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("pa55word"),
            "{shown}"
        );
    }

    #[test]
    fn secret_json_is_read_and_errors_never_quote_values() {
        let c = credentials_from_secret_json(
            r#"{"client_id":"acme-kode","client_secret":"s3cr3t","username":"acme-api","password":"pa55word"}"#,
        )
        .unwrap();
        assert_eq!(c.client_id, "acme-kode");
        assert_eq!(c.client_secret.expose(), "s3cr3t");
        assert_eq!(c.username, "acme-api");
        assert_eq!(c.password.expose(), "pa55word");

        let err = credentials_from_secret_json(
            r#"{"client_id":"acme-kode","client_secret":"s3cr3t","username":"acme-api","password":12345678}"#,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("\"password\"") && text.contains("KODE_SECRET_ARN"),
            "{text}"
        );
        assert!(
            !text.contains("12345678") && !text.contains("s3cr3t"),
            "{text}"
        );
        let err = credentials_from_secret_json("s3cr3t{").unwrap_err();
        assert!(!err.to_string().contains("s3cr3t"));
    }

    #[test]
    fn failed_max_attempts_defaults_to_ten_and_rejects_zero_and_words() {
        assert_eq!(failed_max_attempts_from(&env(&[])).unwrap(), 10);
        let three = env(&[("FAILED_MAX_ATTEMPTS", "3")]);
        assert_eq!(failed_max_attempts_from(&three).unwrap(), 3);
        for bad in ["0", "ten", "-1"] {
            let err = failed_max_attempts_from(&env(&[("FAILED_MAX_ATTEMPTS", bad)])).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("FAILED_MAX_ATTEMPTS is invalid"),
                "{err}"
            );
        }
    }

    #[test]
    fn numbers_fall_back_to_defaults_and_reject_garbage() {
        let lookup = env(&[("DOWNLOAD_CONCURRENCY", "8"), ("BAD", "eight")]);
        assert_eq!(
            parse_number::<usize>(&lookup, "DOWNLOAD_CONCURRENCY", 4).unwrap(),
            8
        );
        assert_eq!(parse_number::<usize>(&lookup, "UNSET", 4).unwrap(), 4);
        assert!(matches!(
            parse_number::<u64>(&lookup, "BAD", 1),
            Err(ConfigError::Invalid { name, .. }) if name == "BAD"
        ));
    }

    #[tokio::test]
    async fn a_secret_arn_without_aws_is_a_clear_error() {
        let lookup = env(&[(
            "KODE_SECRET_ARN",
            "arn:aws:secretsmanager:eu-north-1:1:secret:kode",
        )]);
        match config_with(&lookup, None).await {
            Err(ConfigError::Invalid { name, .. }) => assert_eq!(name, "KODE_SECRET_ARN"),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn without_a_secret_arn_the_variables_are_used() {
        let lookup = env(&[
            ("KODE_CLIENT_ID", "acme-kode"),
            ("KODE_CLIENT_SECRET", "s3cr3t"),
            ("KODE_USERNAME", "acme-api"),
            ("KODE_PASSWORD", "pa55word"),
            ("KODE_API_URL", "http://127.0.0.1:8099"),
        ]);
        let config = config_with(&lookup, None).await.unwrap();
        assert_eq!(config.credentials.username, "acme-api");
        assert_eq!(config.api_url.as_str(), "http://127.0.0.1:8099/");
    }
}
