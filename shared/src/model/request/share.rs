//! Housing-cooperative shares: organisation number and share number, both
//! sent as JSON numbers (kode-api.md §5.1).

use std::fmt;

use serde::Serialize;

use super::RequestError;

/// A Norwegian organisation number: nine digits whose last one is the
/// modulus-11 check digit of the Brønnøysund Register Centre.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct OrganizationNumber(u64);

const WEIGHTS: [u64; 8] = [3, 2, 7, 6, 5, 4, 3, 2];

impl OrganizationNumber {
    /// Accepts nine digits, optionally grouped with spaces (`948 677 202`).
    pub fn parse(input: &str) -> Result<Self, RequestError> {
        let err = |reason: &str| RequestError::OrganizationNumber {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        let digits: Vec<u64> = input
            .trim()
            .chars()
            .filter(|c| *c != ' ')
            .map(|c| c.to_digit(10).map(u64::from))
            .collect::<Option<_>>()
            .ok_or_else(|| err("must be nine digits"))?;
        if digits.len() != 9 {
            return Err(err("must be nine digits"));
        }
        // Sent as a JSON number, so a leading zero would be lost; no
        // organisation number starts with one.
        if digits[0] == 0 {
            return Err(err("cannot start with 0"));
        }
        let sum: u64 = digits.iter().zip(WEIGHTS).map(|(d, w)| d * w).sum();
        let check = match 11 - sum % 11 {
            11 => 0,
            10 => return Err(err("is not a valid organisation number (check digit)")),
            c => c,
        };
        if digits[8] != check {
            return Err(err(
                "is not a valid organisation number (check digit does not match; typo?)",
            ));
        }
        Ok(Self(digits.iter().fold(0, |n, d| n * 10 + d)))
    }

    pub fn get(&self) -> u64 {
        self.0
    }
}

impl std::str::FromStr for OrganizationNumber {
    type Err = RequestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for OrganizationNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The share (andel) number within the cooperative: a positive whole number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ShareNumber(u64);

impl ShareNumber {
    pub fn parse(input: &str) -> Result<Self, RequestError> {
        let err = |reason: &str| RequestError::ShareNumber {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        let trimmed = input.trim();
        if trimmed.is_empty() || !trimmed.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("must be a whole number, like 57"));
        }
        match trimmed.parse::<u64>() {
            Ok(0) => Err(err("must be 1 or more")),
            Ok(n) => Ok(Self(n)),
            Err(_) => Err(err("is too large")),
        }
    }

    pub fn get(&self) -> u64 {
        self.0
    }
}

impl std::str::FromStr for ShareNumber {
    type Err = RequestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for ShareNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
