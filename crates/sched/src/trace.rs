//! Arrival traces for the simulator: synthetic processes and the Azure Functions 2019
//! per-minute invocation counts. A trace SPEC is `KIND:key=value,...`:
//!
//! | spec | arrivals |
//! | --- | --- |
//! | `poisson:rate=200/s[,duration=60s]` | Poisson at a constant rate |
//! | `onoff:on=10s,off=50s,rate=800/s[,base=0/s][,duration=60s]` | repeating cycle: `off` at Poisson rate `base`, then `on` at Poisson rate `rate` |
//! | `step:from=20/s,to=800/s,at=30s[,back=60s][,duration=90s]` | Poisson at `from`, at `to` from `at` (until `back`, if given), then `from` again |
//! | `diurnal:mean=200/s[,amp=0.8][,period=24h][,duration=PERIOD]` | Poisson with rate `mean × (1 − amp × cos(2πt/period))` (starts at the trough) |
//! | `azure:PATH[,row=0][,function=HASHPREFIX][,scale=1][,start=0][,minutes=ALL][,speed=1]` | per-minute counts from an Azure Functions 2019 `invocations_per_function` CSV |
//!
//! Durations take units (`90s`, `1h`), rates are `N/unit` (`200/s`, `12000/min`); the
//! default duration is 60 s. For `azure`: `row` is the 0-based data row or `all` (sum of all
//! rows), `function` selects the first row whose `HashFunction` starts with the prefix,
//! `scale` multiplies every count (fractions rounded at random), `start`/`minutes` select a
//! window of minutes, `speed` compresses time (`speed=60` replays a minute per second);
//! within a minute the arrivals are uniformly random. `PATH` cannot contain a comma.
//!
//! The CSV layout is the dataset's: a header `HashOwner,HashApp,HashFunction,Trigger,1,2,...,N`
//! (N = 1440 in the dataset) and one row per function with N non-negative counts.

use crate::units::{parse_duration, parse_number, parse_rate, UnitError, NS_PER_S};
use rand::Rng;
use std::path::PathBuf;
use std::str::FromStr;
use thiserror::Error;

/// Refuse traces with more expected arrivals than this (memory guard).
pub const MAX_ARRIVALS: f64 = 50e6;

/// A trace spec or file that cannot be used.
#[derive(Debug, Error)]
pub enum TraceError {
    /// The spec does not follow the grammar.
    #[error("Bad trace spec {spec:?}: {why}")]
    Syntax {
        /// The spec.
        spec: String,
        /// What is wrong.
        why: String,
    },
    /// A value in the spec does not parse.
    #[error(transparent)]
    Unit(#[from] UnitError),
    /// The Azure CSV cannot be read.
    #[error("Cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The Azure CSV is malformed.
    #[error("Bad Azure CSV, line {line}: {why}")]
    Csv {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// The selection does not exist in the CSV.
    #[error("Bad Azure selection: {0}")]
    Selection(String),
    /// The trace would hold too many arrivals.
    #[error("Trace too large: about {0:.0} arrivals (limit {MAX_ARRIVALS:.0})")]
    TooLarge(f64),
}

/// Which rows of an Azure CSV to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AzureRowSel {
    /// The 0-based data row.
    Index(usize),
    /// The first row whose `HashFunction` starts with this prefix.
    Function(String),
    /// The sum of all rows.
    All,
}

/// A parsed trace spec (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub enum TraceSpec {
    /// Poisson arrivals at `rate` per second.
    Poisson {
        /// Arrivals per second.
        rate: f64,
        /// Trace length (ns).
        duration_ns: u64,
    },
    /// Repeating off/on cycle.
    OnOff {
        /// On-phase length (ns).
        on_ns: u64,
        /// Off-phase length (ns).
        off_ns: u64,
        /// Rate during the on phase (per second).
        rate: f64,
        /// Rate during the off phase (per second).
        base: f64,
        /// Trace length (ns).
        duration_ns: u64,
    },
    /// A step up at `at_ns` (and back down at `back_ns`).
    Step {
        /// Rate before the step (per second).
        from: f64,
        /// Rate after the step (per second).
        to: f64,
        /// Step time (ns).
        at_ns: u64,
        /// Optional time of the step back (ns).
        back_ns: Option<u64>,
        /// Trace length (ns).
        duration_ns: u64,
    },
    /// Sinusoidal rate.
    Diurnal {
        /// Mean rate (per second).
        mean: f64,
        /// Relative amplitude in `[0, 1]`.
        amp: f64,
        /// Period (ns).
        period_ns: u64,
        /// Trace length (ns).
        duration_ns: u64,
    },
    /// Replay of an Azure Functions 2019 per-minute CSV.
    Azure {
        /// The CSV file.
        path: PathBuf,
        /// Which row(s).
        row: AzureRowSel,
        /// Count multiplier.
        scale: f64,
        /// First minute (0-based).
        start: usize,
        /// Number of minutes (`None` = to the end).
        minutes: Option<usize>,
        /// Time compression factor.
        speed: f64,
    },
}

/// Generated arrivals: sorted times (ns) within `[0, duration_ns)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Trace {
    /// Arrival times, non-decreasing.
    pub arrivals: Vec<u64>,
    /// Length of the trace (ns).
    pub duration_ns: u64,
}

/// One function's row of an Azure Functions 2019 invocation CSV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureRow {
    /// `HashOwner`.
    pub owner: String,
    /// `HashApp`.
    pub app: String,
    /// `HashFunction`.
    pub function: String,
    /// `Trigger` (http, timer, queue, event, ...).
    pub trigger: String,
    /// Invocations per minute.
    pub counts: Vec<u32>,
}

/// Parse the text of an Azure Functions 2019 `invocations_per_function` CSV.
pub fn parse_azure_csv(text: &str) -> Result<Vec<AzureRow>, TraceError> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or(TraceError::Csv {
        line: 1,
        why: "empty file".to_string(),
    })?;
    let cols: Vec<&str> = header
        .trim_start_matches('\u{feff}')
        .split(',')
        .map(str::trim)
        .collect();
    if cols.len() < 5 || cols[..4] != ["HashOwner", "HashApp", "HashFunction", "Trigger"] {
        return Err(TraceError::Csv {
            line: 1,
            why: "header must start HashOwner,HashApp,HashFunction,Trigger,1,...".to_string(),
        });
    }
    for (i, c) in cols[4..].iter().enumerate() {
        if c.parse::<usize>().ok() != Some(i + 1) {
            return Err(TraceError::Csv {
                line: 1,
                why: format!("minute column {} is named {c:?}, expected {}", i + 1, i + 1),
            });
        }
    }
    let minutes = cols.len() - 4;
    let mut rows = Vec::new();
    for (i, line) in lines {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        if f.len() != cols.len() {
            return Err(TraceError::Csv {
                line: i + 1,
                why: format!("{} fields, expected {}", f.len(), cols.len()),
            });
        }
        let counts = f[4..]
            .iter()
            .map(|c| {
                c.parse::<u32>().map_err(|_| TraceError::Csv {
                    line: i + 1,
                    why: format!("count {c:?} is not a non-negative integer"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        debug_assert_eq!(counts.len(), minutes);
        rows.push(AzureRow {
            owner: f[0].to_string(),
            app: f[1].to_string(),
            function: f[2].to_string(),
            trigger: f[3].to_string(),
            counts,
        });
    }
    Ok(rows)
}

/// Parsed `key=value` pairs of a spec, with "unknown key" detection.
struct Kv<'a> {
    spec: &'a str,
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> Kv<'a> {
    fn new(spec: &'a str, rest: &'a str, known: &[&str]) -> Result<Self, TraceError> {
        let mut pairs = Vec::new();
        for kv in rest.split(',').filter(|s| !s.trim().is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| syntax(spec, &format!("expected key=value, got {kv:?}")))?;
            let k = k.trim();
            if !known.contains(&k) {
                return Err(syntax(
                    spec,
                    &format!("unknown key {k:?} (known: {})", known.join(", ")),
                ));
            }
            pairs.push((k, v.trim()));
        }
        Ok(Kv { spec, pairs })
    }

    fn get(&self, key: &str) -> Option<&'a str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }

    fn need(&self, key: &str) -> Result<&'a str, TraceError> {
        self.get(key)
            .ok_or_else(|| syntax(self.spec, &format!("missing {key}=")))
    }

    fn duration_or(&self, key: &str, default: u64) -> Result<u64, TraceError> {
        Ok(self
            .get(key)
            .map(parse_duration)
            .transpose()?
            .unwrap_or(default))
    }
}

fn syntax(spec: &str, why: &str) -> TraceError {
    TraceError::Syntax {
        spec: spec.to_string(),
        why: why.to_string(),
    }
}

const DEFAULT_DURATION: u64 = 60 * NS_PER_S;

impl FromStr for TraceSpec {
    type Err = TraceError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let (kind, rest) = spec.split_once(':').ok_or_else(|| {
            syntax(
                spec,
                "expected KIND:key=value,... (poisson, onoff, step, diurnal, azure)",
            )
        })?;
        let t = match kind.trim() {
            "poisson" => {
                let kv = Kv::new(spec, rest, &["rate", "duration"])?;
                TraceSpec::Poisson {
                    rate: parse_rate(kv.need("rate")?)?,
                    duration_ns: kv.duration_or("duration", DEFAULT_DURATION)?,
                }
            }
            "onoff" => {
                let kv = Kv::new(spec, rest, &["on", "off", "rate", "base", "duration"])?;
                let t = TraceSpec::OnOff {
                    on_ns: parse_duration(kv.need("on")?)?,
                    off_ns: parse_duration(kv.need("off")?)?,
                    rate: parse_rate(kv.need("rate")?)?,
                    base: kv.get("base").map(parse_rate).transpose()?.unwrap_or(0.0),
                    duration_ns: kv.duration_or("duration", DEFAULT_DURATION)?,
                };
                if let TraceSpec::OnOff {
                    on_ns: 0,
                    off_ns: 0,
                    ..
                } = t
                {
                    return Err(syntax(spec, "on + off must be positive"));
                }
                t
            }
            "step" => {
                let kv = Kv::new(spec, rest, &["from", "to", "at", "back", "duration"])?;
                let at_ns = parse_duration(kv.need("at")?)?;
                let back_ns = kv.get("back").map(parse_duration).transpose()?;
                if back_ns.is_some_and(|b| b < at_ns) {
                    return Err(syntax(spec, "back must not be before at"));
                }
                TraceSpec::Step {
                    from: parse_rate(kv.need("from")?)?,
                    to: parse_rate(kv.need("to")?)?,
                    at_ns,
                    back_ns,
                    duration_ns: kv.duration_or("duration", DEFAULT_DURATION.max(at_ns * 2))?,
                }
            }
            "diurnal" => {
                let kv = Kv::new(spec, rest, &["mean", "amp", "period", "duration"])?;
                let amp = kv.get("amp").map(parse_number).transpose()?.unwrap_or(0.8);
                if amp > 1.0 {
                    return Err(syntax(spec, "amp must be in [0, 1]"));
                }
                let period_ns = kv.duration_or("period", 24 * 3600 * NS_PER_S)?;
                if period_ns == 0 {
                    return Err(syntax(spec, "period must be positive"));
                }
                TraceSpec::Diurnal {
                    mean: parse_rate(kv.need("mean")?)?,
                    amp,
                    period_ns,
                    duration_ns: kv.duration_or("duration", period_ns)?,
                }
            }
            "azure" => {
                let (path, opts) = rest.split_once(',').unwrap_or((rest, ""));
                if path.trim().is_empty() {
                    return Err(syntax(spec, "missing PATH"));
                }
                let kv = Kv::new(
                    spec,
                    opts,
                    &["row", "function", "scale", "start", "minutes", "speed"],
                )?;
                let row = match (kv.get("row"), kv.get("function")) {
                    (Some(_), Some(_)) => {
                        return Err(syntax(spec, "give row= or function=, not both"))
                    }
                    (None, Some(f)) => AzureRowSel::Function(f.to_string()),
                    (Some("all"), None) => AzureRowSel::All,
                    (Some(r), None) => AzureRowSel::Index(
                        r.parse()
                            .map_err(|_| syntax(spec, "row must be a number or `all`"))?,
                    ),
                    (None, None) => AzureRowSel::Index(0),
                };
                let whole = |k: &str| -> Result<Option<usize>, TraceError> {
                    kv.get(k)
                        .map(|v| {
                            v.parse::<usize>()
                                .map_err(|_| syntax(spec, &format!("{k} must be a whole number")))
                        })
                        .transpose()
                };
                let speed = kv
                    .get("speed")
                    .map(parse_number)
                    .transpose()?
                    .unwrap_or(1.0);
                if speed <= 0.0 {
                    return Err(syntax(spec, "speed must be positive"));
                }
                TraceSpec::Azure {
                    path: PathBuf::from(path.trim()),
                    row,
                    scale: kv
                        .get("scale")
                        .map(parse_number)
                        .transpose()?
                        .unwrap_or(1.0),
                    start: whole("start")?.unwrap_or(0),
                    minutes: whole("minutes")?,
                    speed,
                }
            }
            other => {
                return Err(syntax(
                    spec,
                    &format!("unknown kind {other:?} (poisson, onoff, step, diurnal, azure)"),
                ))
            }
        };
        Ok(t)
    }
}

/// Poisson arrivals at `rate`/s in `[start, end)`, appended to `out`.
fn poisson_segment<R: Rng + ?Sized>(
    rng: &mut R,
    start: u64,
    end: u64,
    rate: f64,
    out: &mut Vec<u64>,
) {
    if rate <= 0.0 {
        return;
    }
    let mean_gap = 1e9 / rate;
    let mut t = start as f64;
    loop {
        t += -mean_gap * (1.0 - rng.gen::<f64>()).ln();
        if t >= end as f64 {
            return;
        }
        out.push(t as u64);
    }
}

fn guard(expected: f64) -> Result<(), TraceError> {
    if expected > MAX_ARRIVALS || !expected.is_finite() {
        return Err(TraceError::TooLarge(expected));
    }
    Ok(())
}

impl TraceSpec {
    /// Generate the arrivals (reads the CSV for `azure`).
    pub fn generate<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<Trace, TraceError> {
        let mut out = Vec::new();
        let secs = |ns: u64| ns as f64 / 1e9;
        let duration_ns = match *self {
            TraceSpec::Poisson { rate, duration_ns } => {
                guard(rate * secs(duration_ns))?;
                poisson_segment(rng, 0, duration_ns, rate, &mut out);
                duration_ns
            }
            TraceSpec::OnOff {
                on_ns,
                off_ns,
                rate,
                base,
                duration_ns,
            } => {
                guard(rate.max(base) * secs(duration_ns))?;
                let mut t = 0;
                while t < duration_ns {
                    let off_end = (t + off_ns).min(duration_ns);
                    poisson_segment(rng, t, off_end, base, &mut out);
                    let on_end = (off_end + on_ns).min(duration_ns);
                    poisson_segment(rng, off_end, on_end, rate, &mut out);
                    t = on_end;
                }
                duration_ns
            }
            TraceSpec::Step {
                from,
                to,
                at_ns,
                back_ns,
                duration_ns,
            } => {
                guard(from.max(to) * secs(duration_ns))?;
                let at = at_ns.min(duration_ns);
                let back = back_ns.unwrap_or(duration_ns).clamp(at, duration_ns);
                poisson_segment(rng, 0, at, from, &mut out);
                poisson_segment(rng, at, back, to, &mut out);
                poisson_segment(rng, back, duration_ns, from, &mut out);
                duration_ns
            }
            TraceSpec::Diurnal {
                mean,
                amp,
                period_ns,
                duration_ns,
            } => {
                let peak = mean * (1.0 + amp);
                guard(peak * secs(duration_ns))?;
                let mut cand = Vec::new();
                poisson_segment(rng, 0, duration_ns, peak, &mut cand);
                for t in cand {
                    let phase = std::f64::consts::TAU * (t % period_ns) as f64 / period_ns as f64;
                    let rate = mean * (1.0 - amp * phase.cos());
                    if peak > 0.0 && rng.gen::<f64>() * peak < rate {
                        out.push(t);
                    }
                }
                duration_ns
            }
            TraceSpec::Azure {
                ref path,
                ref row,
                scale,
                start,
                minutes,
                speed,
            } => {
                let text = std::fs::read_to_string(path).map_err(|source| TraceError::Io {
                    path: path.clone(),
                    source,
                })?;
                let rows = parse_azure_csv(&text)?;
                let counts = select_azure(&rows, row)?;
                if start >= counts.len() {
                    return Err(TraceError::Selection(format!(
                        "start={start} but the file has {} minutes",
                        counts.len()
                    )));
                }
                let end = minutes.map_or(counts.len(), |m| (start + m).min(counts.len()));
                let window = &counts[start..end];
                guard(window.iter().map(|&c| c as f64).sum::<f64>() * scale)?;
                let minute_ns = (60e9 / speed).round().max(1.0) as u64;
                for (i, &c) in window.iter().enumerate() {
                    let x = c as f64 * scale;
                    let n = x.floor() as u64 + u64::from(rng.gen::<f64>() < x.fract());
                    let t0 = i as u64 * minute_ns;
                    let mut ts: Vec<u64> =
                        (0..n).map(|_| t0 + rng.gen_range(0..minute_ns)).collect();
                    ts.sort_unstable();
                    out.extend(ts);
                }
                window.len() as u64 * minute_ns
            }
        };
        Ok(Trace {
            arrivals: out,
            duration_ns,
        })
    }
}

fn select_azure(rows: &[AzureRow], sel: &AzureRowSel) -> Result<Vec<u64>, TraceError> {
    let pick = |r: &AzureRow| r.counts.iter().map(|&c| u64::from(c)).collect::<Vec<u64>>();
    match sel {
        AzureRowSel::Index(i) => rows.get(*i).map(pick).ok_or_else(|| {
            TraceError::Selection(format!("row={i} but the file has {} data rows", rows.len()))
        }),
        AzureRowSel::Function(p) => rows
            .iter()
            .find(|r| r.function.starts_with(p.as_str()))
            .map(pick)
            .ok_or_else(|| TraceError::Selection(format!("no HashFunction starts with {p:?}"))),
        AzureRowSel::All => {
            let first = rows
                .first()
                .ok_or_else(|| TraceError::Selection("the file has no data rows".to_string()))?;
            let mut sum = vec![0u64; first.counts.len()];
            for r in rows {
                for (s, &c) in sum.iter_mut().zip(&r.counts) {
                    *s += u64::from(c);
                }
            }
            Ok(sum)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// The synthetic sample shipped with the crate.
    pub(crate) fn sample_path() -> String {
        format!("{}/data/azure_sample.csv", env!("CARGO_MANIFEST_DIR"))
    }

    fn gen(spec: &str) -> Trace {
        spec.parse::<TraceSpec>()
            .unwrap()
            .generate(&mut ChaCha8Rng::seed_from_u64(7))
            .unwrap()
    }

    fn sorted_within(t: &Trace) {
        assert!(t.arrivals.windows(2).all(|w| w[0] <= w[1]));
        assert!(t.arrivals.iter().all(|&a| a < t.duration_ns));
    }

    #[test]
    fn synthetic_rates() {
        let t = gen("poisson:rate=1000/s,duration=10s");
        sorted_within(&t);
        assert!(
            (t.arrivals.len() as f64 - 10_000.0).abs() < 400.0,
            "{}",
            t.arrivals.len()
        );
        let t = gen("onoff:on=1s,off=3s,rate=1000/s,duration=40s");
        sorted_within(&t);
        // Only on-phases [3s,4s), [7s,8s), ... carry arrivals.
        assert!(t
            .arrivals
            .iter()
            .all(|&a| a % (4 * NS_PER_S) >= 3 * NS_PER_S));
        assert!((t.arrivals.len() as f64 - 10_000.0).abs() < 400.0);
        let t = gen("step:from=0/s,to=100/s,at=5s,back=15s,duration=20s");
        sorted_within(&t);
        assert!(t
            .arrivals
            .iter()
            .all(|&a| (5 * NS_PER_S..15 * NS_PER_S).contains(&a)));
        let t = gen("diurnal:mean=100/s,amp=1,period=100s,duration=100s");
        sorted_within(&t);
        let first = t.arrivals.iter().filter(|&&a| a < 10 * NS_PER_S).count();
        let middle = t
            .arrivals
            .iter()
            .filter(|&&a| (45 * NS_PER_S..55 * NS_PER_S).contains(&a))
            .count();
        assert!(middle > 10 * first, "{first} {middle}");
    }

    #[test]
    fn spec_errors() {
        for bad in [
            "poisson",
            "poisson:rate=fast",
            "poisson:rate=5/s,durtion=5s",
            "onoff:on=1s,rate=5/s",
            "step:from=1/s,to=2/s,at=5s,back=1s",
            "diurnal:mean=5/s,amp=2",
            "azure:",
            "azure:x.csv,row=1,function=ab",
            "zipf:rate=1/s",
        ] {
            assert!(bad.parse::<TraceSpec>().is_err(), "{bad}");
        }
        assert!(matches!(
            "poisson:rate=1000000/ms,duration=1h"
                .parse::<TraceSpec>()
                .unwrap()
                .generate(&mut ChaCha8Rng::seed_from_u64(1)),
            Err(TraceError::TooLarge(_))
        ));
    }

    #[test]
    fn azure_sample_parses() {
        let rows = parse_azure_csv(&std::fs::read_to_string(sample_path()).unwrap()).unwrap();
        assert!(rows.len() >= 4);
        assert!(rows.iter().all(|r| r.counts.len() == 1440));
        assert!(rows.iter().any(|r| r.trigger == "http"));
        assert!(rows.iter().any(|r| r.trigger == "timer"));
    }

    #[test]
    fn azure_replay() {
        let p = sample_path();
        let rows = parse_azure_csv(&std::fs::read_to_string(&p).unwrap()).unwrap();
        let want: u64 = rows[1].counts[10..20].iter().map(|&c| u64::from(c)).sum();
        let t = gen(&format!("azure:{p},row=1,start=10,minutes=10,speed=60"));
        sorted_within(&t);
        assert_eq!(t.duration_ns, 10 * NS_PER_S);
        assert_eq!(t.arrivals.len() as u64, want);
        let f = &rows[2].function[..8];
        let t = gen(&format!("azure:{p},function={f},minutes=3"));
        let want: u64 = rows[2].counts[..3].iter().map(|&c| u64::from(c)).sum();
        assert_eq!(t.arrivals.len() as u64, want);
        let all = gen(&format!("azure:{p},row=all,minutes=2,scale=0.5"));
        assert_eq!(all.duration_ns, 120 * NS_PER_S);
        let spec: TraceSpec = format!("azure:{p},row=99").parse().unwrap();
        assert!(spec.generate(&mut ChaCha8Rng::seed_from_u64(1)).is_err());
    }

    #[test]
    fn azure_csv_errors() {
        assert!(parse_azure_csv("").is_err());
        assert!(parse_azure_csv("a,b,c,d,1\n").is_err());
        assert!(parse_azure_csv("HashOwner,HashApp,HashFunction,Trigger,1,3\n").is_err());
        assert!(
            parse_azure_csv("HashOwner,HashApp,HashFunction,Trigger,1,2\no,a,f,http,1\n").is_err()
        );
        assert!(
            parse_azure_csv("HashOwner,HashApp,HashFunction,Trigger,1,2\no,a,f,http,1,-2\n")
                .is_err()
        );
        let rows =
            parse_azure_csv("HashOwner,HashApp,HashFunction,Trigger,1,2\r\no,a,f,http,1,2\r\n\r\n")
                .unwrap();
        assert_eq!(rows[0].counts, vec![1, 2]);
    }
}
