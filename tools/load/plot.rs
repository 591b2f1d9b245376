//! The sweep chart: deliveries/s (crnpd and the loopback limit) and p99 latency against
//! subscribers, as a PNG. Text uses the bundled DejaVu font: no system font needed.

use std::path::Path;

use plotters::coord::combinators::LogCoord;
use plotters::coord::ranged1d::Ranged;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::report::Report;

/// The font family name the chart registers its bundled font under.
const FONT: &str = "sans-serif";

/// Writes the chart of `report` to `path`.
pub(crate) fn write_png(report: &Report, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
        .map_err(|_| "the bundled font is invalid")?;
    let root = BitMapBackend::new(path, (1000, 800)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(400);
    let subscribers: Vec<f64> = report.points.iter().map(|p| p.subscribers as f64).collect();
    let crnpd: Vec<(f64, f64)> = series(report, |p| p.crnpd.as_ref().map(|c| c.deliveries.per_sec));
    let limit: Vec<(f64, f64)> = series(report, |p| p.limit.as_ref().map(|l| l.deliveries.per_sec));
    let p99: Vec<(f64, f64)> = series(report, |p| p.crnpd.as_ref().map(|c| c.latency.p99_ms));
    let x_range = span(&subscribers);

    let y_max = crnpd
        .iter()
        .chain(&limit)
        .map(|&(_, y)| y)
        .fold(1.0, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&top)
        .caption("deliveries per second", (FONT, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range.clone().log_scale(), 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("subscribers")
        .y_desc("deliveries/s")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style((FONT, 14))
        .draw()?;
    draw_series(&mut chart, &crnpd, "crnpd", BLUE)?;
    draw_series(&mut chart, &limit, "loopback limit (blaster)", RED)?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font((FONT, 14))
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()?;

    let y_max = p99.iter().map(|&(_, y)| y).fold(1.0, f64::max) * 2.0;
    let y_min = p99
        .iter()
        .map(|&(_, y)| y)
        .fold(f64::INFINITY, f64::min)
        .clamp(0.01, 1.0)
        / 2.0;
    let mut chart = ChartBuilder::on(&bottom)
        .caption("crnpd publish-to-delivery latency, p99", (FONT, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range.log_scale(), (y_min..y_max).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("subscribers")
        .y_desc("p99 ms (log)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y}"))
        .label_style((FONT, 14))
        .draw()?;
    draw_series(&mut chart, &p99, "p99 latency", BLUE)?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font((FONT, 14))
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// (subscribers, figure) for the points that have the figure.
fn series(
    report: &Report,
    figure: impl Fn(&crate::report::PointReport) -> Option<f64>,
) -> Vec<(f64, f64)> {
    report
        .points
        .iter()
        .filter_map(|p| Some((p.subscribers as f64, figure(p)?)))
        .collect()
}

/// An x range around the subscriber counts, widened so one point still has a range.
fn span(xs: &[f64]) -> std::ops::Range<f64> {
    let low = xs.iter().copied().fold(f64::INFINITY, f64::min).max(1.0);
    let high = xs.iter().copied().fold(1.0, f64::max);
    (low / 1.5)..(high * 1.5)
}

/// A line with markers and a legend entry.
fn draw_series<DB: DrawingBackend, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<LogCoord<f64>, Y>>,
    points: &[(f64, f64)],
    label: &str,
    color: RGBColor,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    chart
        .draw_series(LineSeries::new(
            points.iter().copied(),
            color.stroke_width(2),
        ))?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
    Ok(())
}
