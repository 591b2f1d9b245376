//! Renders the panels of docs/grafana-dashboard.json as one PNG, from a real Prometheus:
//! every panel's queries run through Prometheus's range-query API, exactly as Grafana would
//! run them, and each panel is drawn as a line chart with the dashboard's legends.
//!
//! Used by `scripts/dashboard-png.sh` after a load run (headless Grafana is not available):
//!
//! ```text
//! cargo run --example dashboard_png -- --prometheus 127.0.0.1:9090 \
//!     --start 1700000000 --end 1700000300 --out docs/img/dashboard.png
//! ```

use std::collections::BTreeMap;
use std::error::Error;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

/// The font family the chart registers its bundled font under.
const FONT: &str = "sans-serif";
/// Columns of the panel grid (the dashboard's layout: three panels per row).
const COLUMNS: usize = 3;
/// Pixels of one panel.
const PANEL: (u32, u32) = (560, 300);

/// What to render, from the command line.
struct Args {
    prometheus: SocketAddr,
    start: f64,
    end: f64,
    step: f64,
    rate_interval: String,
    dashboard: PathBuf,
    out: PathBuf,
    subtitle: String,
}

/// One line of a panel: its legend and its (seconds since start, value) points.
struct Line {
    legend: String,
    points: Vec<(f64, f64)>,
}

fn main() {
    if let Err(error) = run() {
        eprintln!("dashboard_png: {error}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let args = parse_args()?;
    let text = std::fs::read_to_string(&args.dashboard)?;
    let dashboard: serde_json::Value = serde_json::from_str(&text)?;
    let mut panels: Vec<&serde_json::Value> = dashboard["panels"]
        .as_array()
        .ok_or("the dashboard has no panels")?
        .iter()
        .filter(|p| p["type"] != "row")
        .collect();
    panels.sort_by_key(|p| (p["gridPos"]["y"].as_i64(), p["gridPos"]["x"].as_i64()));
    let mut rendered = Vec::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("(untitled)").to_owned();
        let unit = panel["fieldConfig"]["defaults"]["unit"]
            .as_str()
            .unwrap_or("short")
            .to_owned();
        let mut lines = Vec::new();
        for target in panel["targets"].as_array().into_iter().flatten() {
            let Some(expr) = target["expr"].as_str() else {
                continue;
            };
            let legend = target["legendFormat"].as_str().unwrap_or("");
            let expr = expr.replace("$__rate_interval", &args.rate_interval);
            lines.extend(query_range(&args, &expr, legend)?);
        }
        rendered.push((title, unit, lines));
    }
    draw(&args, &rendered)?;
    println!("wrote {}", args.out.display());
    Ok(())
}

fn parse_args() -> Result<Args, Box<dyn Error>> {
    let mut args = Args {
        prometheus: "127.0.0.1:9090".parse()?,
        start: 0.0,
        end: 0.0,
        step: 1.0,
        rate_interval: "5s".into(),
        dashboard: "docs/grafana-dashboard.json".into(),
        out: "docs/img/dashboard.png".into(),
        subtitle: String::new(),
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let value = given.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--prometheus" => args.prometheus = value.parse()?,
            "--start" => args.start = value.parse()?,
            "--end" => args.end = value.parse()?,
            "--step" => args.step = value.parse()?,
            "--rate-interval" => args.rate_interval = value,
            "--dashboard" => args.dashboard = value.into(),
            "--out" => args.out = value.into(),
            "--subtitle" => args.subtitle = value,
            _ => return Err(format!("unknown flag {flag}").into()),
        }
    }
    if args.end <= args.start {
        return Err("--start and --end (Unix seconds) must give a non-empty range".into());
    }
    Ok(args)
}

/// Runs one range query and turns every series into a line named by the legend format.
fn query_range(args: &Args, expr: &str, legend: &str) -> Result<Vec<Line>, Box<dyn Error>> {
    let path = format!(
        "/api/v1/query_range?query={}&start={}&end={}&step={}",
        url_encode(expr),
        args.start,
        args.end,
        args.step
    );
    let body = get(args.prometheus, &path)?;
    let answer: serde_json::Value = serde_json::from_str(&body)?;
    if answer["status"] != "success" {
        return Err(format!("Prometheus refused {expr}: {answer}").into());
    }
    let mut lines = Vec::new();
    for series in answer["data"]["result"].as_array().into_iter().flatten() {
        let labels: BTreeMap<String, String> = series["metric"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let points = series["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|pair| {
                let t = pair[0].as_f64()?;
                let v: f64 = pair[1].as_str()?.parse().ok()?;
                v.is_finite().then_some((t - args.start, v))
            })
            .collect();
        lines.push(Line {
            legend: fill_legend(legend, &labels),
            points,
        });
    }
    Ok(lines)
}

/// Grafana's `{{label}}` legend format.
fn fill_legend(format: &str, labels: &BTreeMap<String, String>) -> String {
    let mut legend = format.to_owned();
    for (name, value) in labels {
        legend = legend.replace(&format!("{{{{{name}}}}}"), value);
    }
    legend
}

/// A plain HTTP/1.0 GET on loopback (no chunked answers); returns the body of a 200.
fn get(addr: SocketAddr, path: &str) -> Result<String, Box<dyn Error>> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or("a response without a body")?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(format!("GET {path}: {head}: {body}").into());
    }
    Ok(body.to_owned())
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Splits a series where consecutive samples are more than two steps apart.
fn segments(points: &[(f64, f64)], step: f64) -> Vec<&[(f64, f64)]> {
    let mut parts = Vec::new();
    let mut start = 0;
    for i in 1..points.len() {
        if points[i].0 - points[i - 1].0 > 2.0 * step {
            parts.push(&points[start..i]);
            start = i;
        }
    }
    if start < points.len() {
        parts.push(&points[start..]);
    }
    parts
}

/// Scales a value for the axis by the panel's Grafana unit: seconds shown as milliseconds.
fn scaled(unit: &str) -> (f64, &'static str) {
    match unit {
        "s" => (1000.0, "ms"),
        "ops" => (1.0, "per second"),
        _ => (1.0, ""),
    }
}

fn draw(args: &Args, panels: &[(String, String, Vec<Line>)]) -> Result<(), Box<dyn Error>> {
    register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
        .map_err(|_| "the bundled font is invalid")?;
    let rows = panels.len().div_ceil(COLUMNS) as u32;
    let header = 60;
    let size = (PANEL.0 * COLUMNS as u32, header + PANEL.1 * rows);
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let root = BitMapBackend::new(&args.out, size).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, grid) = root.split_vertically(header);
    top.draw(&Text::new(
        "crnpd dashboard (docs/grafana-dashboard.json), rendered from Prometheus",
        (12, 8),
        (FONT, 24).into_font(),
    ))?;
    top.draw(&Text::new(
        args.subtitle.clone(),
        (12, 36),
        (FONT, 15).into_font().color(&RGBColor(90, 90, 90)),
    ))?;
    let cells = grid.split_evenly((rows as usize, COLUMNS));
    let span = args.end - args.start;
    for ((title, unit, lines), cell) in panels.iter().zip(cells.iter()) {
        let (factor, axis) = scaled(unit);
        let y_max = lines
            .iter()
            .flat_map(|l| l.points.iter().map(|&(_, v)| v * factor))
            .fold(0.0_f64, f64::max);
        let y_max = if y_max > 0.0 { y_max * 1.15 } else { 1.0 };
        let mut chart = ChartBuilder::on(cell)
            .caption(title, (FONT, 17))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(62)
            .build_cartesian_2d(0.0..span, 0.0..y_max)?;
        chart
            .configure_mesh()
            .x_desc("seconds into the run")
            .y_desc(axis)
            .label_style((FONT, 12))
            .axis_desc_style((FONT, 12))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()?;
        if lines.iter().all(|l| l.points.is_empty()) {
            cell.draw(&Text::new(
                "no data",
                (PANEL.0 as i32 / 2 - 20, PANEL.1 as i32 / 2),
                (FONT, 14).into_font(),
            ))?;
        }
        // As in Grafana, a series is broken where it has no samples; series that stayed at 0
        // while others moved are drawn but kept out of the legend, so it names what moved.
        let any_moved = lines
            .iter()
            .any(|l| l.points.iter().any(|&(_, v)| v != 0.0));
        let mut legends = 0;
        for (index, line) in lines.iter().enumerate() {
            let color = Palette99::pick(index).to_rgba();
            let moved = line.points.iter().any(|&(_, v)| v != 0.0);
            for (n, segment) in segments(&line.points, args.step).into_iter().enumerate() {
                let drawn = chart.draw_series(LineSeries::new(
                    segment.iter().map(|&(t, v)| (t, v * factor)),
                    color.stroke_width(2),
                ))?;
                if n == 0 && (moved || !any_moved) {
                    legends += 1;
                    drawn.label(line.legend.clone()).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 14, y)], color.stroke_width(2))
                    });
                }
            }
        }
        if legends > 0 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(200, 200, 200))
                .label_font((FONT, 12))
                .draw()?;
        }
    }
    root.present()?;
    Ok(())
}
