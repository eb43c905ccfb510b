//! Logging set-up: JSON lines on stdout, one event per line, for CloudWatch
//! and Logs Insights.

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber (level from `RUST_LOG`, default `info`).
/// Only the first call in a process takes effect, so handlers and tests may
/// all call it.
pub fn init_json_logs() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _already_installed = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
}
