//! Parsing of the small textual units used in specs and options: durations (`50us`, `5ms`,
//! `1.5s`, `2m`, `1h`), rates (`200/s`, `12000/min`, `3/ms`) and plain numbers.
//!
//! All times are `u64` nanoseconds; rates are `f64` events per second.

use thiserror::Error;

/// Nanoseconds per second.
pub const NS_PER_S: u64 = 1_000_000_000;
/// Nanoseconds per millisecond.
pub const NS_PER_MS: u64 = 1_000_000;
/// Nanoseconds per microsecond.
pub const NS_PER_US: u64 = 1_000;

/// A value that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UnitError {
    /// The text is not a duration such as `5ms`.
    #[error("Bad duration {0:?} (expected a number with a unit: ns, us, ms, s, m, h; e.g. 5ms)")]
    Duration(String),
    /// The text is not a rate such as `200/s`.
    #[error("Bad rate {0:?} (expected events per unit, e.g. 200/s, 12000/min, 3/ms)")]
    Rate(String),
    /// The text is not a finite number.
    #[error("Bad number {0:?}")]
    Number(String),
}

/// Nanoseconds in one unit suffix, or `None` for an unknown suffix.
fn unit_ns(unit: &str) -> Option<f64> {
    Some(match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" | "sec" => 1e9,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        _ => return None,
    })
}

/// Parse a finite, non-negative `f64`.
pub fn parse_number(s: &str) -> Result<f64, UnitError> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(UnitError::Number(s.to_string())),
    }
}

/// Parse a duration into nanoseconds: a non-negative number followed by `ns`, `us`, `ms`,
/// `s`, `m` (minutes) or `h`. A bare `0` is accepted.
///
/// ```
/// assert_eq!(ditto_sched::units::parse_duration("1.5ms").unwrap(), 1_500_000);
/// assert_eq!(ditto_sched::units::parse_duration("1h").unwrap(), 3_600_000_000_000);
/// ```
pub fn parse_duration(s: &str) -> Result<u64, UnitError> {
    let t = s.trim();
    if t == "0" {
        return Ok(0);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| UnitError::Duration(s.to_string()))?;
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| UnitError::Duration(s.to_string()))?;
    let mult = unit_ns(unit).ok_or_else(|| UnitError::Duration(s.to_string()))?;
    let ns = n * mult;
    if !ns.is_finite() || ns > u64::MAX as f64 / 2.0 {
        return Err(UnitError::Duration(s.to_string()));
    }
    Ok(ns.round() as u64)
}

/// Parse a rate into events per second: `N/unit` (unit as in [`parse_duration`], without a
/// number, e.g. `200/s`, `12000/min`) or a bare number meaning per second.
pub fn parse_rate(s: &str) -> Result<f64, UnitError> {
    let t = s.trim();
    let err = || UnitError::Rate(s.to_string());
    let (num, unit) = match t.split_once('/') {
        Some((n, u)) => (n, u),
        None => (t, "s"),
    };
    let n: f64 = num.trim().parse().map_err(|_| err())?;
    let per_ns = unit_ns(unit.trim()).ok_or_else(err)?;
    let r = n * 1e9 / per_ns;
    if !r.is_finite() || r < 0.0 {
        return Err(err());
    }
    Ok(r)
}

/// Format nanoseconds with a readable unit (`850ns`, `49.8us`, `5.02ms`, `1.20s`).
pub fn fmt_ns(ns: u64) -> String {
    let f = ns as f64;
    if ns < NS_PER_US {
        format!("{ns}ns")
    } else if ns < NS_PER_MS {
        format!("{:.1}us", f / 1e3)
    } else if ns < NS_PER_S {
        format!("{:.2}ms", f / 1e6)
    } else {
        format!("{:.2}s", f / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("50us").unwrap(), 50_000);
        assert_eq!(parse_duration("5ms").unwrap(), 5_000_000);
        assert_eq!(parse_duration("2m").unwrap(), 120 * NS_PER_S);
        assert_eq!(parse_duration("0").unwrap(), 0);
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-5ms").is_err());
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("200/s").unwrap(), 200.0);
        assert_eq!(parse_rate("120/min").unwrap(), 2.0);
        assert_eq!(parse_rate("3/ms").unwrap(), 3000.0);
        assert_eq!(parse_rate("7").unwrap(), 7.0);
        assert!(parse_rate("x/s").is_err());
        assert!(parse_rate("5/fortnight").is_err());
    }

    #[test]
    fn formatting() {
        assert_eq!(fmt_ns(850), "850ns");
        assert_eq!(fmt_ns(49_800), "49.8us");
        assert_eq!(fmt_ns(5_020_000), "5.02ms");
    }
}
