//! One lenient date type for every date KODE sends. Published editions use
//! ISO-8601 with or without a colon in the offset, fractional seconds,
//! `dd.MM.yyyy HH:mm:ss` without zone, `dd.MM.yyyy` and `dd-MM-yyyy`.
//! Zone-less values are Norwegian local time. A date that parses in none of
//! these keeps its raw text and never fails the payload.

use std::fmt;

use jiff::civil::{Date, DateTime};
use jiff::fmt::strtime;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KodeDate {
    raw: String,
    instant: Option<Timestamp>,
}

const WITH_OFFSET: &[&str] = &["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%.f%:z"];
const LOCAL_DATETIME: &[&str] = &[
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S",
];
const LOCAL_DATE: &[&str] = &["%d.%m.%Y", "%d-%m-%Y", "%Y-%m-%d"];

impl KodeDate {
    pub fn parse(raw: &str) -> KodeDate {
        KodeDate {
            raw: raw.to_owned(),
            instant: parse_instant(raw.trim()),
        }
    }

    /// The text as KODE sent it.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The moment, if the text is in one of the known formats.
    pub fn instant(&self) -> Option<Timestamp> {
        self.instant
    }
}

fn oslo() -> TimeZone {
    TimeZone::get("Europe/Oslo").unwrap_or(TimeZone::UTC)
}

fn parse_instant(raw: &str) -> Option<Timestamp> {
    if let Ok(ts) = raw.parse::<Timestamp>() {
        return Some(ts);
    }
    for format in WITH_OFFSET {
        if let Ok(zoned) = strtime::parse(format, raw).and_then(|p| p.to_timestamp()) {
            return Some(zoned);
        }
    }
    for format in LOCAL_DATETIME {
        if let Ok(dt) = DateTime::strptime(format, raw) {
            return oslo().to_timestamp(dt).ok();
        }
    }
    for format in LOCAL_DATE {
        if let Ok(date) = Date::strptime(format, raw) {
            return oslo()
                .to_timestamp(date.to_datetime(jiff::civil::Time::midnight()))
                .ok();
        }
    }
    None
}

impl fmt::Display for KodeDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl Serialize for KodeDate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.raw)
    }
}

impl<'de> Deserialize<'de> for KodeDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        let raw = match value {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        Ok(KodeDate::parse(&raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(raw: &str) -> String {
        KodeDate::parse(raw)
            .instant()
            .unwrap_or_else(|| panic!("{raw} did not parse"))
            .to_string()
    }

    #[test]
    fn every_documented_format_parses() {
        assert_eq!(utc("2021-01-28T09:10:15+0100"), "2021-01-28T08:10:15Z");
        assert_eq!(utc("2021-01-28T09:10:15+01:00"), "2021-01-28T08:10:15Z");
        assert_eq!(
            utc("2020-12-14T10:26:23.634+0100"),
            "2020-12-14T09:26:23.634Z"
        );
        // Zone-less: Oslo local time, winter (+01) and summer (+02).
        assert_eq!(utc("21.02.2021 13:26:52"), "2021-02-21T12:26:52Z");
        assert_eq!(utc("15.06.2024 12:00:00"), "2024-06-15T10:00:00Z");
        assert_eq!(utc("14.03.2024"), "2024-03-13T23:00:00Z");
        assert_eq!(utc("09-03-2024"), "2024-03-08T23:00:00Z");
        assert_eq!(utc("2024-03-14T09:12:40Z"), "2024-03-14T09:12:40Z");
    }

    #[test]
    fn unknown_format_keeps_raw_text() {
        let date = KodeDate::parse("sometime in March");
        assert_eq!(date.raw(), "sometime in March");
        assert_eq!(date.instant(), None);
        let from_json: KodeDate = serde_json::from_str("\"32.13.2024\"").unwrap();
        assert_eq!(from_json.instant(), None);
    }
}
