//! The open-order rules, decided without I/O: until when an order stays open
//! for the sweep, and how a sweep interval is written.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::model::{stamp, PushStatus, OPEN_FOREVER};

/// Days a FINISHED order stays open (`SWEEP_FINISHED_DAYS`): files may
/// follow FINISHED.
pub const DEFAULT_FINISHED_DAYS: u32 = 14;
/// Sweeps in a row KODE may answer 404 before the order is closed
/// (`SWEEP_MAX_MISSES`).
pub const DEFAULT_MAX_MISSES: u32 = 3;
/// How often a sweep runs by default.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(3600);

/// The open-order rules the processor applies when it records an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepPolicy {
    pub finished_days: u32,
    /// At least 1.
    pub max_misses: u32,
}

impl Default for SweepPolicy {
    fn default() -> Self {
        SweepPolicy {
            finished_days: DEFAULT_FINISHED_DAYS,
            max_misses: DEFAULT_MAX_MISSES,
        }
    }
}

impl SweepPolicy {
    /// Until when an order whose last push had `status` (`None`: recorded
    /// at creation, no push yet) stays open: for good unless FINISHED (then
    /// `finished_days` after it first finished), never once CANCELLED or
    /// REFUNDED.
    pub fn open_until(
        &self,
        status: Option<&PushStatus>,
        finished_at: Option<&str>,
        now: Timestamp,
    ) -> Option<String> {
        match status {
            Some(s) if s.purges_files() => None,
            Some(PushStatus::Finished) => {
                let finished = finished_at
                    .and_then(|t| t.parse::<Timestamp>().ok())
                    .unwrap_or(now);
                let days = SignedDuration::from_hours(24 * i64::from(self.finished_days));
                Some(stamp(finished.checked_add(days).unwrap_or(finished)))
            }
            _ => Some(OPEN_FOREVER.to_owned()),
        }
    }
}

/// A humane duration: `90s`, `15m`, `1h`, `2h30m`, `1d`, or a plain number of
/// seconds; `0` is zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => {
                return Err(format!(
                    "{text:?}: expected a duration like 90s, 15m, 1h or 1d"
                ))
            }
        };
        let n: u64 = number
            .parse()
            .map_err(|_| format!("{text:?}: a number must come before {c:?}"))?;
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| format!("{text:?} is too long"))?;
        number.clear();
    }
    if !number.is_empty() {
        return Err(format!(
            "{text:?}: the last number has no unit (s, m, h, d)"
        ));
    }
    Ok(Duration::from_secs(total))
}
