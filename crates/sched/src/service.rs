//! Service-time distributions for the simulator, parsed from short specs:
//!
//! | spec | meaning |
//! | --- | --- |
//! | `const:5ms` | every task takes exactly 5 ms |
//! | `exp:5ms` | exponential with mean 5 ms |
//! | `uniform:1ms..10ms` | uniform between the bounds |
//! | `lognormal:median=5ms,sigma=1` | log-normal with that median and log-space sigma |
//!
//! Samples are at least 1 ns.

use crate::units::{parse_duration, parse_number, UnitError};
use rand::Rng;
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// A service-time distribution spec that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ServiceError {
    /// The kind before `:` is unknown or the shape is wrong.
    #[error("Bad service distribution {spec:?}: {why} (expected const:5ms, exp:5ms, uniform:1ms..10ms or lognormal:median=5ms,sigma=1)")]
    Syntax {
        /// The spec.
        spec: String,
        /// What is wrong.
        why: String,
    },
    /// A value inside does not parse.
    #[error(transparent)]
    Unit(#[from] UnitError),
}

/// A service-time distribution (see the module docs for the spec grammar).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ServiceDist {
    /// Always this many ns.
    Const(u64),
    /// Exponential with this mean (ns).
    Exp(u64),
    /// Uniform in `[lo, hi]` ns.
    Uniform(u64, u64),
    /// Log-normal with this median (ns) and log-space standard deviation.
    LogNormal {
        /// Median (ns).
        median_ns: u64,
        /// Standard deviation of `ln(x)`.
        sigma: f64,
    },
}

impl ServiceDist {
    /// Draw one service time (ns, at least 1).
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        let x = match *self {
            ServiceDist::Const(c) => c as f64,
            ServiceDist::Exp(m) => -(m as f64) * (1.0 - rng.gen::<f64>()).ln(),
            ServiceDist::Uniform(lo, hi) => lo as f64 + (hi - lo) as f64 * rng.gen::<f64>(),
            ServiceDist::LogNormal { median_ns, sigma } => {
                median_ns as f64 * (sigma * std_normal(rng)).exp()
            }
        };
        (x.round().min(1e15) as u64).max(1)
    }

    /// The distribution's mean (ns).
    pub fn mean_ns(&self) -> f64 {
        match *self {
            ServiceDist::Const(c) => c as f64,
            ServiceDist::Exp(m) => m as f64,
            ServiceDist::Uniform(lo, hi) => (lo + hi) as f64 / 2.0,
            ServiceDist::LogNormal { median_ns, sigma } => {
                median_ns as f64 * (sigma * sigma / 2.0).exp()
            }
        }
    }
}

/// A standard normal sample (Box-Muller).
pub(crate) fn std_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let u1 = 1.0 - rng.gen::<f64>(); // (0, 1]
    let u2 = rng.gen::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

impl FromStr for ServiceDist {
    type Err = ServiceError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let syntax = |why: &str| ServiceError::Syntax {
            spec: spec.to_string(),
            why: why.to_string(),
        };
        let (kind, rest) = spec.split_once(':').ok_or_else(|| syntax("missing `:`"))?;
        match kind.trim() {
            "const" => Ok(ServiceDist::Const(parse_duration(rest)?)),
            "exp" => Ok(ServiceDist::Exp(parse_duration(rest)?)),
            "uniform" => {
                let (a, b) = rest
                    .split_once("..")
                    .ok_or_else(|| syntax("expected LO..HI"))?;
                let (lo, hi) = (parse_duration(a)?, parse_duration(b)?);
                if lo > hi {
                    return Err(syntax("LO must not exceed HI"));
                }
                Ok(ServiceDist::Uniform(lo, hi))
            }
            "lognormal" => {
                let (mut median, mut sigma) = (None, None);
                for kv in rest.split(',') {
                    match kv.split_once('=') {
                        Some(("median", v)) => median = Some(parse_duration(v)?),
                        Some(("sigma", v)) => sigma = Some(parse_number(v)?),
                        _ => return Err(syntax(&format!("unknown key in {kv:?}"))),
                    }
                }
                Ok(ServiceDist::LogNormal {
                    median_ns: median.ok_or_else(|| syntax("missing median="))?,
                    sigma: sigma.ok_or_else(|| syntax("missing sigma="))?,
                })
            }
            other => Err(syntax(&format!("unknown kind {other:?}"))),
        }
    }
}

impl fmt::Display for ServiceDist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::units::fmt_ns;
        match *self {
            ServiceDist::Const(c) => write!(f, "const:{}", fmt_ns(c)),
            ServiceDist::Exp(m) => write!(f, "exp:{}", fmt_ns(m)),
            ServiceDist::Uniform(lo, hi) => write!(f, "uniform:{}..{}", fmt_ns(lo), fmt_ns(hi)),
            ServiceDist::LogNormal { median_ns, sigma } => {
                write!(f, "lognormal:median={},sigma={sigma}", fmt_ns(median_ns))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn parse_and_sample_means() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for spec in [
            "const:5ms",
            "exp:5ms",
            "uniform:1ms..9ms",
            "lognormal:median=4ms,sigma=0.5",
        ] {
            let d: ServiceDist = spec.parse().unwrap();
            let n = 20_000;
            let mean = (0..n).map(|_| d.sample(&mut rng) as f64).sum::<f64>() / n as f64;
            let rel = (mean - d.mean_ns()).abs() / d.mean_ns();
            assert!(rel < 0.05, "{spec}: mean {mean} vs {}", d.mean_ns());
            assert!(d.to_string().starts_with(spec.split(':').next().unwrap()));
        }
    }

    #[test]
    fn errors() {
        for bad in [
            "5ms",
            "gamma:5ms",
            "uniform:5ms",
            "uniform:9ms..1ms",
            "lognormal:median=5ms",
            "exp:fast",
        ] {
            assert!(bad.parse::<ServiceDist>().is_err(), "{bad}");
        }
    }
}
