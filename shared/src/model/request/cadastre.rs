//! Matrikkel numbers: `knr-gnr-bnr-fnr-snr`, all five parts (kode-api.md §5.1).

use std::fmt;

use serde::{Serialize, Serializer};

use super::RequestError;
use crate::model::MunicipalityNumber;

/// A cadastre unit: municipality (kommunenummer, four digits with its leading
/// zero), farm (gårds-), holding (bruks-), leasehold (feste-) and section
/// (seksjonsnummer). Sent as the string `"0301-207-45-0-0"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cadastre {
    pub municipality: MunicipalityNumber,
    pub gnr: u32,
    pub bnr: u32,
    pub fnr: u32,
    pub snr: u32,
}

impl Cadastre {
    pub fn parse(input: &str) -> Result<Self, RequestError> {
        let err = |reason: String| RequestError::Cadastre {
            input: input.to_owned(),
            reason,
        };
        let parts: Vec<&str> = input.trim().split('-').collect();
        if parts.len() != 5 {
            return Err(err(format!("has {} part(s), not 5", parts.len())));
        }
        let municipality = MunicipalityNumber::parse(parts[0]).map_err(err)?;
        let mut numbers = [0u32; 4];
        for ((number, part), name) in numbers
            .iter_mut()
            .zip(&parts[1..])
            .zip(["gnr", "bnr", "fnr", "snr"])
        {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err(format!(
                    "{name} {part:?} is not a non-negative whole number"
                )));
            }
            *number = part
                .parse()
                .map_err(|_| err(format!("{name} {part:?} is too large")))?;
        }
        let [gnr, bnr, fnr, snr] = numbers;
        Ok(Self {
            municipality,
            gnr,
            bnr,
            fnr,
            snr,
        })
    }
}

impl std::str::FromStr for Cadastre {
    type Err = RequestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Cadastre {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}-{}-{}-{}",
            self.municipality, self.gnr, self.bnr, self.fnr, self.snr
        )
    }
}

impl Serialize for Cadastre {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}
