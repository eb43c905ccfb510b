//! CloudWatch metrics as Embedded Metric Format lines: one JSON object per
//! stdout line, which CloudWatch Logs turns into metrics without any API call
//! from the function. This is the one place that writes to stdout directly:
//! EMF must be a raw log line, not a field of a tracing event.

use std::io::Write as _;

use serde_json::{json, Map, Value};

/// Namespace of every metric (alarms in `template.yaml` refer to it).
pub const NAMESPACE: &str = "KodePush";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    AssetsStored,
    BytesStored,
    AssetsDeleted,
    Failures,
    /// Time from the webhook receiving a push to its processing.
    PushLagMs,
    /// Sweep messages sent by one sweep (one per open order).
    OrdersSwept,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::AssetsStored => "AssetsStored",
            Metric::BytesStored => "BytesStored",
            Metric::AssetsDeleted => "AssetsDeleted",
            Metric::Failures => "Failures",
            Metric::PushLagMs => "PushLagMs",
            Metric::OrdersSwept => "OrdersSwept",
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            Metric::AssetsStored
            | Metric::AssetsDeleted
            | Metric::Failures
            | Metric::OrdersSwept => "Count",
            Metric::BytesStored => "Bytes",
            Metric::PushLagMs => "Milliseconds",
        }
    }
}

/// Where metric lines go: stdout in the Lambda, nowhere for `kode serve`
/// and tests (their stdout belongs to the user).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Metrics {
    Emf,
    #[default]
    Off,
}

impl Metrics {
    /// Writes one EMF line with all `values`. A failed write is ignored:
    /// losing a metric must never fail the work it measures.
    pub fn emit(self, values: &[(Metric, f64)]) {
        if self == Metrics::Off || values.is_empty() {
            return;
        }
        let line = emf_line(values, jiff::Timestamp::now().as_millisecond());
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
    }
}

/// One EMF object, without dimensions so that alarms need none.
pub fn emf_line(values: &[(Metric, f64)], timestamp_ms: i64) -> String {
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
                "Dimensions": [[]],
                "Metrics": definitions,
            }],
        }),
    );
    for (metric, value) in values {
        object.insert(metric.name().into(), json!(value));
    }
    Value::Object(object).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_line_declares_and_carries_each_metric() {
        let line = emf_line(
            &[(Metric::AssetsStored, 2.0), (Metric::BytesStored, 2048.0)],
            1_714_644_000_000,
        );
        assert!(!line.contains('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["Timestamp"], 1_714_644_000_000_i64);
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "KodePush");
        assert_eq!(directive["Dimensions"], json!([[]]));
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
}
