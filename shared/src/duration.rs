//! Durations as people write them: ISO-8601 (`PT1H`, `PT1H30M`, `P1D`), shorthand (`90m`,
//! `1h30m`, `45s`) or a whole number of seconds.
//!
//! Parsing refuses zero, negatives, fractions and anything that overflows; bounds against the
//! catalog are checked by the caller.

use crate::error::{PimError, Result};
use serde::Deserialize;

/// The longest duration the parser accepts at all, whatever the catalog says: 7 days.
pub const HARD_LIMIT_SECS: u64 = 7 * 24 * 3600;

/// A duration as it arrives in a JSON body: a string in any accepted form, or seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum DurationInput {
    /// Whole seconds.
    Seconds(serde_json::Number),
    /// `PT1H`, `90m`, `3600`.
    Text(String),
}

impl DurationInput {
    /// The duration in whole seconds, or a 400 `invalid_duration`.
    pub fn to_secs(&self) -> Result<u64> {
        match self {
            Self::Seconds(n) => match n.as_u64() {
                Some(secs) => check_bounds(secs),
                None => Err(invalid(&n.to_string())),
            },
            Self::Text(text) => parse_duration(text),
        }
    }
}

/// Parses a duration in any accepted form into whole seconds.
pub fn parse_duration(text: &str) -> Result<u64> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed.len() > 32 {
        return Err(invalid(text));
    }
    let secs = if trimmed.bytes().all(|b| b.is_ascii_digit()) {
        trimmed.parse::<u64>().map_err(|_| invalid(text))?
    } else if let Some(iso) = trimmed.strip_prefix('P').or_else(|| trimmed.strip_prefix('p')) {
        parse_iso(iso).ok_or_else(|| invalid(text))?
    } else {
        parse_units(trimmed, &[('d', 86_400), ('h', 3600), ('m', 60), ('s', 1)])
            .ok_or_else(|| invalid(text))?
    };
    check_bounds(secs)
}

/// Formats seconds as the shortest ISO-8601 duration (`PT1H30M`).
pub fn format_iso(secs: u64) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (hours, rest) = (rest / 3600, rest % 3600);
    let (minutes, seconds) = (rest / 60, rest % 60);
    let mut out = String::from("P");
    if days > 0 {
        out.push_str(&format!("{days}D"));
    }
    if hours + minutes + seconds > 0 || days == 0 {
        out.push('T');
        for (value, unit) in [(hours, 'H'), (minutes, 'M'), (seconds, 'S')] {
            if value > 0 {
                out.push_str(&format!("{value}{unit}"));
            }
        }
        if secs == 0 {
            out.push_str("0S");
        }
    }
    out
}

/// `1DT2H` style: an optional day part, then `T` and hour, minute, second parts.
fn parse_iso(body: &str) -> Option<u64> {
    let upper = body.to_ascii_uppercase();
    let (date, time) = match upper.split_once('T') {
        Some((date, time)) if !time.is_empty() => (date.to_string(), Some(time.to_string())),
        Some(_) => return None,
        None => (upper.clone(), None),
    };
    let mut total = 0u64;
    if !date.is_empty() {
        total = parse_units(&date.to_ascii_lowercase(), &[('d', 86_400)])?;
    }
    if let Some(time) = time {
        let units = [('h', 3600), ('m', 60), ('s', 1)];
        total = total.checked_add(parse_units(&time.to_ascii_lowercase(), &units)?)?;
    }
    Some(total)
}

/// Parses `<number><unit>` pairs, with units in the given order and each at most once.
fn parse_units(text: &str, units: &[(char, u64)]) -> Option<u64> {
    let mut total = 0u64;
    let mut digits = String::new();
    let mut next_unit = 0usize;
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        let position = units[next_unit..].iter().position(|(unit, _)| *unit == ch)?;
        let (_, scale) = units[next_unit + position];
        if digits.is_empty() {
            return None;
        }
        let value: u64 = digits.parse().ok()?;
        total = total.checked_add(value.checked_mul(scale)?)?;
        digits.clear();
        next_unit += position + 1;
    }
    digits.is_empty().then_some(total)
}

fn check_bounds(secs: u64) -> Result<u64> {
    if secs == 0 {
        return Err(PimError::invalid("invalid_duration", "the duration must be longer than zero"));
    }
    if secs > HARD_LIMIT_SECS {
        return Err(PimError::invalid(
            "invalid_duration",
            format!("the duration must be at most {}", format_iso(HARD_LIMIT_SECS)),
        ));
    }
    Ok(secs)
}

fn invalid(text: &str) -> PimError {
    let shown: String = text.chars().take(40).flat_map(char::escape_default).collect();
    PimError::invalid(
        "invalid_duration",
        format!("'{shown}' is not a duration; use ISO-8601 (PT1H), 90m, 1h30m or seconds"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_documented_form() {
        for (text, secs) in [
            ("PT1H", 3600),
            ("PT1H30M", 5400),
            ("pt15m", 900),
            ("P1D", 86_400),
            ("P1DT1S", 86_401),
            ("90m", 5400),
            ("1h30m", 5400),
            ("45s", 45),
            ("3600", 3600),
        ] {
            assert_eq!(parse_duration(text).unwrap(), secs, "{text}");
        }
    }

    #[test]
    fn refuses_zero_negative_overflow_and_garbage() {
        for text in [
            "",
            "0",
            "PT0S",
            "-5",
            "PT-1H",
            "1.5h",
            "PT",
            "P",
            "m",
            "30m1h",
            "1h1h",
            "PT1H2",
            "99999999999999999999",
            "P99999999999999D",
            "1 h",
            "PT1W",
            "8d",
        ] {
            let err = parse_duration(text).unwrap_err();
            assert_eq!(err.code(), "invalid_duration", "{text}");
        }
    }

    #[test]
    fn json_numbers_must_be_whole_positive_seconds() {
        let parse = |json: &str| serde_json::from_str::<DurationInput>(json).unwrap().to_secs();
        assert_eq!(parse("600").unwrap(), 600);
        assert!(parse("-1").is_err());
        assert!(parse("0").is_err());
        assert!(parse("1.5").is_err());
        assert!(parse("1e30").is_err());
    }

    #[test]
    fn formats_round_trip() {
        for secs in [1, 59, 60, 3600, 5400, 86_400, 90_061] {
            assert_eq!(parse_duration(&format_iso(secs)).unwrap(), secs);
        }
        assert_eq!(format_iso(5400), "PT1H30M");
        assert_eq!(format_iso(86_400), "P1D");
    }
}
