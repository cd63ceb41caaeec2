//! SVG plots of an elastic run (`plotters`, SVG backend): the latency CDF per
//! configuration, and awake vCPUs over time against the offered load.

use crate::elastic::ElasticReport;
use plotters::prelude::*;
use std::path::Path;

const COLORS: [RGBColor; 6] = [RED, BLUE, GREEN, MAGENTA, BLACK, CYAN];

fn err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Latency CDF, log-scale x axis (ms).
pub fn latency_cdf(r: &ElasticReport, path: &Path) -> std::io::Result<()> {
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let max = r
        .configs
        .iter()
        .flat_map(|c| c.latencies_ms.last())
        .fold(1.0f64, |a, &b| a.max(b))
        * 1.2;
    let min = r
        .configs
        .iter()
        .flat_map(|c| c.latencies_ms.first())
        .fold(max, |a, &b| a.min(b))
        .max(0.01);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Latency CDF (scheduled arrival to response)",
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((min..max).log_scale(), 0f64..1.0)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("latency (ms, log)")
        .y_desc("fraction of requests")
        .draw()
        .map_err(err)?;
    for (i, c) in r.configs.iter().enumerate() {
        let n = c.latencies_ms.len().max(1) as f64;
        let step = (c.latencies_ms.len() / 2000).max(1);
        let pts: Vec<(f64, f64)> = c
            .latencies_ms
            .iter()
            .enumerate()
            .filter(|(j, _)| j % step == 0 || *j + 1 == c.latencies_ms.len())
            .map(|(j, &l)| (l.max(min), (j + 1) as f64 / n))
            .collect();
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(err)?
            .label(c.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// Awake vCPUs over time per configuration, with the offered load (requests/s, scaled).
pub fn timeline(r: &ElasticReport, path: &Path) -> std::io::Result<()> {
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let t_max = r
        .configs
        .iter()
        .flat_map(|c| c.timeline.last())
        .fold(r.trace_s, |a, &(t, _)| a.max(t));
    let v_max = r
        .configs
        .iter()
        .map(|c| c.peak_vcpus)
        .max()
        .unwrap_or(1)
        .max(
            r.configs
                .iter()
                .flat_map(|c| c.timeline.iter().map(|p| p.1))
                .max()
                .unwrap_or(1),
        ) as f64
        + 1.0;
    let load_max = r.offered_per_s.iter().copied().max().unwrap_or(1).max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Awake vCPUs over time (grey: offered load, peak {load_max:.0} req/s)"),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..t_max, 0f64..v_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("awake vCPUs")
        .draw()
        .map_err(err)?;
    let load: Vec<(f64, f64)> = r
        .offered_per_s
        .iter()
        .enumerate()
        .flat_map(|(s, &n)| {
            [
                (s as f64, n as f64 / load_max * (v_max - 1.0)),
                ((s + 1) as f64, n as f64 / load_max * (v_max - 1.0)),
            ]
        })
        .collect();
    chart
        .draw_series(LineSeries::new(
            load,
            RGBColor(170, 170, 170).stroke_width(3),
        ))
        .map_err(err)?
        .label("offered load (scaled)")
        .legend(|(x, y)| {
            PathElement::new(
                vec![(x, y), (x + 18, y)],
                RGBColor(170, 170, 170).stroke_width(3),
            )
        });
    for (i, c) in r.configs.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<(f64, f64)> = c.timeline.iter().map(|&(t, v)| (t, v as f64)).collect();
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(err)?
            .label(c.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}
