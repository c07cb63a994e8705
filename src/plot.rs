//! PNG charts with plotters (bitmap backend, the DejaVu Sans font embedded from the
//! `dejavu` crate, so no system font library is needed), written atomically.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::{Error, Result};

/// The font family every chart uses.
pub const FONT: &str = "sans-serif";

/// Registers the embedded font under [`FONT`] (once per process).
pub fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Only fails on an invalid font file; the bundled one is valid.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
    });
}

/// A plotters error as a library error.
pub fn plot_err(e: impl std::fmt::Display) -> Error {
    Error::msg(format!("plot: {e}"))
}

/// Renders into a temporary `.png` beside `path`, then renames it over `path`.
pub fn render_atomic(path: &Path, render: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new().suffix(".png").tempfile_in(dir).map_err(|e| Error::io(dir, e))?;
    render(tmp.path())?;
    crate::atomic::set_mode(tmp.path(), 0o644)?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Line chart of named series of (x, y) points, e.g. training and eval loss by step.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[(&str, Vec<(f64, f64)>)],
) -> Result<()> {
    register_font();
    render_atomic(path, |tmp| {
        let root = BitMapBackend::new(tmp, (900, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let points = series.iter().flat_map(|(_, p)| p.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in points {
            (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
        }
        if x0 > x1 {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 22))
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1.max(x0 + 1e-9), (y0 * 0.95)..(y1 * 1.05).max(y0 + 1e-9))
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()
            .map_err(plot_err)?;
        for (i, (name, pts)) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                .map_err(plot_err)?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(plot_err)?;
        root.present().map_err(plot_err)
    })
}
