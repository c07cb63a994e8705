//! PNG plots for `report.md` (plotters, bitmap backend, the DejaVu Sans font embedded
//! from the `dejavu` crate, so no system font library is needed):
//! `latency.png` (TTFT and end-to-end latency histograms) and `intents.png` (scores
//! per intent).

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::report::Report;
use crate::plot::{plot_err, register_font, render_atomic, FONT};
use crate::{Error, Result};

/// Writes `latency.png` and `intents.png` into `dir`.
pub fn write_plots(report: &Report, dir: &Path) -> Result<()> {
    register_font();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let ttft: Vec<f64> = report.cases.iter().filter_map(|c| c.timing.as_ref().map(|t| t.ttft_ms)).collect();
    let e2e: Vec<f64> = report.cases.iter().filter_map(|c| c.timing.as_ref().map(|t| t.e2e_ms)).collect();
    render_atomic(&dir.join("latency.png"), |tmp| latency_png(tmp, &ttft, &e2e))?;
    render_atomic(&dir.join("intents.png"), |tmp| intents_png(tmp, report))
}

/// Equal-width histogram bins over `samples`: (low, high, count).
pub fn histogram(samples: &[f64], bins: usize) -> Vec<(f64, f64, u32)> {
    if samples.is_empty() || bins == 0 {
        return Vec::new();
    }
    let lo = samples.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let width = ((hi - lo) / bins as f64).max(1e-9);
    let mut counts = vec![0u32; bins];
    for &s in samples {
        counts[(((s - lo) / width) as usize).min(bins - 1)] += 1;
    }
    counts.into_iter().enumerate().map(|(i, c)| (lo + i as f64 * width, lo + (i + 1) as f64 * width, c)).collect()
}

fn latency_png(path: &Path, ttft: &[f64], e2e: &[f64]) -> Result<()> {
    let root = BitMapBackend::new(path, (1100, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let panels = root.split_evenly((1, 2));
    for (area, (title, samples, color)) in
        panels.iter().zip([("Time to first token", ttft, BLUE), ("End-to-end latency", e2e, RED)])
    {
        let bins = histogram(samples, 20);
        let (x0, x1) = match (bins.first(), bins.last()) {
            (Some(f), Some(l)) => (f.0, l.1),
            _ => (0.0, 1.0),
        };
        let ymax = bins.iter().map(|b| b.2).max().unwrap_or(1).max(1);
        let mut chart = ChartBuilder::on(area)
            .caption(format!("{title} ({} requests)", samples.len()), (FONT, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(x0..x1.max(x0 + 1e-6), 0u32..ymax + 1)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("milliseconds")
            .y_desc("requests")
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()
            .map_err(plot_err)?;
        chart
            .draw_series(bins.iter().map(|&(lo, hi, c)| Rectangle::new([(lo, 0), (hi, c)], color.mix(0.6).filled())))
            .map_err(plot_err)?;
    }
    root.present().map_err(plot_err)
}

fn intents_png(path: &Path, report: &Report) -> Result<()> {
    let intents: Vec<(&String, [Option<f64>; 4])> = report
        .per_intent
        .iter()
        .map(|(name, s)| (name, [s.must_include, s.grounding, s.faithfulness, s.rouge_l.or(s.tool_call_accuracy)]))
        .collect();
    let names: Vec<String> = intents.iter().map(|(n, _)| n.to_string()).collect();
    let n = intents.len().max(1);
    let root = BitMapBackend::new(path, ((140 * n as u32).max(700), 460)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Scores per intent", (FONT, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..n as f64, 0.0..1.05)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("score")
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()
        .map_err(plot_err)?;
    let metrics = [
        ("must_include", BLUE),
        ("grounding", GREEN),
        ("faithfulness", RED),
        ("ROUGE-L (tool acc. for tool intents)", MAGENTA),
    ];
    for (k, &(label, color)) in metrics.iter().enumerate() {
        let w = 0.8 / metrics.len() as f64;
        let bars = intents.iter().enumerate().filter_map(move |(i, (_, vals))| {
            let v = vals[k]?;
            let x = i as f64 + 0.1 + k as f64 * w;
            Some(Rectangle::new([(x, 0.0), (x + w * 0.9, v)], color.mix(0.7).filled()))
        });
        chart
            .draw_series(bars)
            .map_err(plot_err)?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.mix(0.7).filled()));
    }
    // Intent names under their bar groups (drawn on the root, below the x axis).
    for (i, name) in names.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
        let style = TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
        root.draw(&Text::new(name.clone(), (px, py + 8), style)).map_err(plot_err)?;
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)
}
