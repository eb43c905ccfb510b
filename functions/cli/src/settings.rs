//! Where the `kode` command finds KODE: flags, then the environment (the
//! DESIGN.md names), then a config file of `KEY=VALUE` lines using those same
//! names. One vocabulary for all three means a config file is also a valid
//! `.env` file for `kode serve`, a shell `export` list, or a Lambda's settings.
//!
//! Secrets (KODE_CLIENT_SECRET, KODE_PASSWORD) have no flag: a flag value is
//! visible to every user in the process list. They come from the environment
//! or the config file only, or all four credentials from the AWS Secrets
//! Manager secret named by KODE_SECRET_ARN (as in the Lambdas).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_config::SdkConfig;
use clap::Args;
use kode::api::{ApiConfig, Credentials, KodeClient};
use kode::config::credentials_from_secret_json;
use kode::{Deadline, Secret};
use url::Url;

use crate::error::CliError;

/// Keys a config file may hold (anything else is a typo worth reporting).
const FILE_KEYS: &[&str] = &[
    "KODE_API_URL",
    "KODE_AUTH_URL",
    "KODE_CLIENT_ID",
    "KODE_CLIENT_SECRET",
    "KODE_USERNAME",
    "KODE_PASSWORD",
    "DOWNLOAD_HOSTS",
    "MAX_ASSET_BYTES",
    "FAILED_MAX_ATTEMPTS",
    "PUSH_TOKEN",
    "NOTIFY_SECRET",
    "KODE_SECRET_ARN",
    "ASSET_BUCKET",
    "LEDGER_TABLE",
];
const SECRET_KEYS: &[&str] = &[
    "KODE_CLIENT_SECRET",
    "KODE_PASSWORD",
    "PUSH_TOKEN",
    "NOTIFY_SECRET",
];

/// Connection options shared by every command. Values shown in `--help` never
/// include what the environment holds (`hide_env_values`).
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Connection")]
pub struct GlobalArgs {
    /// Config file of KEY=VALUE lines (same names as the environment)
    /// [default: $XDG_CONFIG_HOME/kode/config.env or ~/.config/kode/config.env]
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "KODE_CONFIG",
        hide_env_values = true
    )]
    pub config: Option<PathBuf>,
    /// KODE API base URL [default: https://beta-api.ambita.com]
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "KODE_API_URL",
        hide_env_values = true
    )]
    pub kode_api_url: Option<Url>,
    /// KODE token endpoint [default: <KODE_API_URL>/authentication/v2/token]
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "KODE_AUTH_URL",
        hide_env_values = true
    )]
    pub kode_auth_url: Option<Url>,
    /// OAuth client id (the client secret comes from KODE_CLIENT_SECRET or the config file)
    #[arg(
        long,
        global = true,
        value_name = "ID",
        env = "KODE_CLIENT_ID",
        hide_env_values = true
    )]
    pub client_id: Option<String>,
    /// KODE user name (the password comes from KODE_PASSWORD or the config file)
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        env = "KODE_USERNAME",
        hide_env_values = true
    )]
    pub username: Option<String>,
    /// Give up after this many seconds (retries and downloads included)
    /// [default: 60; for sync: 300]
    #[arg(long, global = true, value_name = "SECS")]
    pub timeout: Option<u64>,
}

/// What most commands allow themselves: one request and its retries.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Resolved settings. Loading reads the config file but contacts nobody.
pub struct Settings {
    args: GlobalArgs,
    file: ConfigFile,
    /// Loaded on first use: most commands never touch AWS.
    aws: tokio::sync::OnceCell<SdkConfig>,
}

impl Settings {
    pub fn load(args: &GlobalArgs) -> Result<Settings, CliError> {
        let file = match &args.config {
            Some(path) => ConfigFile::read(path)?,
            None => match default_config_path() {
                Some(path) if path.exists() => ConfigFile::read(&path)?,
                _ => ConfigFile::default(),
            },
        };
        Ok(Settings {
            args: args.clone(),
            file,
            aws: tokio::sync::OnceCell::new(),
        })
    }

    /// Environment first, then the config file.
    pub fn value(&self, key: &str) -> Option<String> {
        std::env::var(key)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| self.file.get(key).map(str::to_owned))
    }

    fn required(&self, flag_or_env: Option<String>, key: &str) -> Result<String, CliError> {
        flag_or_env
            .filter(|v| !v.is_empty())
            .or_else(|| self.file.get(key).map(str::to_owned))
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "{key} is not set: put it in the environment or in {}",
                    self.file.describe()
                ))
            })
    }

    /// The AWS SDK configuration (region, credentials, `AWS_ENDPOINT_URL`),
    /// loaded once per run.
    pub async fn aws(&self) -> &SdkConfig {
        self.aws.get_or_init(kode::aws::sdk_config).await
    }

    pub async fn api_config(&self) -> Result<ApiConfig, CliError> {
        // As in the Lambdas, a secret ARN supplies all four credentials.
        let credentials = match self.value("KODE_SECRET_ARN") {
            Some(arn) => {
                let json = kode::aws::secret_string(self.aws().await, &arn)
                    .await
                    .map_err(kode::config::ConfigError::Secret)?;
                credentials_from_secret_json(&json)?
            }
            None => self.credentials()?,
        };
        // The same parsing and checks as the Lambdas; flags win over the
        // environment and the config file.
        let lookup = |key: &str| {
            let flag = match key {
                "KODE_API_URL" => self.args.kode_api_url.as_ref(),
                "KODE_AUTH_URL" => self.args.kode_auth_url.as_ref(),
                _ => None,
            };
            flag.map(Url::to_string).or_else(|| self.value(key))
        };
        Ok(kode::config::api_config_from(&lookup, credentials)?)
    }

    fn credentials(&self) -> Result<Credentials, CliError> {
        Ok(Credentials {
            client_id: self.required(self.args.client_id.clone(), "KODE_CLIENT_ID")?,
            client_secret: Secret::new(self.required(
                std::env::var("KODE_CLIENT_SECRET").ok(),
                "KODE_CLIENT_SECRET",
            )?),
            username: self.required(self.args.username.clone(), "KODE_USERNAME")?,
            password: Secret::new(
                self.required(std::env::var("KODE_PASSWORD").ok(), "KODE_PASSWORD")?,
            ),
        })
    }

    /// `FAILED_MAX_ATTEMPTS`, as the processor Lambda reads it.
    pub fn failed_max_attempts(&self) -> Result<u32, CliError> {
        Ok(kode::config::failed_max_attempts_from(&|key: &str| {
            self.value(key)
        })?)
    }

    /// The one client for this run.
    pub async fn client(&self) -> Result<KodeClient, CliError> {
        KodeClient::new(self.api_config().await?).map_err(CliError::Kode)
    }

    pub fn deadline(&self) -> Deadline {
        self.deadline_or(DEFAULT_TIMEOUT)
    }

    /// `--timeout`, or `default` for commands that download.
    pub fn deadline_or(&self, default: Duration) -> Deadline {
        Deadline::after(self.args.timeout.map_or(default, Duration::from_secs))
    }
}

fn default_config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("kode").join("config.env"))
}

/// `KEY=VALUE` lines; `#` starts a comment line; an optional `export ` prefix
/// and matching single or double quotes around the value are allowed.
#[derive(Default)]
struct ConfigFile {
    path: Option<PathBuf>,
    values: BTreeMap<String, String>,
}

impl ConfigFile {
    fn read(path: &Path) -> Result<ConfigFile, CliError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            CliError::Usage(format!("cannot read config file {}: {e}", path.display()))
        })?;
        let values = parse_config(&text)
            .map_err(|e| CliError::Usage(format!("config file {}: {e}", path.display())))?;
        if values.keys().any(|k| SECRET_KEYS.contains(&k.as_str())) {
            warn_if_readable_by_others(path);
        }
        Ok(ConfigFile {
            path: Some(path.to_owned()),
            values,
        })
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    fn describe(&self) -> String {
        match &self.path {
            Some(p) => format!("the config file {}", p.display()),
            None => "a config file (--config FILE, or ~/.config/kode/config.env)".to_owned(),
        }
    }
}

fn parse_config(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut values = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: expected KEY=VALUE", number + 1))?;
        let key = key.trim();
        if !FILE_KEYS.contains(&key) {
            return Err(format!(
                "line {}: unknown key {key:?} (known: {})",
                number + 1,
                FILE_KEYS.join(", ")
            ));
        }
        values.insert(key.to_owned(), unquote(value.trim()).to_owned());
    }
    Ok(values)
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|v| v.strip_suffix(quote))
        {
            return inner;
        }
    }
    value
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            eprintln!(
                "warning: {} holds secrets but others may read it; run: chmod 600 {}",
                path.display(),
                path.display()
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lines_accept_comments_export_and_quotes() {
        let values = parse_config(
            "# KODE beta\n\nexport KODE_CLIENT_ID=acme\nKODE_PASSWORD=\"p a=ss\"\nKODE_USERNAME='kari'\n",
        )
        .unwrap();
        assert_eq!(values["KODE_CLIENT_ID"], "acme");
        assert_eq!(values["KODE_PASSWORD"], "p a=ss");
        assert_eq!(values["KODE_USERNAME"], "kari");
    }

    #[test]
    fn config_rejects_unknown_keys_and_bad_lines_with_line_number() {
        let err = parse_config("KODE_CLIENT_ID=a\nKODE_CLIENTID=b\n").unwrap_err();
        assert!(
            err.starts_with("line 2: unknown key \"KODE_CLIENTID\""),
            "{err}"
        );
        let err = parse_config("just words\n").unwrap_err();
        assert_eq!(err, "line 1: expected KEY=VALUE");
    }
}
