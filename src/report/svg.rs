//! Hand-written SVG line charts: a log or linear x axis, a linear y axis, series of points, dashed
//! horizontal reference lines and a legend. Small enough that a plotting crate would cost more
//! build time than it saves.
//!
//! Plotted elements carry their data (`data-series`, `data-x`, `data-y`) so tests and readers can
//! map every mark back to the number it shows.

use std::fmt::Write;

const WIDTH: f64 = 660.0;
const HEIGHT: f64 = 400.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 52.0;

/// Tableau 10: distinguishable, and readable when printed in grey.
pub const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

pub fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// A polyline through points, optionally with a dot on each.
pub struct Series {
    pub name: String,
    pub color: &'static str,
    pub points: Vec<(f64, f64)>,
    pub dots: bool,
    /// An interval around the line, `(x, low, high)`, drawn as a translucent band; empty for none.
    pub band: Vec<(f64, f64, f64)>,
    /// Hover text of the line (the arm it came from); the name when `None`.
    pub tooltip: Option<String>,
}

/// A dashed horizontal line across the plot (a zero-shot baseline).
pub struct HLine {
    pub name: String,
    pub color: &'static str,
    pub y: f64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum XScale {
    Linear,
    Log10,
}

pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_scale: XScale,
    pub series: Vec<Series>,
    pub hlines: Vec<HLine>,
    /// Shown under the title, e.g. why some arms are not plotted.
    pub note: Option<String>,
}

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Round tick values covering `[lo, hi]`, about `target` of them, with step 1, 2 or 5 × 10^k.
fn linear_ticks(lo: f64, hi: f64, target: usize) -> (f64, f64, Vec<f64>) {
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - pad, hi + pad)
    };
    let raw = (hi - lo) / target as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let start = (lo / step).floor() * step;
    let end = (hi / step).ceil() * step;
    let count = ((end - start) / step).round() as usize;
    let ticks = (0..=count).map(|i| start + i as f64 * step).collect();
    (start, end, ticks)
}

/// A log domain around `[lo, hi]` (both > 0) with some room at both ends, so no point sits on the
/// frame, and ticks at powers of ten, or at 1-2-5 steps when fewer than two powers fall inside.
/// The band of `series`: the polygon along the high ends left to right and back along the low ends.
fn write_band(s: &mut String, frame: &Frame, series: &Series, plottable_x: impl Fn(f64) -> bool) {
    let band: Vec<(f64, f64, f64)> = series
        .band
        .iter()
        .copied()
        .filter(|&(x, lo, hi)| plottable_x(x) && lo.is_finite() && hi.is_finite())
        .collect();
    if band.is_empty() {
        return;
    }
    let upper = band.iter().map(|&(x, _, hi)| (x, hi));
    let lower = band.iter().rev().map(|&(x, lo, _)| (x, lo));
    let outline: Vec<String> = upper
        .chain(lower)
        .map(|(x, y)| format!("{:.2},{:.2}", frame.to_x(x), frame.to_y(y)))
        .collect();
    let data: Vec<String> = band
        .iter()
        .map(|(x, lo, hi)| format!("{x}:{lo}:{hi}"))
        .collect();
    let _ = write!(
        s,
        r#"<polygon class="band" data-series="{}" data-band="{}" points="{}" fill="{}" fill-opacity="0.18" stroke="none"/>"#,
        escape(&series.name),
        data.join(" "),
        outline.join(" "),
        series.color
    );
}

fn log_ticks(lo: f64, hi: f64) -> (f64, f64, Vec<f64>) {
    let (log_lo, log_hi) = (lo.log10(), hi.log10());
    let span = (log_hi - log_lo).max(1.0);
    let pad = span * 0.08;
    let (log_lo, log_hi) = if log_hi - log_lo < 1.0 {
        let mid = (log_lo + log_hi) / 2.0;
        (mid - 0.5 - pad, mid + 0.5 + pad)
    } else {
        (log_lo - pad, log_hi + pad)
    };
    let inside = |v: &f64| v.log10() >= log_lo - 1e-9 && v.log10() <= log_hi + 1e-9;
    let decades = (log_lo.floor() as i32)..=(log_hi.ceil() as i32);
    let mut ticks: Vec<f64> = decades
        .clone()
        .map(|e| 10f64.powi(e))
        .filter(inside)
        .collect();
    if ticks.len() < 2 {
        ticks = decades
            .flat_map(|e| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(e)))
            .filter(inside)
            .collect();
    }
    (10f64.powf(log_lo), 10f64.powf(log_hi), ticks)
}

fn tick_label(v: f64, x_scale: XScale) -> String {
    if x_scale == XScale::Log10 {
        return match v {
            v if v >= 1e6 => format!("{}M", v / 1e6),
            v if v >= 1e3 => format!("{}k", v / 1e3),
            v => format!("{v}"),
        };
    }
    // Enough digits to tell neighbouring ticks apart, no float noise.
    let text = format!("{v:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

/// The plot area's scales: data ranges with their ticks, and the mapping to SVG coordinates.
struct Frame {
    x_scale: XScale,
    x_range: (f64, f64),
    x_ticks: Vec<f64>,
    y_range: (f64, f64),
    y_ticks: Vec<f64>,
}

const PLOT_W: f64 = WIDTH - LEFT - RIGHT;
const PLOT_H: f64 = HEIGHT - TOP - BOTTOM;

impl Frame {
    fn to_x(&self, x: f64) -> f64 {
        let (lo, hi) = self.x_range;
        let t = match self.x_scale {
            XScale::Log10 => (x.log10() - lo.log10()) / (hi.log10() - lo.log10()),
            XScale::Linear => (x - lo) / (hi - lo),
        };
        LEFT + t * PLOT_W
    }

    fn to_y(&self, y: f64) -> f64 {
        let (lo, hi) = self.y_range;
        TOP + PLOT_H - (y - lo) / (hi - lo) * PLOT_H
    }
}

impl Chart {
    pub fn render(&self) -> String {
        let frame = self.frame();
        let mut s = String::new();
        self.write_header(&mut s);
        write_grid(&mut s, &frame);
        self.write_axes(&mut s, &frame);
        self.write_baselines(&mut s, &frame);
        for series in &self.series {
            self.write_series(&mut s, &frame, series);
        }
        self.write_legend(&mut s);
        s.push_str("</g></svg>\n");
        s
    }

    /// Whether `x` can be placed on the x axis (a log axis has no place for 0 or less).
    fn plottable_x(&self, x: f64) -> bool {
        x.is_finite() && (self.x_scale == XScale::Linear || x > 0.0)
    }

    fn frame(&self) -> Frame {
        let xs: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .filter(|&x| self.plottable_x(x))
            .collect();
        let ys: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| {
                let band = s.band.iter().flat_map(|&(_, lo, hi)| [lo, hi]);
                s.points.iter().map(|p| p.1).chain(band)
            })
            .chain(self.hlines.iter().map(|h| h.y))
            .filter(|y| y.is_finite())
            .collect();
        let min = |v: &[f64], default: f64| v.iter().copied().reduce(f64::min).unwrap_or(default);
        let max = |v: &[f64], default: f64| v.iter().copied().reduce(f64::max).unwrap_or(default);
        let (x_lo, x_hi, x_ticks) = match self.x_scale {
            XScale::Log10 => log_ticks(min(&xs, 1.0), max(&xs, 1000.0)),
            XScale::Linear => linear_ticks(min(&xs, 0.0).min(0.0), max(&xs, 1.0), 6),
        };
        // A little room below and above, so a baseline at the lowest value does not hide in the frame.
        let (y_min, y_max) = (min(&ys, 0.0), max(&ys, 1.0));
        let room = (y_max - y_min) * 0.04;
        let (y_lo, y_hi, y_ticks) = linear_ticks(y_min - room, y_max + room, 5);
        Frame {
            x_scale: self.x_scale,
            x_range: (x_lo, x_hi),
            x_ticks,
            y_range: (y_lo, y_hi),
            y_ticks,
        }
    }

    fn write_header(&self, s: &mut String) {
        let _ = write!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{title}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="12">"#,
            title = escape(&self.title)
        );
        let _ = write!(
            s,
            r##"<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>"##
        );
        let _ = write!(
            s,
            r##"<text x="{LEFT}" y="20" font-size="15" font-weight="600" fill="#222">{}</text>"##,
            escape(&self.title)
        );
        if let Some(note) = &self.note {
            let _ = write!(
                s,
                r##"<text x="{LEFT}" y="34" font-size="11" fill="#777">{}</text>"##,
                escape(note)
            );
        }
    }

    /// The frame, tick labels and axis labels.
    fn write_axes(&self, s: &mut String, frame: &Frame) {
        let _ = write!(
            s,
            r##"<rect class="frame" x="{LEFT}" y="{TOP}" width="{PLOT_W}" height="{PLOT_H}" fill="none" stroke="#888"/>"##
        );
        s.push_str(r##"<g class="y-ticks" fill="#444" text-anchor="end">"##);
        for &t in &frame.y_ticks {
            let _ = write!(
                s,
                r#"<text x="{:.2}" y="{:.2}">{}</text>"#,
                LEFT - 6.0,
                frame.to_y(t) + 4.0,
                tick_label(t, XScale::Linear)
            );
        }
        s.push_str("</g>");
        s.push_str(r##"<g class="x-ticks" fill="#444" text-anchor="middle">"##);
        for &t in &frame.x_ticks {
            let _ = write!(
                s,
                r#"<text x="{:.2}" y="{:.2}">{}</text>"#,
                frame.to_x(t),
                TOP + PLOT_H + 16.0,
                tick_label(t, self.x_scale)
            );
        }
        s.push_str("</g>");
        let _ = write!(
            s,
            r##"<text x="{:.2}" y="{:.2}" text-anchor="middle" fill="#222">{}</text>"##,
            LEFT + PLOT_W / 2.0,
            HEIGHT - 12.0,
            escape(&self.x_label)
        );
        let _ = write!(
            s,
            r##"<text transform="translate(16 {:.2}) rotate(-90)" text-anchor="middle" fill="#222">{}</text>"##,
            TOP + PLOT_H / 2.0,
            escape(&self.y_label)
        );
    }

    /// Zero-shot baselines as dashed horizontal lines.
    fn write_baselines(&self, s: &mut String, frame: &Frame) {
        for h in self.hlines.iter().filter(|h| h.y.is_finite()) {
            let y = frame.to_y(h.y);
            let _ = write!(
                s,
                r#"<line class="baseline" data-series="{}" data-y="{}" x1="{LEFT}" x2="{:.2}" y1="{y:.2}" y2="{y:.2}" stroke="{}" stroke-width="1.5" stroke-dasharray="6 4"><title>{} zero-shot: {}</title></line>"#,
                escape(&h.name),
                h.y,
                LEFT + PLOT_W,
                h.color,
                escape(&h.name),
                h.y
            );
        }
    }

    fn write_series(&self, s: &mut String, frame: &Frame, series: &Series) {
        let points: Vec<(f64, f64)> = series
            .points
            .iter()
            .copied()
            .filter(|&(x, y)| self.plottable_x(x) && y.is_finite())
            .collect();
        if points.is_empty() {
            return;
        }
        write_band(s, frame, series, |x| self.plottable_x(x));
        let path: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{:.2},{:.2}", frame.to_x(*x), frame.to_y(*y)))
            .collect();
        let _ = write!(
            s,
            r#"<polyline class="series" data-series="{}" points="{}" fill="none" stroke="{}" stroke-width="2" stroke-linejoin="round"><title>{}</title></polyline>"#,
            escape(&series.name),
            path.join(" "),
            series.color,
            escape(series.tooltip.as_deref().unwrap_or(&series.name))
        );
        if series.dots {
            for (x, y) in &points {
                let _ = write!(
                    s,
                    r#"<circle class="point" data-series="{name}" data-x="{x}" data-y="{y}" cx="{:.2}" cy="{:.2}" r="4" fill="{}"><title>{name}, {x}: {y}</title></circle>"#,
                    frame.to_x(*x),
                    frame.to_y(*y),
                    series.color,
                    name = escape(&series.name),
                );
            }
        }
    }

    /// One entry per series name; a dashed swatch for baselines. Leaves the legend's group open.
    fn write_legend(&self, s: &mut String) {
        let mut entries: Vec<(String, &str, bool)> = Vec::new();
        for series in &self.series {
            entries.push((series.name.clone(), series.color, false));
        }
        for h in &self.hlines {
            entries.push((format!("{} zero-shot", h.name), h.color, true));
        }
        let legend_x = LEFT + PLOT_W + 14.0;
        s.push_str(r#"<g class="legend">"#);
        for (i, (name, color, dashed)) in entries.iter().enumerate() {
            let y = TOP + 8.0 + i as f64 * 18.0;
            let dash = if *dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            let _ = write!(
                s,
                r##"<line x1="{legend_x}" x2="{:.2}" y1="{y:.2}" y2="{y:.2}" stroke="{color}" stroke-width="2"{dash}/><text x="{:.2}" y="{:.2}" fill="#222">{}</text>"##,
                legend_x + 22.0,
                legend_x + 28.0,
                y + 4.0,
                escape(&truncate(name, 24))
            );
        }
    }
}

/// Grid lines at the ticks.
fn write_grid(s: &mut String, frame: &Frame) {
    s.push_str(r##"<g class="grid" stroke="#e4e4e4" stroke-width="1">"##);
    for &t in &frame.y_ticks {
        let y = frame.to_y(t);
        let _ = write!(
            s,
            r#"<line x1="{LEFT}" x2="{:.2}" y1="{y:.2}" y2="{y:.2}"/>"#,
            LEFT + PLOT_W
        );
    }
    for &t in &frame.x_ticks {
        let x = frame.to_x(t);
        let _ = write!(
            s,
            r#"<line x1="{x:.2}" x2="{x:.2}" y1="{TOP}" y2="{:.2}"/>"#,
            TOP + PLOT_H
        );
    }
    s.push_str("</g>");
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut t: String = text.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_ticks_cover_the_range_in_round_steps() {
        let (lo, hi, ticks) = linear_ticks(0.12, 0.48, 5);
        assert!(lo <= 0.12 && hi >= 0.48);
        assert_eq!(ticks.len(), 5, "{ticks:?}");
        assert!((ticks[1] - ticks[0] - 0.1).abs() < 1e-12);
        // A single value still gets a non-empty range.
        let (lo, hi, ticks) = linear_ticks(3.0, 3.0, 5);
        assert!(lo < 3.0 && hi > 3.0 && ticks.len() >= 2);
        let (lo, hi, _) = linear_ticks(0.0, 0.0, 5);
        assert!(lo < 0.0 && hi > 0.0);
        let (lo, hi, _) = linear_ticks(-2.5, -0.5, 5);
        assert!(lo <= -2.5 && hi >= -0.5);
    }

    #[test]
    fn log_ticks_pad_the_domain_and_fall_back_to_1_2_5() {
        let (lo, hi, ticks) = log_ticks(100.0, 10_000.0);
        assert!(lo < 100.0 && hi > 10_000.0, "points stay off the frame");
        assert_eq!(ticks, [100.0, 1000.0, 10_000.0]);
        let (lo, hi, ticks) = log_ticks(300.0, 300.0);
        assert!(lo < 300.0 && hi > 300.0);
        assert!(
            ticks.len() >= 2 && ticks.iter().all(|t| *t >= lo && *t <= hi),
            "{ticks:?}"
        );
    }

    #[test]
    fn labels_are_short_and_escaped() {
        assert_eq!(tick_label(10_000.0, XScale::Log10), "10k");
        assert_eq!(tick_label(2e6, XScale::Log10), "2M");
        assert_eq!(tick_label(0.30000000000000004, XScale::Linear), "0.3");
        assert_eq!(tick_label(-0.0, XScale::Linear), "0");
        assert_eq!(escape(r#"a<b & "c""#), "a&lt;b &amp; &quot;c&quot;");
    }
}
