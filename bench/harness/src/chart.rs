//! The SVG chart of a benchmark run: throughput on the left, latency on the right, both on
//! logarithmic axes because the servers compared differ by orders of magnitude.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// One bar of the throughput panel.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub value: f64,
}

/// One server's latency bars: answer and webhook-to-sink, each p50, p99, p99.9 (ms).
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyGroup {
    pub label: String,
    pub ack: [Option<f64>; 3],
    pub sink: [Option<f64>; 3],
}

const COLORS: [RGBColor; 6] = [
    RGBColor(0x9e, 0xca, 0xe1),
    RGBColor(0x42, 0x92, 0xc6),
    RGBColor(0x08, 0x45, 0x94),
    RGBColor(0xfd, 0xbe, 0x85),
    RGBColor(0xfd, 0x8d, 0x3c),
    RGBColor(0xd9, 0x47, 0x01),
];
const SERIES: [&str; 6] = [
    "answer p50",
    "answer p99",
    "answer p99.9",
    "to sink p50",
    "to sink p99",
    "to sink p99.9",
];

/// A log axis range covering `values` with a decade of room, never empty.
pub fn log_range(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    let positive: Vec<f64> = values.into_iter().filter(|v| *v > 0.0).collect();
    let lo = positive.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = positive.iter().cloned().fold(0.0, f64::max);
    if positive.is_empty() {
        return (0.1, 10.0);
    }
    // The lowest bar keeps some height: the axis starts at least half a decade below it.
    (
        10f64.powf((lo.log10() - 0.5).floor()),
        10f64.powf((hi.log10() + 0.3).ceil()),
    )
}

fn err(e: impl std::fmt::Display) -> String {
    format!("chart: {e}")
}

/// Draws the chart to `path`.
pub fn draw(
    path: &Path,
    title: &str,
    throughput: &[Bar],
    latency: &[LatencyGroup],
) -> Result<(), String> {
    let root = SVGBackend::new(path, (1240, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(title, ("sans-serif", 20)).map_err(err)?;
    let (left, right) = root.split_horizontally(560);

    // Throughput: one horizontal bar per (server, scenario), so that the names fit beside them;
    // the first bar on top.
    let (lo, hi) = log_range(throughput.iter().map(|b| b.value));
    let n = throughput.len().max(1);
    let row = |i: usize| n - 1 - i;
    let labels: Vec<String> = throughput.iter().map(|b| b.label.clone()).collect();
    let mut chart = ChartBuilder::on(&left)
        .caption("throughput, per second (log scale)", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(150)
        // A segmented 0..k has k + 1 slots: one per bar.
        .build_cartesian_2d((lo..hi).log_scale(), (0..n.max(2) - 1).into_segmented())
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n + 1)
        .y_label_formatter(&|y| match y {
            SegmentValue::CenterOf(k) if *k < n => labels[row(*k)].clone(),
            _ => String::new(),
        })
        .y_label_style(("sans-serif", 13))
        .x_label_formatter(&|x| format!("{x}"))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(throughput.iter().enumerate().map(|(i, b)| {
            let mut bar = Rectangle::new(
                [
                    (lo, SegmentValue::Exact(row(i))),
                    (b.value.max(lo), SegmentValue::Exact(row(i) + 1)),
                ],
                COLORS[1].filled(),
            );
            bar.set_margin(8, 8, 0, 0);
            bar
        }))
        .map_err(err)?;
    chart
        .draw_series(throughput.iter().enumerate().map(|(i, b)| {
            Text::new(
                format!("{:.0}", b.value),
                (b.value.max(lo) * 1.1, SegmentValue::CenterOf(row(i))),
                TextStyle::from(("sans-serif", 13).into_font())
                    .pos(Pos::new(HPos::Left, VPos::Center)),
            )
        }))
        .map_err(err)?;

    // Latency: six bars per server and a gap, each bar one slot of a categorical axis.
    let slots_per_group = SERIES.len() + 1;
    let all = latency
        .iter()
        .flat_map(|g| g.ack.iter().chain(g.sink.iter()).flatten().cloned());
    let (lo, hi) = log_range(all);
    let slots = latency.len().max(1) * slots_per_group;
    let names: Vec<String> = latency.iter().map(|g| g.label.clone()).collect();
    let mut chart = ChartBuilder::on(&right)
        .caption(
            "end to end at full load, latency in ms (log scale)",
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((0..slots - 1).into_segmented(), (lo..hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(slots + 1)
        .x_label_formatter(&|x| match x {
            // The group's name under its middle bars.
            SegmentValue::CenterOf(k) if k % slots_per_group == SERIES.len() / 2 => {
                names.get(k / slots_per_group).cloned().unwrap_or_default()
            }
            _ => String::new(),
        })
        .y_label_formatter(&|y| format!("{y}"))
        .draw()
        .map_err(err)?;
    for (s, name) in SERIES.iter().enumerate() {
        let color = COLORS[s];
        let bars = latency.iter().enumerate().filter_map(move |(g, group)| {
            let v = if s < 3 {
                group.ack[s]
            } else {
                group.sink[s - 3]
            }?;
            let slot = g * slots_per_group + s;
            let mut bar = Rectangle::new(
                [
                    (SegmentValue::Exact(slot), lo),
                    (SegmentValue::Exact(slot + 1), v.max(lo)),
                ],
                color.filled(),
            );
            bar.set_margin(0, 0, 1, 1);
            Some(bar)
        });
        chart
            .draw_series(bars)
            .map_err(err)?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_range_spans_the_values_with_room_above() {
        let (lo, hi) = log_range([14.0, 1200.0, 5000.0]);
        assert_eq!(lo, 1.0);
        assert!(hi >= 10_000.0);
        // Zeros and negatives cannot sit on a log axis and are left out.
        assert_eq!(log_range([0.0, -1.0]), (0.1, 10.0));
        let (lo, hi) = log_range([0.4, 0.0]);
        assert!(lo <= 0.4 && hi > 0.4);
    }

    #[test]
    fn draws_an_svg_naming_every_server() {
        let dir =
            std::env::temp_dir().join(format!("alertflow-bench-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("chart.svg");
        let bars = vec![
            Bar {
                label: "alertflow e2e".into(),
                value: 1500.0,
            },
            Bar {
                label: "n8n e2e".into(),
                value: 14.0,
            },
        ];
        let groups = vec![LatencyGroup {
            label: "alertflow".into(),
            ack: [Some(2.0), Some(9.0), Some(20.0)],
            sink: [Some(3.0), None, Some(40.0)],
        }];
        draw(&path, "test", &bars, &groups).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("alertflow e2e") && svg.contains("n8n e2e"));
        assert!(svg.contains("to sink p99.9"));
    }
}
