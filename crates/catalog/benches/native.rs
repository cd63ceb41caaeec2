//! Native timings of the catalog functions on their default parameters: the median (and
//! min/max) of 25 runs after one warm-up. Run with
//! `cargo bench -p ditto-catalog --bench native` (optionally `-- NAME...` to filter).
use std::time::Instant;

const RUNS: usize = 25;

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    println!(
        "{:<16} {:>12} {:>12} {:>12}",
        "function", "median_ms", "min_ms", "max_ms"
    );
    for f in ditto_catalog::all() {
        if !filter.is_empty() && !filter.iter().any(|n| n == f.name) {
            continue;
        }
        let params = f.default_params_json();
        let mut times = Vec::with_capacity(RUNS);
        for i in 0..=RUNS {
            let t = Instant::now();
            let out = ditto_catalog::run_native(f.name, &params);
            let dt = t.elapsed().as_secs_f64() * 1e3;
            assert!(out.is_ok(), "{}: {:?}", f.name, out);
            if i > 0 {
                times.push(dt);
            }
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{:<16} {:>12.3} {:>12.3} {:>12.3}",
            f.name,
            times[RUNS / 2],
            times[0],
            times[RUNS - 1]
        );
    }
}
