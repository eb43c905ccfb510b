//! How a `kode` command fails, and the exit code each failure gets.

use kode::api::ApiError;
use kode::config::ConfigError;
use kode::model::RequestError;
use kode::process::ProcessError;
use kode::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad flags, input file or configuration, found before any request (exit 2).
    #[error("{0}")]
    Usage(String),
    /// KODE answered with an error, or could not be reached (exit 1).
    #[error(transparent)]
    Kode(#[from] ApiError),
    /// The local pipeline (`kode serve`, `kode demo`) could not start (exit 1).
    #[error(transparent)]
    Pipeline(#[from] crate::pipeline::PipelineError),
    /// A KODE setting is missing or invalid (exit 2), or the credentials
    /// secret could not be read (exit 1).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `kode sync` could not finish: KODE, the download or the store failed (exit 1).
    #[error(transparent)]
    Sync(#[from] ProcessError),
    /// The ledger or file store could not be read (exit 1).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else, e.g. output that could not be written (exit 1).
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl CliError {
    /// An invalid value, named by the flag it came from.
    pub fn invalid(flag: &str, err: impl std::fmt::Display) -> CliError {
        CliError::Usage(format!("invalid {flag}: {err}"))
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Config(e) if !e.is_retryable() => 2,
            CliError::Kode(_)
            | CliError::Pipeline(_)
            | CliError::Config(_)
            | CliError::Sync(_)
            | CliError::Store(_)
            | CliError::Other(_) => 1,
        }
    }

    /// Whether running the same command again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            CliError::Kode(e) => e.is_retryable(),
            CliError::Pipeline(e) => e.is_retryable(),
            CliError::Config(e) => e.is_retryable(),
            CliError::Sync(e) => e.is_retryable(),
            CliError::Store(e) => e.is_retryable(),
            CliError::Usage(_) | CliError::Other(_) => false,
        }
    }
}

/// Request validation that involves several flags (the single-flag checks
/// already ran in clap's value parsers, which name their flag themselves).
pub fn request(flags: &str) -> impl Fn(RequestError) -> CliError + '_ {
    move |e| CliError::invalid(flags, e)
}
