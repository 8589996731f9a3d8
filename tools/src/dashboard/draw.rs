//! The dashboard's grid drawn to SVG with plotters: each panel at its `gridPos` with its
//! title, time series as lines with a legend table, tables as rows, stats as their last
//! values, in Grafana's dark theme and classic palette.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use canary_control::metrics::prometheus::Series;

use super::{Dashboard, GridPos, Panel, TimeRange};
use crate::Result;

/// The picture's width in pixels; the 24 grid columns share it.
pub const WIDTH: u32 = 1440;
const PAD: u32 = 12;
const HEADER: u32 = 48;
const GAP: u32 = 8;
const COLUMN: u32 = (WIDTH - 2 * PAD + GAP) / 24;
/// One grid row in pixels (Grafana: 30 px and an 8 px margin; a little more here, so that a
/// legend of several series fits under its chart).
const ROW: u32 = 44;
const TITLE: u32 = 30;
const LINE: u32 = 17;
/// Left of the chart: the y axis's labels.
const Y_LABELS: u32 = 70;

const BACKGROUND: RGBColor = RGBColor(0x11, 0x12, 0x17);
const PANEL: RGBColor = RGBColor(0x18, 0x1b, 0x1f);
const BORDER: RGBColor = RGBColor(0x2c, 0x30, 0x35);
const GRID: RGBColor = RGBColor(0x2c, 0x30, 0x35);
const TEXT: RGBColor = RGBColor(0xcc, 0xcc, 0xdc);
const TEXT_WEAK: RGBColor = RGBColor(0x8e, 0x8e, 0x9e);
/// Grafana's classic palette, in its order.
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x7e, 0xb2, 0x6d),
    RGBColor(0xea, 0xb8, 0x39),
    RGBColor(0x6e, 0xd0, 0xe0),
    RGBColor(0xef, 0x84, 0x3c),
    RGBColor(0xe2, 0x4d, 0x42),
    RGBColor(0x1f, 0x78, 0xc1),
    RGBColor(0xba, 0x43, 0xa9),
    RGBColor(0x70, 0x5d, 0xa0),
    RGBColor(0x50, 0x86, 0x42),
    RGBColor(0xcc, 0xa3, 0x00),
];

/// A panel's series as drawn: legend and data.
#[derive(Debug, Clone)]
pub struct Drawn {
    /// The legend (from `legendFormat`).
    pub legend: String,
    /// The series.
    pub series: Series,
}

/// A panel's pixel rectangle `(x, y, width, height)` in the picture.
pub fn panel_rect(grid: GridPos) -> (u32, u32, u32, u32) {
    (
        PAD + grid.x * COLUMN,
        HEADER + grid.y * ROW,
        grid.w * COLUMN - GAP,
        (grid.h * ROW).saturating_sub(GAP).max(TITLE),
    )
}

/// How many points a panel's chart is wide: Grafana's `maxDataPoints` is its width in pixels.
pub fn chart_points(grid: GridPos) -> u32 {
    panel_rect(grid).2.saturating_sub(Y_LABELS + 24).max(1)
}

/// The SVG of `dashboard` with `data[i]` the series of `dashboard.panels[i]`; `subtitle`
/// under the title (the variables and the time).
pub fn render(
    dashboard: &Dashboard,
    data: &[Vec<Drawn>],
    range: &TimeRange,
    subtitle: &str,
) -> Result<String> {
    let bottom = dashboard
        .panels
        .iter()
        .map(|p| panel_rect(p.grid).1 + panel_rect(p.grid).3)
        .max()
        .unwrap_or(HEADER);
    let height = bottom + PAD;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&BACKGROUND)?;
        root.draw(&Text::new(
            dashboard.title.clone(),
            (PAD as i32, 8),
            font(18, TEXT),
        ))?;
        root.draw(&Text::new(
            subtitle.to_string(),
            (PAD as i32, 30),
            font(12, TEXT_WEAK),
        ))?;
        root.draw(&Text::new(
            "drawn by canary-dashboard from Prometheus's data, not by Grafana",
            ((WIDTH - PAD) as i32, 12),
            right(font(12, TEXT_WEAK)),
        ))?;
        for (panel, series) in dashboard.panels.iter().zip(data) {
            draw_panel(&root, panel, series, range)?;
        }
        root.present()?;
    }
    Ok(svg)
}

fn font(size: u32, color: RGBColor) -> TextStyle<'static> {
    ("sans-serif", size).into_font().color(&color)
}

fn right(style: TextStyle<'static>) -> TextStyle<'static> {
    style.pos(Pos::new(HPos::Right, VPos::Top))
}

fn centre(style: TextStyle<'static>) -> TextStyle<'static> {
    style.pos(Pos::new(HPos::Center, VPos::Center))
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

fn draw_panel(root: &Area, panel: &Panel, series: &[Drawn], range: &TimeRange) -> Result<()> {
    let (x, y, w, h) = panel_rect(panel.grid);
    let area = root.clone().shrink((x, y), (w, h));
    if panel.kind == "row" {
        area.draw(&Text::new(panel.title.clone(), (0, 6), font(15, TEXT)))?;
        return Ok(());
    }
    area.fill(&PANEL)?;
    area.draw(&Rectangle::new(
        [(0, 0), (w as i32 - 1, h as i32 - 1)],
        BORDER.stroke_width(1),
    ))?;
    area.draw(&Text::new(panel.title.clone(), (10, 8), font(14, TEXT)))?;
    let body = area.clone().shrink(
        (10, TITLE),
        (w.saturating_sub(20), h.saturating_sub(TITLE + 8)),
    );
    let (bw, bh) = body.dim_in_pixel();
    if series.is_empty() {
        body.draw(&Text::new(
            "No data",
            ((bw / 2) as i32, (bh / 2) as i32),
            centre(font(16, TEXT_WEAK)),
        ))?;
        return Ok(());
    }
    match panel.kind.as_str() {
        "timeseries" | "graph" => draw_timeseries(&body, panel, series, range),
        "table" => draw_table(&body, panel, series),
        "stat" | "gauge" | "bargauge" => draw_stat(&body, panel, series),
        other => {
            body.draw(&Text::new(
                format!("(a {other} panel: drawn as its title only)"),
                ((bw / 2) as i32, (bh / 2) as i32),
                centre(font(13, TEXT_WEAK)),
            ))?;
            Ok(())
        }
    }
}

fn color(index: usize) -> RGBColor {
    PALETTE.get(index % PALETTE.len()).copied().unwrap_or(TEXT)
}

fn draw_timeseries(body: &Area, panel: &Panel, series: &[Drawn], range: &TimeRange) -> Result<()> {
    let (bw, bh) = body.dim_in_pixel();
    // The legend takes what its rows need, at most half the panel; what does not fit is counted.
    let fit = ((bh / 2) / LINE).saturating_sub(1) as usize;
    let shown = series.len().min(fit.max(1));
    let more = series.len() - shown;
    let legend_rows = shown + 1 + usize::from(more > 0);
    let legend_height = (legend_rows as u32 * LINE + 4).min(bh / 2 + LINE);
    let (chart_area, legend_area) = body.split_vertically(bh.saturating_sub(legend_height));

    let finite: Vec<f64> = series
        .iter()
        .flat_map(|d| d.series.points.iter().map(|(_, v)| *v))
        .filter(|v| v.is_finite())
        .collect();
    let low = finite.iter().copied().fold(0.0_f64, f64::min);
    let mut high = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !high.is_finite() || high <= low {
        high = low + 1.0;
    }
    high += (high - low) * 0.1;
    let unit = panel.unit.clone();
    let decimals = panel.decimals;
    let mut chart = ChartBuilder::on(&chart_area)
        .margin_right(12)
        .margin_top(4)
        .x_label_area_size(20)
        .y_label_area_size(Y_LABELS)
        .build_cartesian_2d(range.start..range.end, low..high)?;
    chart
        .configure_mesh()
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .axis_style(BORDER)
        .label_style(font(11, TEXT_WEAK))
        .x_labels(6)
        .y_labels(5)
        .x_label_formatter(&|t| clock(*t))
        .y_label_formatter(&|v| format_value(*v, &unit, decimals))
        .draw()?;
    let step = range.interval(chart_points(panel.grid));
    for (index, drawn) in series.iter().enumerate() {
        let stroke = color(index).stroke_width(2);
        for segment in segments(&drawn.series.points, step) {
            // A lone point has no line to draw: a dot, as Grafana shows one.
            if let [point] = segment.as_slice() {
                chart.draw_series(std::iter::once(Circle::new(
                    *point,
                    2,
                    color(index).filled(),
                )))?;
            } else {
                chart.draw_series(LineSeries::new(segment, stroke))?;
            }
        }
    }

    // The legend table: a swatch, the name, and the panel's calcs (Grafana's `lastNotNull`…).
    let calcs: Vec<&str> = if panel.legend_calcs.is_empty() {
        vec!["lastNotNull"]
    } else {
        panel.legend_calcs.iter().map(String::as_str).collect()
    };
    let column = 90_i32;
    let right_edge = bw as i32 - 4;
    let header_y = 4;
    legend_area.draw(&Text::new("Name", (22, header_y), font(11, TEXT_WEAK)))?;
    for (i, calc) in calcs.iter().enumerate() {
        legend_area.draw(&Text::new(
            calc_title(calc),
            (right_edge - column * i as i32, header_y),
            right(font(11, TEXT_WEAK)),
        ))?;
    }
    for (row, drawn) in series.iter().take(shown).enumerate() {
        let top = header_y + LINE as i32 * (row as i32 + 1);
        legend_area.draw(&Rectangle::new(
            [(2, top + 5), (16, top + 8)],
            color(row).filled(),
        ))?;
        legend_area.draw(&Text::new(drawn.legend.clone(), (22, top), font(12, TEXT)))?;
        for (i, calc) in calcs.iter().enumerate() {
            let value = reduce(calc, &drawn.series.points);
            legend_area.draw(&Text::new(
                format_value(value, &panel.unit, panel.decimals),
                (right_edge - column * i as i32, top),
                right(font(12, TEXT)),
            ))?;
        }
    }
    if more > 0 {
        let top = header_y + LINE as i32 * (shown as i32 + 1);
        legend_area.draw(&Text::new(
            format!("and {more} more series"),
            (22, top),
            font(12, TEXT_WEAK),
        ))?;
    }
    Ok(())
}

/// The points split where a value is missing (a gap of more than two steps) or not finite.
fn segments(points: &[(f64, f64)], step: f64) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current: Vec<(f64, f64)> = Vec::new();
    let mut last_time = f64::NEG_INFINITY;
    for &(time, value) in points {
        if (!value.is_finite() || time - last_time > 2.0 * step) && !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
        if value.is_finite() {
            current.push((time, value));
        }
        last_time = time;
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn calc_title(calc: &str) -> String {
    match calc {
        "lastNotNull" => "Last *".to_string(),
        "last" => "Last".to_string(),
        "mean" => "Mean".to_string(),
        "max" => "Max".to_string(),
        "min" => "Min".to_string(),
        other => other.to_string(),
    }
}

/// A legend's value of a series: Grafana's reducers by their ids.
pub fn reduce(calc: &str, points: &[(f64, f64)]) -> f64 {
    let mut finite = points.iter().map(|(_, v)| *v).filter(|v| v.is_finite());
    match calc {
        "last" => points.last().map_or(f64::NAN, |(_, v)| *v),
        "mean" => {
            let (sum, n) = finite.fold((0.0, 0_u32), |(s, n), v| (s + v, n + 1));
            if n == 0 {
                f64::NAN
            } else {
                sum / f64::from(n)
            }
        }
        "max" => finite.fold(f64::NAN, f64::max),
        "min" => finite.fold(f64::NAN, f64::min),
        // lastNotNull, and what this renderer does not know.
        _ => finite.next_back().unwrap_or(f64::NAN),
    }
}

fn draw_table(body: &Area, panel: &Panel, series: &[Drawn]) -> Result<()> {
    let (bw, bh) = body.dim_in_pixel();
    let mut columns: Vec<String> = series
        .iter()
        .flat_map(|d| d.series.labels.keys().cloned())
        .filter(|k| k != "__name__")
        .collect();
    columns.sort();
    columns.dedup();
    let rows: Vec<Vec<String>> = series
        .iter()
        .map(|d| {
            let mut row: Vec<String> = columns
                .iter()
                .map(|c| d.series.labels.get(c).cloned().unwrap_or_default())
                .collect();
            let value = d.series.points.last().map_or(f64::NAN, |(_, v)| *v);
            row.push(format_value(value, &panel.unit, panel.decimals));
            row
        })
        .collect();
    columns.push("Value".to_string());
    // Columns as wide as their longest text, shared out over the panel's width.
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .chain(columns.get(i))
                .map(|t| t.chars().count())
                .max()
                .unwrap_or(1)
                + 2
        })
        .collect();
    let total: usize = widths.iter().sum();
    let mut lefts = Vec::new();
    let mut left = 0.0;
    for width in &widths {
        lefts.push(left as i32);
        left += f64::from(bw) * *width as f64 / total.max(1) as f64;
    }
    let row_height = 22_i32;
    for (i, name) in columns.iter().enumerate() {
        let x = lefts.get(i).copied().unwrap_or(0) + 4;
        body.draw(&Text::new(name.clone(), (x, 4), font(12, TEXT_WEAK)))?;
    }
    body.draw(&PathElement::new(
        vec![(0, row_height), (bw as i32, row_height)],
        BORDER.stroke_width(1),
    ))?;
    let fit = (bh as i32 / row_height - 1).max(0) as usize;
    for (r, row) in rows.iter().take(fit).enumerate() {
        let top = row_height * (r as i32 + 1) + 4;
        for (i, cell) in row.iter().enumerate() {
            let x = lefts.get(i).copied().unwrap_or(0) + 4;
            body.draw(&Text::new(cell.clone(), (x, top), font(12, TEXT)))?;
        }
    }
    if rows.len() > fit {
        let top = row_height * (fit as i32 + 1) + 4;
        body.draw(&Text::new(
            format!("and {} more rows", rows.len() - fit),
            (4, top),
            font(12, TEXT_WEAK),
        ))?;
    }
    Ok(())
}

fn draw_stat(body: &Area, panel: &Panel, series: &[Drawn]) -> Result<()> {
    let (bw, bh) = body.dim_in_pixel();
    let slot = bw / series.len().max(1) as u32;
    for (i, drawn) in series.iter().enumerate() {
        let x = (slot * i as u32 + slot / 2) as i32;
        let value = reduce("lastNotNull", &drawn.series.points);
        body.draw(&Text::new(
            format_value(value, &panel.unit, panel.decimals),
            (x, (bh / 2) as i32 - 8),
            centre(font(32, color(i))),
        ))?;
        body.draw(&Text::new(
            drawn.legend.clone(),
            (x, (bh / 2) as i32 + 24),
            centre(font(12, TEXT_WEAK)),
        ))?;
    }
    Ok(())
}

/// Unix seconds as UTC `HH:MM:SS`.
pub fn clock(seconds: f64) -> String {
    let of_day = (seconds.rem_euclid(86_400.0)) as u32;
    format!(
        "{:02}:{:02}:{:02}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// A value in a Grafana unit (`reqps`, `percentunit`, `percent`, `ms`, `s`, `none`/`short`;
/// another unit's name follows the number), with `decimals` or as many as its size needs.
pub fn format_value(value: f64, unit: &str, decimals: Option<usize>) -> String {
    if value.is_nan() {
        return "NaN".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let (scaled, suffix) = match unit {
        "percentunit" => (value * 100.0, "%".to_string()),
        "percent" => (value, "%".to_string()),
        "reqps" => (value, " req/s".to_string()),
        "ms" => (value, " ms".to_string()),
        "s" => (value, " s".to_string()),
        "" | "none" | "short" => (value, String::new()),
        other => (value, format!(" {other}")),
    };
    let Some(decimals) = decimals else {
        let size = scaled.abs();
        let decimals = if size == 0.0 || size >= 100.0 {
            0
        } else if size >= 10.0 {
            1
        } else if size >= 1.0 {
            2
        } else {
            3
        };
        let text = format!("{scaled:.decimals$}");
        let text = if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.')
        } else {
            &text
        };
        return format!("{text}{suffix}");
    };
    format!("{scaled:.decimals$}{suffix}")
}
