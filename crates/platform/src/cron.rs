//! Cron expressions and UTC calendar arithmetic for the alarm feeds: five fields
//! (`min hour day-of-month month day-of-week`) or six with seconds first, each `*`, a number,
//! a range `a-b`, a list `a,b`, a step `*/n` or `a-b/n`, and month/day names (`jan`,
//! `mon`). Day-of-month and day-of-week follow cron's rule: when both are restricted, either
//! matches. Also ISO 8601 formatting and parsing of instants.

/// A parsed cron expression: one bit set per allowed value of each field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cron {
    seconds: u64,
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    days_any: bool,
    weekdays_any: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn field(text: &str, lo: u32, hi: u32, names: &[&str], what: &str) -> Result<u64, String> {
    let bad = |why: &str| format!("The cron {what} field '{text}' is invalid: {why}.");
    let value = |s: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            // Month names count from 1, weekday names from 0.
            return Ok(i as u32 + if names.len() == 12 { 1 } else { 0 });
        }
        let v: u32 = s
            .parse()
            .map_err(|_| bad(&format!("'{s}' is not a number")))?;
        if v < lo || v > hi {
            return Err(bad(&format!("{v} is outside {lo}..{hi}")));
        }
        Ok(v)
    };
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let s: u32 = s.parse().map_err(|_| bad("the step is not a number"))?;
                if s == 0 {
                    return Err(bad("the step is zero"));
                }
                (r, s)
            }
            None => (part, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let v = value(range)?;
            (v, if part.contains('/') { hi } else { v })
        };
        if a > b {
            return Err(bad("the range is reversed"));
        }
        let mut v = a;
        while v <= b {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

impl Cron {
    /// Parse five or six fields.
    pub fn parse(expr: &str) -> Result<Cron, String> {
        let f: Vec<&str> = expr.split_whitespace().collect();
        let (sec, rest) = match f.len() {
            5 => ("0", &f[..]),
            6 => (f[0], &f[1..]),
            n => {
                return Err(format!(
                    "The cron expression '{expr}' has {n} fields; it needs 5 (min hour day month weekday) or 6 (seconds first)."
                ))
            }
        };
        let mut weekdays = field(rest[4], 0, 7, &WEEKDAYS, "day-of-week")?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(Cron {
            seconds: field(sec, 0, 59, &[], "seconds")?,
            minutes: field(rest[0], 0, 59, &[], "minutes")?,
            hours: field(rest[1], 0, 23, &[], "hours")? as u32,
            days: field(rest[2], 1, 31, &[], "day-of-month")? as u32,
            months: field(rest[3], 1, 12, &MONTHS, "month")? as u16,
            weekdays: (weekdays & 0x7f) as u8,
            days_any: rest[2] == "*",
            weekdays_any: rest[4] == "*",
        })
    }

    /// Whether the second starting at `secs` (Unix time, UTC) matches.
    pub fn matches(&self, secs: i64) -> bool {
        let t = Civil::from_unix(secs);
        let day_ok = self.days & (1 << t.day) != 0;
        let wday_ok = self.weekdays & (1 << t.weekday) != 0;
        let day_match = match (self.days_any, self.weekdays_any) {
            (true, true) => true,
            (false, true) => day_ok,
            (true, false) => wday_ok,
            (false, false) => day_ok || wday_ok,
        };
        self.seconds & (1 << t.second) != 0
            && self.minutes & (1 << t.minute) != 0
            && self.hours & (1 << t.hour) != 0
            && self.months & (1 << t.month) != 0
            && day_match
    }
}

/// A UTC calendar time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    /// Year.
    pub year: i64,
    /// 1..=12.
    pub month: u32,
    /// 1..=31.
    pub day: u32,
    /// 0..=23.
    pub hour: u32,
    /// 0..=59.
    pub minute: u32,
    /// 0..=59.
    pub second: u32,
    /// 0 = Sunday.
    pub weekday: u32,
}

impl Civil {
    /// From Unix seconds (Howard Hinnant's days-to-civil algorithm).
    pub fn from_unix(secs: i64) -> Civil {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem % 3600 / 60) as u32,
            second: (rem % 60) as u32,
            weekday: (days + 4).rem_euclid(7) as u32,
        }
    }
}

/// Days since the epoch of a civil date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-11-24T01:40:00.000Z` from ms since the epoch.
pub fn iso8601(ms: i64) -> String {
    let c = Civil::from_unix(ms.div_euclid(1000));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        ms.rem_euclid(1000)
    )
}

/// An instant as the alarm feeds accept it: ms since the epoch (a number), or ISO 8601
/// `YYYY-MM-DDTHH:MM[:SS[.fff]]` with `Z` or `±HH:MM`. Returns ms since the epoch.
pub fn parse_instant(v: &serde_json::Value) -> Result<i64, String> {
    if let Some(n) = v.as_i64() {
        return Ok(n);
    }
    let s = v
        .as_str()
        .ok_or_else(|| format!("The date {v} is neither a string nor a number."))?;
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    let bad = || format!("The date '{s}' is not an ISO 8601 instant (e.g. 2030-01-01T00:00:00Z).");
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Result<u32, String> {
        s.get(r)
            .filter(|t| t.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|t| t.parse().ok())
            .ok_or_else(bad)
    };
    if b.len() < 16
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b' ')
        || b[13] != b':'
    {
        return Err(bad());
    }
    let (year, month, day, hour, minute) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
    );
    let mut i = 16;
    let mut second = 0;
    let mut millis = 0u32;
    if b.get(i) == Some(&b':') {
        second = num(17..19)?;
        i = 19;
        if b.get(i) == Some(&b'.') {
            let start = i + 1;
            let mut end = start;
            while end < b.len() && b[end].is_ascii_digit() {
                end += 1;
            }
            let frac = s.get(start..end).ok_or_else(bad)?;
            let f3: String = frac.chars().chain("000".chars()).take(3).collect();
            millis = f3.parse().map_err(|_| bad())?;
            i = end;
        }
    }
    let offset_min: i64 = match s.get(i..) {
        Some("Z") | Some("") => 0,
        Some(o)
            if o.len() == 6
                && o.is_ascii()
                && (o.starts_with('+') || o.starts_with('-'))
                && &o[3..4] == ":" =>
        {
            let h: i64 = o[1..3].parse().map_err(|_| bad())?;
            let m: i64 = o[4..6].parse().map_err(|_| bad())?;
            let sign = if o.starts_with('-') { -1 } else { 1 };
            sign * (h * 60 + m)
        }
        _ => return Err(bad()),
    };
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad());
    }
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)
        - offset_min * 60;
    Ok(secs * 1000 + i64::from(millis))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn calendar_round_trips() {
        // 2026-11-24T01:40:05.123Z is a Tuesday.
        let ms = 1_795_484_405_123;
        assert_eq!(iso8601(ms), "2026-11-24T01:40:05.123Z");
        assert_eq!(parse_instant(&json!("2026-11-24T01:40:05.123Z")), Ok(ms));
        assert_eq!(
            parse_instant(&json!("2026-11-24T02:40:05.123+01:00")),
            Ok(ms)
        );
        assert_eq!(parse_instant(&json!(ms)), Ok(ms));
        assert_eq!(Civil::from_unix(ms / 1000).weekday, 2);
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        for bad in [
            json!("2026-11-24T01:40:05+0\u{e9}00"),
            json!("tomorrow"),
            json!("2026-13-01T00:00Z"),
            json!(true),
            json!("2026-11-24T01:40:05Q"),
        ] {
            assert!(parse_instant(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cron_fields() {
        let t = parse_instant(&json!("2026-11-24T01:40:05Z")).unwrap() / 1000; // Tuesday
        assert!(Cron::parse("* * * * * *").unwrap().matches(t));
        assert!(Cron::parse("*/5 * * * * *").unwrap().matches(t));
        assert!(!Cron::parse("*/2 * * * * *").unwrap().matches(t));
        assert!(
            !Cron::parse("40 1 * * *").unwrap().matches(t),
            "5 fields fire at second 0"
        );
        assert!(Cron::parse("40 1 * * *").unwrap().matches(t - 5));
        assert!(Cron::parse("5 40 1 24 nov tue").unwrap().matches(t));
        assert!(Cron::parse("5 40 1 * * 2").unwrap().matches(t));
        assert!(!Cron::parse("5 40 1 * * sun,mon").unwrap().matches(t));
        assert!(
            Cron::parse("5 40 1 1 * tue").unwrap().matches(t),
            "day or weekday"
        );
        assert!(Cron::parse("5 30-45/5 0-3 * * *").unwrap().matches(t));
        for bad in [
            "",
            "* * * *",
            "61 * * * * *",
            "* * * * * * *",
            "*/0 * * * *",
            "a b c d e",
            "5-1 * * * *",
        ] {
            assert!(Cron::parse(bad).is_err(), "{bad:?}");
        }
    }
}
