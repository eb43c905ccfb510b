//! CloudWatch metrics as Embedded Metric Format lines: one JSON object per
//! stdout line, which CloudWatch Logs turns into metrics without any API call
//! from the function. This is the one place that writes to stdout directly:
//! EMF must be a raw log line, not a field of a tracing event.

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};

/// Namespace of every metric (alarms and the dashboard in `template.yaml`
/// refer to it).
pub const NAMESPACE: &str = "KodePush";

/// The one dimension of every metric: the stack's name, so that two stacks
/// in one account and region never add up.
pub const STACK_DIMENSION: &str = "Stack";

/// The variable naming the stack (`template.yaml` sets it).
pub const STACK_NAME_ENV: &str = "STACK_NAME";

/// Lambda drops application log lines below the function's
/// `ApplicationLogLevel`, and counts a line without a `level` as INFO. FATAL
/// is the one level no setting filters, so the metrics (and the alarms on
/// them) survive any log level. Our own log lines never use it (tracing has
/// no FATAL), so `level = "ERROR"` queries never match a metric line.
const EMF_LEVEL: &str = "FATAL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    AssetsStored,
    BytesStored,
    AssetsDeleted,
    /// Assets that turned FAILED, counted on their first failure only.
    AssetsFailed,
    Failures,
    /// Time from the webhook receiving a push to its processing.
    PushLagMs,
    /// Webhook outcomes, one count per push (health checks and wrong methods
    /// are not pushes and are not counted).
    PushesAccepted,
    PushesUnauthorized,
    PushesInvalid,
    PushesTooLarge,
    PushesQueueFailed,
    /// Records of a batch returned to the queue unstarted because the
    /// invocation's time ran out: batches no longer fit the timeout.
    RecordsDeferred,
    /// Sweep messages sent by one sweep (one per open order).
    OrdersSwept,
}

impl Metric {
    /// The webhook's counts, one per outcome of a push.
    pub const PUSH_OUTCOMES: [Metric; 5] = [
        Metric::PushesAccepted,
        Metric::PushesUnauthorized,
        Metric::PushesInvalid,
        Metric::PushesTooLarge,
        Metric::PushesQueueFailed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::AssetsStored => "AssetsStored",
            Metric::BytesStored => "BytesStored",
            Metric::AssetsDeleted => "AssetsDeleted",
            Metric::AssetsFailed => "AssetsFailed",
            Metric::Failures => "Failures",
            Metric::PushLagMs => "PushLagMs",
            Metric::PushesAccepted => "PushesAccepted",
            Metric::PushesUnauthorized => "PushesUnauthorized",
            Metric::PushesInvalid => "PushesInvalid",
            Metric::PushesTooLarge => "PushesTooLarge",
            Metric::PushesQueueFailed => "PushesQueueFailed",
            Metric::RecordsDeferred => "RecordsDeferred",
            Metric::OrdersSwept => "OrdersSwept",
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            Metric::BytesStored => "Bytes",
            Metric::PushLagMs => "Milliseconds",
            Metric::AssetsStored
            | Metric::AssetsDeleted
            | Metric::AssetsFailed
            | Metric::Failures
            | Metric::OrdersSwept
            | Metric::PushesAccepted
            | Metric::PushesUnauthorized
            | Metric::PushesInvalid
            | Metric::PushesTooLarge
            | Metric::PushesQueueFailed
            | Metric::RecordsDeferred => "Count",
        }
    }
}

/// Where metric lines go: stdout in the Lambda functions, memory in tests
/// that read them back, nowhere for `kode serve` (its stdout belongs to the
/// user).
#[derive(Debug, Clone, Default)]
pub enum Metrics {
    /// EMF lines on stdout, each with the stack's name as dimension.
    Emf { stack: String },
    /// The same lines kept in memory; [`Metrics::lines`] reads them.
    Memory {
        stack: String,
        lines: Arc<Mutex<Vec<String>>>,
    },
    #[default]
    Off,
}

impl Metrics {
    /// What a Lambda function emits: EMF for the stack named by
    /// `STACK_NAME`. Without it there are no metrics (and a warning), rather
    /// than metrics that mix with another stack's.
    pub fn for_lambda(stack_name: Option<String>) -> Metrics {
        match stack_name.map(|s| s.trim().to_owned()) {
            Some(stack) if !stack.is_empty() => Metrics::Emf { stack },
            _ => {
                tracing::warn!(
                    action = "metrics_off",
                    "{STACK_NAME_ENV} is not set: no metrics are emitted"
                );
                Metrics::Off
            }
        }
    }

    /// Lines kept in memory, as if emitted by the stack `stack`.
    pub fn memory(stack: &str) -> Metrics {
        Metrics::Memory {
            stack: stack.to_owned(),
            lines: Arc::default(),
        }
    }

    /// The lines emitted so far (only [`Metrics::Memory`] keeps any).
    pub fn lines(&self) -> Vec<String> {
        match self {
            Metrics::Memory { lines, .. } => {
                lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
            }
            Metrics::Emf { .. } | Metrics::Off => Vec::new(),
        }
    }

    /// Writes one EMF line with all `values`. A failed write is ignored:
    /// losing a metric must never fail the work it measures.
    pub fn emit(&self, values: &[(Metric, f64)]) {
        if values.is_empty() {
            return;
        }
        let now = jiff::Timestamp::now().as_millisecond();
        match self {
            Metrics::Off => {}
            Metrics::Emf { stack } => {
                let line = emf_line(stack, values, now);
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
            }
            Metrics::Memory { stack, lines } => {
                let line = emf_line(stack, values, now);
                lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        }
    }
}

/// One EMF object, with the stack as its only dimension.
pub fn emf_line(stack: &str, values: &[(Metric, f64)], timestamp_ms: i64) -> String {
    let definitions: Vec<Value> = values
        .iter()
        .map(|(m, _)| json!({"Name": m.name(), "Unit": m.unit()}))
        .collect();
    let mut object = Map::new();
    object.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [[STACK_DIMENSION]],
                "Metrics": definitions,
            }],
        }),
    );
    object.insert("level".into(), json!(EMF_LEVEL));
    object.insert(STACK_DIMENSION.into(), json!(stack));
    for (metric, value) in values {
        object.insert(metric.name().into(), json!(value));
    }
    Value::Object(object).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_line_declares_and_carries_each_metric_under_the_stack() {
        let line = emf_line(
            "kode-push-test",
            &[(Metric::AssetsStored, 2.0), (Metric::BytesStored, 2048.0)],
            1_714_644_000_000,
        );
        assert!(!line.contains('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["Timestamp"], 1_714_644_000_000_i64);
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "KodePush");
        assert_eq!(directive["Dimensions"], json!([["Stack"]]));
        assert_eq!(v["Stack"], "kode-push-test");
        assert_eq!(
            directive["Metrics"],
            json!([
                {"Name": "AssetsStored", "Unit": "Count"},
                {"Name": "BytesStored", "Unit": "Bytes"},
            ])
        );
        assert_eq!(v["AssetsStored"], 2.0);
        assert_eq!(v["BytesStored"], 2048.0);
    }

    #[test]
    fn emf_lines_pass_every_lambda_log_level() {
        let line = emf_line("s", &[(Metric::Failures, 1.0)], 0);
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "FATAL");
    }

    #[test]
    fn lambda_metrics_need_the_stack_name() {
        assert!(matches!(Metrics::for_lambda(None), Metrics::Off));
        assert!(matches!(
            Metrics::for_lambda(Some(" ".into())),
            Metrics::Off
        ));
        match Metrics::for_lambda(Some("prod".into())) {
            Metrics::Emf { stack } => assert_eq!(stack, "prod"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn memory_keeps_lines_and_off_emits_nothing() {
        let metrics = Metrics::memory("s");
        metrics.emit(&[(Metric::RecordsDeferred, 3.0)]);
        metrics.emit(&[]);
        let lines = metrics.lines();
        assert_eq!(lines.len(), 1);
        let v: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(v["RecordsDeferred"], 3.0);
        assert!(Metrics::Off.lines().is_empty());
    }
}
