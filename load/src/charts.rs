//! SVG bar charts of the headline figures, drawn by plotters from the measured values.

use std::path::Path;

use plotters::prelude::*;

use crate::bench::{CPU_S_PER_MILLION, LATENCY_P99_MS, RSS_PER_IDLE_STREAM_KIB, Results, Sizes};

/// One bar per framework, with the target as a dashed line.
pub fn bar_chart(
    path: &Path,
    title: &str,
    unit: &str,
    bars: &[(String, f64)],
    target: Option<f64>,
) -> Result<(), String> {
    let error = |e: &dyn std::fmt::Display| format!("drawing {}: {e}", path.display());
    let root = SVGBackend::new(path, (720, 360)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| error(&e))?;
    let highest = bars
        .iter()
        .map(|(_, v)| *v)
        .chain(target)
        .fold(0.0_f64, f64::max)
        * 1.2;
    let count = bars.len() as i32;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d((0..count).into_segmented(), 0.0..highest.max(1e-9))
        .map_err(|e| error(&e))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc(unit)
        .x_labels(bars.len())
        .x_label_formatter(&|segment| match segment {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => usize::try_from(*i)
                .ok()
                .and_then(|i| bars.get(i))
                .map_or(String::new(), |(label, _)| label.clone()),
            SegmentValue::Last => String::new(),
        })
        .x_label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| error(&e))?;
    chart
        .draw_series(bars.iter().zip(0..).map(|((_, value), i)| {
            let color = match target {
                Some(t) if *value > t => RGBColor(0xd9, 0x53, 0x4f),
                _ => RGBColor(0x33, 0x7a, 0xb7),
            };
            let mut bar = Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0.0),
                    (SegmentValue::Exact(i + 1), *value),
                ],
                color.filled(),
            );
            bar.set_margin(0, 0, 12, 12);
            bar
        }))
        .map_err(|e| error(&e))?;
    chart
        .draw_series(bars.iter().zip(0..).map(|((_, value), i)| {
            Text::new(
                format!("{value:.2}"),
                (SegmentValue::CenterOf(i), *value),
                ("sans-serif", 13),
            )
        }))
        .map_err(|e| error(&e))?;
    if let Some(target) = target {
        chart
            .draw_series(DashedLineSeries::new(
                [
                    (SegmentValue::Exact(0), target),
                    (SegmentValue::Last, target),
                ],
                6,
                4,
                BLACK.stroke_width(1),
            ))
            .map_err(|e| error(&e))?;
    }
    root.present().map_err(|e| error(&e))
}

/// The headline charts of a benchmark run, into `dir`; returns the files written.
pub fn bench(results: &[Results], sizes: &Sizes, dir: &Path) -> Result<Vec<String>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let bars = |value: fn(&Results) -> f64| -> Vec<(String, f64)> {
        results
            .iter()
            .map(|r| (r.framework.clone(), value(r)))
            .collect()
    };
    let charts = [
        (
            "cpu-per-million.svg",
            format!(
                "Server CPU seconds per million deliveries ({} clients, {} B)",
                sizes.fanout_clients, sizes.payload_bytes
            ),
            "CPU s",
            bars(|r| r.fanout.cpu_s_per_million),
            CPU_S_PER_MILLION.limit,
        ),
        (
            "rss-per-stream.svg",
            format!(
                "Server RSS per idle stream ({} streams)",
                sizes.idle_streams
            ),
            "KiB",
            bars(|r| r.streams.rss_per_idle_stream_kib),
            RSS_PER_IDLE_STREAM_KIB.limit,
        ),
        (
            "latency-p99.svg",
            format!(
                "Trigger-to-delivery p99 ({} clients, {} events/s)",
                sizes.fanout_clients, sizes.latency_rate
            ),
            "ms",
            bars(|r| r.fanout.latency.p99_ms),
            LATENCY_P99_MS.limit,
        ),
    ];
    let mut written = Vec::new();
    for (file, title, unit, values, target) in charts {
        bar_chart(&dir.join(file), &title, unit, &values, Some(target))?;
        written.push(file.to_owned());
    }
    Ok(written)
}
