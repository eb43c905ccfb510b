//! Logging set-up: JSON lines on stdout, one event per line, for CloudWatch
//! and Logs Insights.

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber. Only the first call in a process takes
/// effect, so handlers and tests may all call it.
pub fn init_json_logs() {
    let directives = filter_directives(
        std::env::var("RUST_LOG").ok().as_deref(),
        std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref(),
    );
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"));
    let _already_installed = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
}

/// The log filter: `RUST_LOG` when set (per-module directives), else the
/// function's `ApplicationLogLevel`, which Lambda passes as
/// `AWS_LAMBDA_LOG_LEVEL` (so one setting in the template governs both what
/// we write and what Lambda keeps), else `info`.
pub fn filter_directives(rust_log: Option<&str>, lambda_level: Option<&str>) -> String {
    if let Some(directives) = rust_log.map(str::trim).filter(|v| !v.is_empty()) {
        return directives.to_owned();
    }
    let level = match lambda_level
        .map(|v| v.trim().to_ascii_uppercase())
        .as_deref()
    {
        Some("TRACE") => "trace",
        Some("DEBUG") => "debug",
        Some("WARN") => "warn",
        // tracing has no FATAL: errors are the least it can keep.
        Some("ERROR" | "FATAL") => "error",
        _ => "info",
    };
    level.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_wins_then_the_lambda_level_then_info() {
        assert_eq!(
            filter_directives(Some("kode=debug"), Some("ERROR")),
            "kode=debug"
        );
        assert_eq!(filter_directives(None, Some("WARN")), "warn");
        assert_eq!(filter_directives(Some(" "), Some("debug")), "debug");
        assert_eq!(filter_directives(None, Some("FATAL")), "error");
        assert_eq!(filter_directives(None, Some("TRACE")), "trace");
        assert_eq!(filter_directives(None, Some("verbose")), "info");
        assert_eq!(filter_directives(None, None), "info");
    }
}
