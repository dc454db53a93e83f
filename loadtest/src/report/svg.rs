//! The plots of the report, as hand-written SVG.
//!
//! No plotting crate: four small charts do not justify one, and SVG written here has no fonts,
//! scripts or styles to fetch, so it renders the same on GitHub, in a browser and in a ticket.
//! Every chart is 640 × 400 with the plot on the left and the legend in a column on the right.
//! Odd figures never break a chart: NaN and infinite values are left out (or count as 0 in
//! bars), an empty chart says "no data", and an axis over nothing but zeros still spans 0 to 1.

use super::{cameras, num, ramp_name, reference_step};
use crate::results::{Quantiles, Ramp, Report, StepResult};
use lfr_common::markup::escape;
use std::fmt::{self, Display, Write};

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 400.0;
/// Where the legend column starts.
const LEGEND_X: f64 = 488.0;
/// The latency axis stops at this many times the budget: an overloaded step can queue for
/// seconds, and an axis stretched to it would squash the region around the budget, the one the
/// reader needs, into a few pixels.
const LATENCY_CEILING: f64 = 3.0;

/// One colour per ramp, the same in every chart; red is kept for the budget.
const RAMP_COLOURS: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
];
const BUDGET_COLOUR: &str = "#d62728";
const AXIS_COLOUR: &str = "#333333";
const GRID_COLOUR: &str = "#e5e5e5";

/// The stages stacked in `stages.svg`, in pipeline order, with their colours.
const STACKED: [(&str, &str); 3] = [
    ("detect", "#4e79a7"),
    ("embed", "#f28e2b"),
    ("match", "#59a14f"),
];

// ---------------------------------------------------------------------------------------------
// The four charts

/// p99 capture-to-decision (solid) and capture-to-alert (dashed) against cameras, per ramp, with
/// the budget as a red dashed line.
pub fn latency(report: &Report) -> String {
    let mut series = Vec::new();
    for (i, ramp) in report.ramps.iter().enumerate() {
        let name = ramp_name(ramp);
        series.push(Series {
            label: format!("{name} decision"),
            colour: ramp_colour(i),
            dashed: false,
            points: points(ramp, |s| p99_ms(s, "match")),
        });
        series.push(Series {
            label: format!("{name} alert"),
            colour: ramp_colour(i),
            dashed: true,
            points: points(ramp, |s| p99_ms(s, "alert")),
        });
    }
    let budget_ms = report.budget_seconds * 1000.0;
    let budget = (budget_ms.is_finite() && budget_ms > 0.0).then_some(budget_ms);
    LineChart {
        title: "p99 latency from capture",
        x_label: "cameras",
        y_label: "p99 latency (ms)",
        series,
        budget,
        ceiling: budget.map(|b| b * LATENCY_CEILING),
    }
    .render()
}

/// Offered (dashed) and sustained (solid) frames per second against cameras, per ramp.
pub fn throughput(report: &Report) -> String {
    let mut series = Vec::new();
    for (i, ramp) in report.ramps.iter().enumerate() {
        let name = ramp_name(ramp);
        series.push(Series {
            label: format!("{name} offered"),
            colour: ramp_colour(i),
            dashed: true,
            points: points(ramp, |s| Some(s.offered_fps)),
        });
        series.push(Series {
            label: format!("{name} sustained"),
            colour: ramp_colour(i),
            dashed: false,
            points: points(ramp, |s| Some(s.sustained_fps)),
        });
    }
    LineChart {
        title: "Frames per second offered and sustained",
        x_label: "cameras",
        y_label: "frames per second",
        series,
        budget: None,
        ceiling: None,
    }
    .render()
}

/// One horizontal bar per ramp at its reference step: the median time of each stage, stacked.
pub fn stages(report: &Report) -> String {
    let bars: Vec<StageBar> = report
        .ramps
        .iter()
        .filter_map(|ramp| {
            let step = reference_step(ramp)?;
            Some(StageBar {
                label: format!("{} · {}", ramp_name(ramp), cameras(step.cameras)),
                segments: stage_medians_ms(step),
            })
        })
        .collect();
    render_stages(&bars)
}

/// CPU cores per service at each ramp's reference step: one group per service, one bar per ramp.
pub fn usage(report: &Report) -> String {
    let ramps: Vec<(usize, &Ramp, &StepResult)> = report
        .ramps
        .iter()
        .enumerate()
        .filter_map(|(i, ramp)| reference_step(ramp).map(|step| (i, ramp, step)))
        .collect();
    let mut services: Vec<&str> = Vec::new();
    for (_, _, step) in &ramps {
        for u in &step.usage {
            if !services.contains(&u.service.as_str()) {
                services.push(&u.service);
            }
        }
    }
    let groups: Vec<BarGroup> = ramps
        .iter()
        .map(|(i, ramp, step)| BarGroup {
            label: format!("{} · {}", ramp_name(ramp), cameras(step.cameras)),
            colour: ramp_colour(*i),
            values: services
                .iter()
                .map(|name| {
                    step.usage
                        .iter()
                        .find(|u| u.service == *name)
                        .map_or(0.0, |u| finite_or_zero(u.cpu_cores))
                })
                .collect(),
        })
        .collect();
    render_usage(&services, &groups)
}

// ---------------------------------------------------------------------------------------------
// Figures

/// The colour of the `i`th ramp.
fn ramp_colour(i: usize) -> &'static str {
    RAMP_COLOURS[i % RAMP_COLOURS.len()]
}

/// The p99 latency of `stage` since capture, in milliseconds, if measured.
fn p99_ms(step: &StepResult, stage: &str) -> Option<f64> {
    step.since_capture(stage).map(|q| q.p99 * 1000.0)
}

/// (cameras, y) for every step of `ramp` with a finite y.
fn points(ramp: &Ramp, y: impl Fn(&StepResult) -> Option<f64>) -> Vec<(f64, f64)> {
    ramp.steps
        .iter()
        .filter_map(|s| Some((f64::from(s.cameras), y(s)?)))
        .filter(|(_, y)| y.is_finite())
        .collect()
}

/// The median own time of each stacked stage in milliseconds: `own` where measured, else the
/// difference of the since-capture medians of the stage and the one before it (0 for a stage not
/// measured at all, so that the bar still shows the others).
fn stage_medians_ms(step: &StepResult) -> Vec<(&'static str, &'static str, f64)> {
    let since = |stage: &str| step.since_capture(stage).map(|q| finite_or_zero(q.p50));
    let mut previous = Some(0.0);
    let mut segments = Vec::new();
    for (stage, colour) in STACKED {
        let own = step
            .latency
            .iter()
            .find(|l| l.stage == stage)
            .and_then(|l| l.own)
            .filter(|q: &Quantiles| q.count > 0)
            .map(|q| finite_or_zero(q.p50));
        let end = since(stage);
        let seconds = own
            .or_else(|| Some(end? - previous?))
            .unwrap_or(0.0)
            .max(0.0);
        segments.push((stage, colour, seconds * 1000.0));
        previous = end;
    }
    segments
}

/// `x`, or 0 where it is NaN or infinite.
fn finite_or_zero(x: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

// ---------------------------------------------------------------------------------------------
// Line charts

/// One line of a line chart.
struct Series {
    label: String,
    colour: &'static str,
    /// Dashed line and open markers; solid line and filled markers otherwise.
    dashed: bool,
    /// (x, y), finite, in step order.
    points: Vec<(f64, f64)>,
}

/// A line chart against cameras, with an optional budget line.
struct LineChart {
    title: &'static str,
    x_label: &'static str,
    y_label: &'static str,
    series: Vec<Series>,
    /// Where to draw the red dashed budget line (y units).
    budget: Option<f64>,
    /// Values above this are drawn at it, and a note says so.
    ceiling: Option<f64>,
}

impl LineChart {
    fn render(&self) -> String {
        let area = Area::new(64.0);
        let all = || self.series.iter().flat_map(|s| s.points.iter());
        let x = Axis::fit(all().map(|p| p.0), 1.0, true);
        let y_values = all().map(|p| self.clip(p.1)).chain(self.budget);
        let y = Axis::fit(y_values, 1.1, false);
        let mut svg = Canvas::new(self.title);
        svg.axes(&area, &x, &y, self.x_label, self.y_label);
        if all().next().is_none() {
            svg.no_data(&area);
        }
        if let Some(ceiling) = self.ceiling.filter(|&c| all().any(|p| p.1 > c)) {
            let c = num(ceiling.round());
            let note = format!("points above {c} are drawn at {c} (off scale)");
            svg.text((area.right, area.top - 8.0), &note, "end", 10.0, "#777777");
        }
        let mut legend = Legend::new();
        for s in &self.series {
            self.draw_series(&mut svg, &area, &x, &y, s);
            legend.line(&mut svg, &s.label, s.colour, s.dashed, true);
        }
        if let Some(budget) = self.budget {
            let py = area.y(&y, budget);
            svg.line((area.left, py), (area.right, py), BUDGET_COLOUR, 1.5, true);
            let label = format!("budget {} ms", num(budget.round()));
            legend.line(&mut svg, &label, BUDGET_COLOUR, true, false);
        }
        svg.finish()
    }

    /// `y`, or the ceiling where it is above it.
    fn clip(&self, y: f64) -> f64 {
        self.ceiling.map_or(y, |c| y.min(c))
    }

    /// A series' line and markers; a single point gets only its marker.
    fn draw_series(&self, svg: &mut Canvas, area: &Area, x: &Axis, y: &Axis, s: &Series) {
        let pixels: Vec<(f64, f64)> = s
            .points
            .iter()
            .map(|&(px, py)| (area.x(x, px), area.y(y, self.clip(py))))
            .collect();
        if pixels.len() > 1 {
            svg.polyline(&pixels, s.colour, s.dashed);
        }
        for &p in &pixels {
            svg.marker(p, s.colour, s.dashed);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Bar charts

/// One ramp's bar in `stages.svg`.
struct StageBar {
    label: String,
    /// (stage, colour, milliseconds), in pipeline order.
    segments: Vec<(&'static str, &'static str, f64)>,
}

/// Horizontal stacked bars, one per ramp, with the time of each segment written on it where it
/// fits and the total at the bar's end.
fn render_stages(bars: &[StageBar]) -> String {
    let area = Area::new(150.0);
    let totals = bars.iter().map(|b| b.segments.iter().map(|s| s.2).sum());
    let x = Axis::fit(totals, 1.2, false);
    let mut svg = Canvas::new("Median time per stage (p50)");
    svg.x_axis(&area, &x, "milliseconds");
    if bars.is_empty() {
        svg.no_data(&area);
    }
    let band = area.height() / bars.len().max(1) as f64;
    let height = (band * 0.6).min(36.0);
    for (i, bar) in bars.iter().enumerate() {
        let top = area.top + band * i as f64 + (band - height) / 2.0;
        let middle = top + height / 2.0;
        svg.text(
            (area.left - 8.0, middle + 4.0),
            &bar.label,
            "end",
            11.0,
            AXIS_COLOUR,
        );
        let mut start = 0.0;
        for &(_, colour, ms) in &bar.segments {
            let (x0, x1) = (area.x(&x, start), area.x(&x, start + ms));
            svg.rect((x0, top), (x1 - x0, height), colour);
            if x1 - x0 >= 36.0 {
                let label = format!("{} ms", num(ms.round()));
                svg.text(
                    ((x0 + x1) / 2.0, middle + 4.0),
                    &label,
                    "middle",
                    10.0,
                    "#ffffff",
                );
            }
            start += ms;
        }
        let total = format!("{} ms", num(start.round()));
        let end = area.x(&x, start) + 4.0;
        svg.text((end, middle + 4.0), &total, "start", 11.0, AXIS_COLOUR);
    }
    let mut legend = Legend::new();
    for (stage, colour) in STACKED {
        legend.swatch(&mut svg, stage, colour);
    }
    svg.finish()
}

/// One ramp's bars in `usage.svg`: its value for each service.
struct BarGroup {
    label: String,
    colour: &'static str,
    values: Vec<f64>,
}

/// Vertical grouped bars: one group per service, one bar per ramp in it.
fn render_usage(services: &[&str], groups: &[BarGroup]) -> String {
    let area = Area::new(64.0);
    let values = groups.iter().flat_map(|g| g.values.iter().copied());
    let y = Axis::fit(values, 1.15, false);
    let mut svg = Canvas::new("CPU cores per service");
    svg.y_axis(&area, &y, "CPU cores");
    svg.line(
        (area.left, area.bottom),
        (area.right, area.bottom),
        AXIS_COLOUR,
        1.0,
        false,
    );
    svg.text(
        ((area.left + area.right) / 2.0, area.bottom + 40.0),
        "service",
        "middle",
        12.0,
        AXIS_COLOUR,
    );
    if services.is_empty() || groups.is_empty() {
        svg.no_data(&area);
    }
    let slot = area.width() / services.len().max(1) as f64;
    let bar = slot * 0.8 / groups.len().max(1) as f64;
    for (s, service) in services.iter().enumerate() {
        let left = area.left + slot * s as f64 + slot * 0.1;
        let centre = area.left + slot * (s as f64 + 0.5);
        svg.text(
            (centre, area.bottom + 18.0),
            service,
            "middle",
            11.0,
            AXIS_COLOUR,
        );
        for (g, group) in groups.iter().enumerate() {
            let value = group.values.get(s).copied().unwrap_or(0.0);
            let (x0, top) = (left + bar * g as f64, area.y(&y, value));
            svg.rect((x0, top), (bar * 0.9, area.bottom - top), group.colour);
            if bar >= 20.0 {
                let label = format!("{value:.2}");
                let at = (x0 + bar * 0.45, top - 3.0);
                svg.text(at, &label, "middle", 9.0, AXIS_COLOUR);
            }
        }
    }
    let mut legend = Legend::new();
    for group in groups {
        legend.swatch(&mut svg, &group.label, group.colour);
    }
    svg.finish()
}

// ---------------------------------------------------------------------------------------------
// Axes and layout

/// The plot area in pixels; left leaves room for tick or bar labels.
struct Area {
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
}

impl Area {
    fn new(left: f64) -> Area {
        Area {
            left,
            right: LEGEND_X - 16.0,
            top: 48.0,
            bottom: HEIGHT - 56.0,
        }
    }

    fn width(&self) -> f64 {
        self.right - self.left
    }

    fn height(&self) -> f64 {
        self.bottom - self.top
    }

    /// The pixel column of `v` on the horizontal `axis`.
    fn x(&self, axis: &Axis, v: f64) -> f64 {
        self.left + axis.fraction(v) * self.width()
    }

    /// The pixel row of `v` on the vertical `axis` (up is more).
    fn y(&self, axis: &Axis, v: f64) -> f64 {
        self.bottom - axis.fraction(v) * self.height()
    }
}

/// A linear axis from `lo` to `hi` with a tick every `step`, all "nice" round numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Axis {
    lo: f64,
    hi: f64,
    step: f64,
}

impl Axis {
    /// An axis from 0 (or the least value, if negative) to the largest value times `headroom`,
    /// so that markers and labels are not cut by the edge. Non-finite values are ignored; with
    /// none left, or all zero, the axis spans 0 to 1. `integer` axes (cameras) tick on whole
    /// numbers.
    fn fit(values: impl Iterator<Item = f64>, headroom: f64, integer: bool) -> Axis {
        let (min, max) = values
            .filter(|v| v.is_finite())
            .fold((0.0_f64, 0.0_f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let max = if max > 0.0 { max * headroom } else { max };
        let range = max - min;
        if !(range.is_finite() && range > 0.0) {
            return Axis {
                lo: 0.0,
                hi: 1.0,
                step: if integer { 1.0 } else { 0.2 },
            };
        }
        let mut step = nice_step(range / 5.0);
        if integer {
            step = step.max(1.0).round();
        }
        let lo = (min / step).floor() * step;
        let hi = (max / step).ceil() * step;
        if !(lo.is_finite() && hi.is_finite() && hi > lo) {
            return Axis {
                lo: 0.0,
                hi: 1.0,
                step: 0.2,
            };
        }
        Axis { lo, hi, step }
    }

    /// Where `v` lies between `lo` (0) and `hi` (1); 0 for a non-finite `v`.
    fn fraction(&self, v: f64) -> f64 {
        let f = (v - self.lo) / (self.hi - self.lo);
        if f.is_finite() {
            f
        } else {
            0.0
        }
    }

    /// The tick values, `lo` to `hi` inclusive.
    fn ticks(&self) -> Vec<f64> {
        let n = ((self.hi - self.lo) / self.step).round();
        let n = if n.is_finite() {
            n.clamp(0.0, 20.0)
        } else {
            0.0
        } as usize;
        (0..=n).map(|i| self.lo + self.step * i as f64).collect()
    }

    /// A tick's label, with as many decimals as the step needs.
    fn label(&self, v: f64) -> String {
        // -0.0 would print as "-0".
        let v = if v == 0.0 { 0.0 } else { v };
        let decimals = (-self.step.log10()).ceil().clamp(0.0, 6.0) as usize;
        format!("{v:.decimals$}")
    }
}

/// The round number (1, 2 or 5 times a power of ten) nearest above `raw`.
fn nice_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.log10().floor());
    let nice = match raw / magnitude {
        n if n <= 1.0 => 1.0,
        n if n <= 2.0 => 2.0,
        n if n <= 5.0 => 5.0,
        _ => 10.0,
    };
    nice * magnitude
}

/// The legend column, filled from the top one entry at a time.
struct Legend {
    row: usize,
}

impl Legend {
    fn new() -> Legend {
        Legend { row: 0 }
    }

    /// The top of the next entry.
    fn next(&mut self) -> f64 {
        let y = 56.0 + 18.0 * self.row as f64;
        self.row += 1;
        y
    }

    /// An entry for a line: a short sample of it (with a marker if the line has them), then
    /// `label`.
    fn line(&mut self, svg: &mut Canvas, label: &str, colour: &str, dashed: bool, marker: bool) {
        let y = self.next();
        svg.line((LEGEND_X, y), (LEGEND_X + 22.0, y), colour, 2.0, dashed);
        if marker {
            svg.marker((LEGEND_X + 11.0, y), colour, dashed);
        }
        svg.text(
            (LEGEND_X + 28.0, y + 4.0),
            label,
            "start",
            11.0,
            AXIS_COLOUR,
        );
    }

    /// An entry for a bar: a square of its colour, then `label`.
    fn swatch(&mut self, svg: &mut Canvas, label: &str, colour: &str) {
        let y = self.next();
        svg.rect((LEGEND_X + 5.0, y - 6.0), (12.0, 12.0), colour);
        svg.text(
            (LEGEND_X + 28.0, y + 4.0),
            label,
            "start",
            11.0,
            AXIS_COLOUR,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// SVG text

/// A pixel coordinate or length, written with one decimal; 0 if not finite, so that no chart
/// ever holds "NaN".
struct Px(f64);

impl Display for Px {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1}", finite_or_zero(self.0))
    }
}

/// An SVG document being written.
struct Canvas {
    out: String,
}

impl Canvas {
    /// The document's start: size, white background and `title` at the top.
    fn new(title: &str) -> Canvas {
        let mut svg = Canvas {
            out: format!(
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
                 viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\">\n\
                 <title>{t}</title>\n",
                w = WIDTH,
                h = HEIGHT,
                t = escape(title)
            ),
        };
        svg.rect((0.0, 0.0), (WIDTH, HEIGHT), "#ffffff");
        svg.text((16.0, 28.0), title, "start", 15.0, AXIS_COLOUR);
        svg
    }

    /// The document, closed.
    fn finish(mut self) -> String {
        self.out.push_str("</svg>\n");
        self.out
    }

    /// Appends one element.
    fn push(&mut self, element: fmt::Arguments<'_>) {
        // Writing to a String cannot fail.
        let _ = self.out.write_fmt(element);
        self.out.push('\n');
    }

    fn line(&mut self, from: (f64, f64), to: (f64, f64), colour: &str, width: f64, dashed: bool) {
        self.push(format_args!(
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{colour}\" \
             stroke-width=\"{}\"{}/>",
            Px(from.0),
            Px(from.1),
            Px(to.0),
            Px(to.1),
            Px(width),
            dash(dashed)
        ));
    }

    fn polyline(&mut self, points: &[(f64, f64)], colour: &str, dashed: bool) {
        let points: Vec<String> = points
            .iter()
            .map(|&(x, y)| format!("{},{}", Px(x), Px(y)))
            .collect();
        self.push(format_args!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" \
             stroke-linejoin=\"round\"{}/>",
            points.join(" "),
            dash(dashed)
        ));
    }

    /// A point of a series: filled for solid lines, open for dashed ones.
    fn marker(&mut self, at: (f64, f64), colour: &str, open: bool) {
        let fill = if open { "#ffffff" } else { colour };
        self.push(format_args!(
            "<circle cx=\"{}\" cy=\"{}\" r=\"3.5\" fill=\"{fill}\" stroke=\"{colour}\" \
             stroke-width=\"1.5\"/>",
            Px(at.0),
            Px(at.1)
        ));
    }

    /// A filled rectangle; a negative size is drawn as 0, since SVG refuses negative ones.
    fn rect(&mut self, at: (f64, f64), size: (f64, f64), colour: &str) {
        self.push(format_args!(
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{colour}\"/>",
            Px(at.0),
            Px(at.1),
            Px(size.0.max(0.0)),
            Px(size.1.max(0.0))
        ));
    }

    /// Text, escaped; `anchor` is `start`, `middle` or `end`.
    fn text(&mut self, at: (f64, f64), text: &str, anchor: &str, size: f64, colour: &str) {
        self.push(format_args!(
            "<text x=\"{}\" y=\"{}\" font-size=\"{}\" text-anchor=\"{anchor}\" \
             fill=\"{colour}\">{}</text>",
            Px(at.0),
            Px(at.1),
            Px(size),
            escape(text)
        ));
    }

    /// Text turned to read upwards, for the vertical axis' label.
    fn vertical_text(&mut self, at: (f64, f64), text: &str) {
        self.push(format_args!(
            "<text x=\"{x}\" y=\"{y}\" font-size=\"12\" text-anchor=\"middle\" \
             fill=\"{AXIS_COLOUR}\" transform=\"rotate(-90 {x} {y})\">{}</text>",
            escape(text),
            x = Px(at.0),
            y = Px(at.1)
        ));
    }

    /// Both axes of a line chart.
    fn axes(&mut self, area: &Area, x: &Axis, y: &Axis, x_label: &str, y_label: &str) {
        self.y_axis(area, y, y_label);
        self.x_axis(area, x, x_label);
    }

    /// The horizontal axis at the bottom: grid, ticks, labels and name.
    fn x_axis(&mut self, area: &Area, axis: &Axis, name: &str) {
        for t in axis.ticks() {
            let px = area.x(axis, t);
            self.line((px, area.top), (px, area.bottom), GRID_COLOUR, 1.0, false);
            self.line(
                (px, area.bottom),
                (px, area.bottom + 5.0),
                AXIS_COLOUR,
                1.0,
                false,
            );
            let label = axis.label(t);
            self.text(
                (px, area.bottom + 18.0),
                &label,
                "middle",
                11.0,
                AXIS_COLOUR,
            );
        }
        self.line(
            (area.left, area.bottom),
            (area.right, area.bottom),
            AXIS_COLOUR,
            1.0,
            false,
        );
        let centre = (area.left + area.right) / 2.0;
        self.text(
            (centre, area.bottom + 40.0),
            name,
            "middle",
            12.0,
            AXIS_COLOUR,
        );
    }

    /// The vertical axis at the left: grid, ticks, labels and name.
    fn y_axis(&mut self, area: &Area, axis: &Axis, name: &str) {
        for t in axis.ticks() {
            let py = area.y(axis, t);
            self.line((area.left, py), (area.right, py), GRID_COLOUR, 1.0, false);
            self.line(
                (area.left - 5.0, py),
                (area.left, py),
                AXIS_COLOUR,
                1.0,
                false,
            );
            let label = axis.label(t);
            self.text(
                (area.left - 8.0, py + 4.0),
                &label,
                "end",
                11.0,
                AXIS_COLOUR,
            );
        }
        self.line(
            (area.left, area.top),
            (area.left, area.bottom),
            AXIS_COLOUR,
            1.0,
            false,
        );
        self.vertical_text((16.0, (area.top + area.bottom) / 2.0), name);
    }

    /// "no data" across the middle of an empty plot.
    fn no_data(&mut self, area: &Area) {
        let centre = (
            (area.left + area.right) / 2.0,
            (area.top + area.bottom) / 2.0,
        );
        self.text(centre, "no data", "middle", 14.0, "#999999");
    }
}

/// The dash attribute of a dashed line.
fn dash(dashed: bool) -> &'static str {
    if dashed {
        " stroke-dasharray=\"6 4\""
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{empty, sample, step};
    use super::*;

    /// The checks every chart must pass: one document, balanced text elements, no NaN.
    fn assert_well_formed(svg: &str) {
        assert!(svg.starts_with("<svg"), "does not start with <svg");
        assert!(
            svg.trim_end().ends_with("</svg>"),
            "does not end with </svg>"
        );
        assert!(svg.contains("<polyline") || svg.contains("<rect"));
        assert_eq!(svg.matches("<svg").count(), 1);
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
        assert!(!svg.contains("NaN"), "NaN in {svg}");
        assert!(!svg.contains("inf"), "inf in {svg}");
    }

    fn all(report: &Report) -> [String; 4] {
        [
            latency(report),
            throughput(report),
            stages(report),
            usage(report),
        ]
    }

    #[test]
    fn sample_charts_are_well_formed() {
        for svg in all(&sample()) {
            assert_well_formed(&svg);
        }
    }

    #[test]
    fn latency_has_lines_per_ramp_and_the_budget() {
        let svg = latency(&sample());
        assert_eq!(svg.matches("<polyline").count(), 4);
        assert!(svg.contains("budget 500 ms"));
        assert!(svg.contains(BUDGET_COLOUR));
        assert!(svg.contains("5 fps decision"));
        assert!(svg.contains("10 fps alert"));
        // 10 fps at 2 cameras: capture-to-alert p99 1570 ms, over three times the budget.
        assert!(svg.contains("points above 1500 are drawn at 1500 (off scale)"));
        let mut relaxed = sample();
        relaxed.budget_seconds = 1.0;
        assert!(!latency(&relaxed).contains("off scale"));
    }

    #[test]
    fn throughput_has_offered_and_sustained() {
        let svg = throughput(&sample());
        assert_eq!(svg.matches("<polyline").count(), 4);
        assert!(svg.contains("5 fps offered"));
        assert!(svg.contains("10 fps sustained"));
    }

    #[test]
    fn stages_fall_back_to_differences_of_since_capture() {
        // Step at 2 cameras, decision p99 0.24 s: detect own p50 60 ms, embed own p50 36 ms,
        // match since-capture p50 120 ms minus embed's 96 ms = 24 ms.
        let segments = stage_medians_ms(&step(2, 5.0, 0.24, true));
        let ms: Vec<i64> = segments.iter().map(|s| s.2.round() as i64).collect();
        assert_eq!(ms, [60, 36, 24]);
        let svg = stages(&sample());
        assert!(svg.contains("5 fps · 2 cameras"));
        assert!(svg.contains("120 ms"));
    }

    #[test]
    fn usage_groups_every_service() {
        let svg = usage(&sample());
        for service in ["nats", "detect", "embed", "match", "cameras"] {
            assert!(
                svg.contains(&format!(">{service}</text>")),
                "{service} missing"
            );
        }
        assert!(svg.contains("3.00"));
    }

    #[test]
    fn empty_report_gives_empty_charts() {
        for svg in all(&empty()) {
            assert_well_formed(&svg);
            assert!(svg.contains("no data"));
        }
    }

    #[test]
    fn odd_figures_do_not_break_charts() {
        let mut report = sample();
        report.budget_seconds = f64::NAN;
        let s = &mut report.ramps[0].steps[0];
        s.latency[2].since_capture.p99 = f64::INFINITY;
        s.latency[0].own = Some(Quantiles {
            count: 1,
            p50: f64::NAN,
            ..Quantiles::default()
        });
        s.sustained_fps = f64::NAN;
        s.usage[0].cpu_cores = f64::NEG_INFINITY;
        report.ramps[1].steps.truncate(1);
        report.ramps.push(Ramp {
            fps: 1.0,
            steps: Vec::new(),
            max_cameras: None,
        });
        for svg in all(&report) {
            assert_well_formed(&svg);
        }
        let mut zeros = empty();
        let mut flat = step(1, 0.0, 0.0, true);
        flat.usage.iter_mut().for_each(|u| u.cpu_cores = 0.0);
        zeros.ramps.push(Ramp {
            fps: 0.0,
            steps: vec![flat],
            max_cameras: Some(1),
        });
        for svg in all(&zeros) {
            assert_well_formed(&svg);
        }
    }

    #[test]
    fn axes_are_round_and_never_empty() {
        let a = Axis::fit([0.0, 0.0].into_iter(), 1.1, false);
        assert_eq!((a.lo, a.hi), (0.0, 1.0));
        let a = Axis::fit([1.0, 4.0].into_iter(), 1.0, true);
        assert_eq!((a.lo, a.hi, a.step), (0.0, 4.0, 1.0));
        let a = Axis::fit([1.0, 7.0].into_iter(), 1.0, true);
        assert_eq!((a.lo, a.hi, a.step), (0.0, 8.0, 2.0));
        let a = Axis::fit([430.0, f64::NAN].into_iter(), 1.1, false);
        assert_eq!((a.lo, a.hi, a.step), (0.0, 500.0, 100.0));
        assert_eq!(a.ticks().len(), 6);
        let a = Axis::fit([0.33].into_iter(), 1.0, false);
        assert_eq!(a.label(0.1), "0.1");
        assert_eq!(a.label(-0.0), "0.0");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }
}
