//! Parameter parsing: a JSON object whose known keys take non-negative integers in a range.

use crate::{Error, Result};
use serde_json::{Map, Value};
use std::ops::RangeInclusive;

/// The parameters as an object, rejecting non-objects and keys not in `known`.
/// `null` counts as `{}` (an empty stdin gives `null`, see [`crate::cli`]).
pub fn object<'a>(params: &'a Value, known: &[&str]) -> Result<Option<&'a Map<String, Value>>> {
    let map = match params {
        Value::Null => return Ok(None),
        Value::Object(map) => map,
        other => {
            return Err(Error::new(format!(
                "parameters must be a JSON object, got {}",
                kind(other)
            )))
        }
    };
    if let Some(key) = map.keys().find(|k| !known.contains(&k.as_str())) {
        let accepted = if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        };
        return Err(Error::new(format!(
            "unknown parameter `{key}` (accepted: {accepted})"
        )));
    }
    Ok(Some(map))
}

/// The integer parameter `key`: `default` when missing or `null`, else an integer in `range`.
pub fn uint(
    map: Option<&Map<String, Value>>,
    key: &str,
    default: u64,
    range: RangeInclusive<u64>,
) -> Result<u64> {
    let value = match map.and_then(|m| m.get(key)) {
        None | Some(Value::Null) => return Ok(default),
        Some(v) => v,
    };
    let bad = || {
        Error::new(format!(
            "parameter `{key}` must be an integer in {}..={}, got {}",
            range.start(),
            range.end(),
            short(value)
        ))
    };
    let n = match value {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| {
                // Accept integral floats such as 100.0 or 1e3.
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64)
                    .map(|f| f as u64)
            })
            .ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    if range.contains(&n) {
        Ok(n)
    } else {
        Err(bad())
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 40 {
        format!("{}… ({})", s.chars().take(40).collect::<String>(), kind(v))
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_ranges_and_types() {
        let p = json!({"n": 5, "f": 3.0, "neg": -1, "s": "7", "big": 1e30});
        let known = ["n", "f", "neg", "s", "big"];
        let m = object(&p, &known).unwrap();
        assert_eq!(uint(m, "n", 1, 0..=10).unwrap(), 5);
        assert_eq!(uint(m, "f", 1, 0..=10).unwrap(), 3);
        assert_eq!(uint(m, "missing", 9, 0..=10).unwrap(), 9);
        assert!(uint(m, "n", 1, 6..=10).is_err());
        assert!(uint(m, "neg", 1, 0..=10).is_err());
        assert!(uint(m, "s", 1, 0..=10).is_err());
        assert!(uint(m, "big", 1, 0..=10).is_err());
        assert!(object(&p, &["n"]).is_err());
        assert!(object(&json!(42), &["n"]).is_err());
        assert_eq!(object(&Value::Null, &["n"]).unwrap(), None);
    }
}
