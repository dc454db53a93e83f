//! DET plots as standalone SVG, for the `lfr eval` report.
//!
//! A DET (detection error trade-off) curve draws the two errors of a watch list against each other
//! as the threshold sweeps: FPIR across, FNIR up. Both axes are logarithmic, so the low false-alert
//! rates a deployment works at get as much room as the rest instead of being crushed into a
//! corner. Lower and further left is better; one curve per model or run, and marks for the chosen
//! operating points. A rate of zero has no place on a log axis and is drawn on the axis minimum.
//!
//! The SVG is written by hand (no plotting dependency) and is self-contained: it opens in a
//! browser, embeds in HTML, and converts with `rsvg-convert`.

use lfr_common::markup::escape;
use std::fmt::Write;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 540.0;
const LEFT: f64 = 84.0;
const RIGHT: f64 = WIDTH - 24.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = HEIGHT - 72.0;

/// Okabe–Ito colours: told apart with every common colour-vision deficiency.
const PALETTE: [&str; 7] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
];

/// The axes' lowest decades unless the data go lower, and how low they may go.
const FPIR_FLOOR: i32 = -5;
const FNIR_FLOOR: i32 = -3;
const LOWEST_DECADE: i32 = -9;

/// A DET plot: `curves` are (label, [(FPIR, FNIR)]), `marks` are operating points (label, FPIR,
/// FNIR) drawn as dots with their label beside them.
pub fn render_svg(curves: &[(&str, Vec<(f64, f64)>)], marks: &[(&str, f64, f64)]) -> String {
    let xs = curves
        .iter()
        .flat_map(|c| c.1.iter().map(|p| p.0))
        .chain(marks.iter().map(|m| m.1));
    let ys = curves
        .iter()
        .flat_map(|c| c.1.iter().map(|p| p.1))
        .chain(marks.iter().map(|m| m.2));
    let x = LogAxis::new(lowest_decade(xs, FPIR_FLOOR), LEFT, RIGHT);
    let y = LogAxis::new(lowest_decade(ys, FNIR_FLOOR), BOTTOM, TOP);

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12" fill="#222">"##
    );
    let _ = writeln!(
        svg,
        r#"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
    );
    grid(&mut svg, &x, &y);
    axis_titles(&mut svg);
    for (i, (_, points)) in curves.iter().enumerate() {
        curve(&mut svg, &x, &y, points, PALETTE[i % PALETTE.len()]);
    }
    operating_points(&mut svg, &x, &y, marks);
    legend(&mut svg, curves);
    svg.push_str("</svg>\n");
    svg
}

/// One logarithmic axis from 10^`lo` to 1, mapped onto pixels `from`..`to`.
struct LogAxis {
    lo: i32,
    from: f64,
    to: f64,
}

impl LogAxis {
    fn new(lo: i32, from: f64, to: f64) -> LogAxis {
        LogAxis { lo, from, to }
    }

    fn min(&self) -> f64 {
        10f64.powi(self.lo)
    }

    /// Pixel of a rate; zero, negative and NaN go to the axis minimum, above 1 to 1.
    fn pos(&self, rate: f64) -> f64 {
        let rate = if rate > self.min() {
            rate.min(1.0)
        } else {
            self.min()
        };
        let f = (rate.log10() - self.lo as f64) / -(self.lo as f64);
        self.from + f * (self.to - self.from)
    }

    /// Decades, and 2..9 times each, from the minimum to 1.
    fn ticks(&self) -> impl Iterator<Item = (f64, Option<i32>)> + '_ {
        (self.lo..=0).flat_map(move |e| {
            let decade = 10f64.powi(e);
            let minors = if e < 0 { 2..10 } else { 2..2 };
            std::iter::once((decade, Some(e))).chain(minors.map(move |m| (m as f64 * decade, None)))
        })
    }
}

/// The decade below the smallest positive value, but no higher than `floor`.
fn lowest_decade(values: impl Iterator<Item = f64>, floor: i32) -> i32 {
    let smallest = values.filter(|v| *v > 0.0).fold(1.0, f64::min);
    (smallest.log10().floor() as i32).clamp(LOWEST_DECADE, floor)
}

/// Decade lines darker than the lines between them.
fn grid_stroke(decade: bool) -> &'static str {
    if decade {
        "#c8c8c8"
    } else {
        "#ececec"
    }
}

fn grid(svg: &mut String, x: &LogAxis, y: &LogAxis) {
    svg.push_str(r#"<g id="grid" stroke-width="1">"#);
    svg.push('\n');
    for (v, decade) in x.ticks() {
        let px = x.pos(v);
        let stroke = grid_stroke(decade.is_some());
        let _ = writeln!(
            svg,
            r#"<line x1="{px:.1}" y1="{TOP:.1}" x2="{px:.1}" y2="{BOTTOM:.1}" stroke="{stroke}"/>"#
        );
    }
    for (v, decade) in y.ticks() {
        let py = y.pos(v);
        let stroke = grid_stroke(decade.is_some());
        let _ = writeln!(
            svg,
            r#"<line x1="{LEFT:.1}" y1="{py:.1}" x2="{RIGHT:.1}" y2="{py:.1}" stroke="{stroke}"/>"#
        );
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT:.1}" y="{TOP:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#666"/>"##,
        RIGHT - LEFT,
        BOTTOM - TOP
    );
    svg.push_str("</g>\n");

    svg.push_str(r#"<g id="tick-labels" font-size="12">"#);
    svg.push('\n');
    for (v, decade) in x.ticks() {
        if let Some(e) = decade {
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                x.pos(v),
                BOTTOM + 22.0,
                power_of_ten(e)
            );
        }
    }
    for (v, decade) in y.ticks() {
        if let Some(e) = decade {
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                LEFT - 8.0,
                y.pos(v) + 4.0,
                power_of_ten(e)
            );
        }
    }
    svg.push_str("</g>\n");
}

/// 10^e as text, the exponent raised: "10⁻³"; 10^0 is "1".
fn power_of_ten(e: i32) -> String {
    if e == 0 {
        "1".into()
    } else {
        let minus = if e < 0 { "\u{2212}" } else { "" };
        format!(
            r#"10<tspan dy="-6" font-size="9">{minus}{}</tspan>"#,
            e.abs()
        )
    }
}

fn axis_titles(svg: &mut String) {
    let (cx, cy) = ((LEFT + RIGHT) / 2.0, (TOP + BOTTOM) / 2.0);
    let _ = writeln!(
        svg,
        r#"<g id="axis-titles" font-size="14"><text x="{cx:.1}" y="{:.1}" text-anchor="middle">False positive identification rate (FPIR)</text><text x="22" y="{cy:.1}" text-anchor="middle" transform="rotate(-90 22 {cy:.1})">False negative identification rate (FNIR)</text></g>"#,
        HEIGHT - 18.0
    );
}

fn curve(svg: &mut String, x: &LogAxis, y: &LogAxis, points: &[(f64, f64)], colour: &str) {
    let mut coords = String::new();
    for &(fpir, fnir) in points {
        let _ = write!(coords, "{:.1},{:.1} ", x.pos(fpir), y.pos(fnir));
    }
    let _ = writeln!(
        svg,
        r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2" stroke-linejoin="round" stroke-linecap="round"/>"#,
        coords.trim_end()
    );
}

/// Marks with labels up and to the right of them (the empty side of a DET curve), moved further
/// up, with a leader line, where one would cover a label placed before it.
fn operating_points(svg: &mut String, x: &LogAxis, y: &LogAxis, marks: &[(&str, f64, f64)]) {
    if marks.is_empty() {
        return;
    }
    svg.push_str(r#"<g id="operating-points" font-size="11">"#);
    svg.push('\n');
    let mut placed: Vec<Rect> = Vec::new();
    for &(label, fpir, fnir) in marks {
        let (px, py) = (x.pos(fpir), y.pos(fnir));
        let width = text_width(label, 11.0);
        let right_side = px + 8.0 + width <= RIGHT - 4.0;
        let left = if right_side {
            px + 8.0
        } else {
            px - 8.0 - width
        };
        let mut baseline = py - 8.0;
        let rect = |baseline: f64| Rect {
            x: left,
            y: baseline - 11.0,
            w: width,
            h: 14.0,
        };
        while baseline - 11.0 > TOP + 14.0 && placed.iter().any(|r| r.overlaps(&rect(baseline))) {
            baseline -= 14.0;
        }
        if baseline - 11.0 < TOP + 2.0 {
            baseline = py + 19.0;
        }
        placed.push(rect(baseline));
        if (baseline - (py - 8.0)).abs() > 1.0 {
            let _ = writeln!(
                svg,
                r##"<line x1="{px:.1}" y1="{py:.1}" x2="{:.1}" y2="{:.1}" stroke="#888" stroke-width="0.8"/>"##,
                if right_side { left } else { left + width },
                baseline - 4.0
            );
        }
        let _ = writeln!(
            svg,
            r##"<circle cx="{px:.1}" cy="{py:.1}" r="4.5" fill="#222" stroke="white" stroke-width="1.5"/>"##
        );
        let _ = writeln!(
            svg,
            r#"<text x="{left:.1}" y="{baseline:.1}" stroke="white" stroke-width="3" stroke-linejoin="round" paint-order="stroke">{}</text>"#,
            escape(label)
        );
    }
    svg.push_str("</g>\n");
}

/// A box in the top right corner of the plot, which DET curves leave empty.
fn legend(svg: &mut String, curves: &[(&str, Vec<(f64, f64)>)]) {
    if curves.is_empty() {
        return;
    }
    let width = curves
        .iter()
        .map(|c| text_width(c.0, 12.0))
        .fold(0.0, f64::max)
        + 46.0;
    let height = 12.0 + 18.0 * curves.len() as f64;
    let (left, top) = (RIGHT - 10.0 - width, TOP + 10.0);
    let _ = writeln!(
        svg,
        r##"<g id="legend"><rect x="{left:.1}" y="{top:.1}" width="{width:.1}" height="{height:.1}" fill="white" fill-opacity="0.92" stroke="#bbb" rx="3"/>"##
    );
    for (i, (label, _)) in curves.iter().enumerate() {
        let row = top + 15.0 + 18.0 * i as f64;
        let _ = writeln!(
            svg,
            r#"<line x1="{:.1}" y1="{row:.1}" x2="{:.1}" y2="{row:.1}" stroke="{}" stroke-width="2.5"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            left + 10.0,
            left + 32.0,
            PALETTE[i % PALETTE.len()],
            left + 38.0,
            row + 4.0,
            escape(label)
        );
    }
    svg.push_str("</g>\n");
}

struct Rect {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

impl Rect {
    fn overlaps(&self, other: &Rect) -> bool {
        self.x < other.x + other.w
            && other.x < self.x + self.w
            && self.y < other.y + other.h
            && other.y < self.y + self.h
    }
}

/// Width of a label in a sans-serif face: about 0.6 em a character, generous for digits.
fn text_width(text: &str, font_size: f64) -> f64 {
    text.chars().count() as f64 * font_size * 0.6
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> String {
        let curve = |scale: f64| -> Vec<(f64, f64)> {
            // As a DET curve comes: falling FPIR, down to zero.
            (0..=60)
                .map(|i| {
                    let fpir = 10f64.powf(-i as f64 / 10.0);
                    (fpir, (scale * fpir.powf(-0.35)).min(1.0))
                })
                .chain([(0.0, 1.0)])
                .collect()
        };
        render_svg(
            &[("model A", curve(0.004)), ("model B <int8>", curve(0.01))],
            &[
                (
                    "FPIR 1 in 1,000 (t = 0.412)",
                    1e-3,
                    0.004 * 1e3f64.powf(0.35),
                ),
                (
                    "FPIR 1 in 6,000 (t = 0.455)",
                    1.0 / 6000.0,
                    0.004 * 6000f64.powf(0.35),
                ),
            ],
        )
    }

    /// Every number in a coordinate attribute: (name, value).
    fn coordinates(svg: &str) -> Vec<(String, f64)> {
        let names = [
            "x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "width", "height", "r",
        ];
        let mut found = Vec::new();
        for attr in svg.split(' ') {
            let Some((name, rest)) = attr.split_once("=\"") else {
                continue;
            };
            let value = rest.split('"').next().unwrap();
            if names.contains(&name) {
                found.push((name.to_string(), value.parse::<f64>().unwrap()));
            }
        }
        for points in svg.split("points=\"").skip(1) {
            for pair in points.split('"').next().unwrap().split(' ') {
                let (x, y) = pair.split_once(',').unwrap();
                found.push(("x".into(), x.parse().unwrap()));
                found.push(("y".into(), y.parse().unwrap()));
            }
        }
        found
    }

    #[test]
    fn the_plot_is_a_well_formed_standalone_svg() {
        let svg = example();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<svg").count(), 1);
        let opened = svg.matches("<g>").count() + svg.matches("<g ").count();
        assert_eq!(opened, svg.matches("</g>").count());
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
        assert_eq!(
            svg.matches("<tspan").count(),
            svg.matches("</tspan>").count()
        );
    }

    #[test]
    fn the_plot_names_its_axes_curves_and_operating_points() {
        let svg = example();
        for needle in [
            "False positive identification rate (FPIR)",
            "False negative identification rate (FNIR)",
            "model A",
            "model B &lt;int8&gt;",
            "FPIR 1 in 1,000 (t = 0.412)",
            "FPIR 1 in 6,000 (t = 0.455)",
        ] {
            assert!(svg.contains(needle), "missing {needle:?}");
        }
        assert!(!svg.contains("<int8>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 2);
    }

    #[test]
    fn every_coordinate_is_a_finite_number_inside_the_view_box() {
        let svg = example();
        let coordinates = coordinates(&svg);
        assert!(coordinates.len() > 200);
        for (name, v) in coordinates {
            let limit = if name.starts_with('y') || name == "height" {
                HEIGHT
            } else {
                WIDTH
            };
            assert!(v.is_finite() && (0.0..=limit).contains(&v), "{name}={v}");
        }
    }

    #[test]
    fn the_axes_reach_down_to_the_data_and_zero_sits_on_the_minimum() {
        let svg = render_svg(&[("a", vec![(0.0, 0.0), (1e-7, 0.5), (1.0, 1e-4)])], &[]);
        assert!(svg.contains(r#"<tspan dy="-6" font-size="9">−7</tspan>"#));
        assert!(svg.contains(r#"<tspan dy="-6" font-size="9">−4</tspan>"#));
        let x = LogAxis::new(-7, LEFT, RIGHT);
        let y = LogAxis::new(-4, BOTTOM, TOP);
        assert_eq!(x.pos(0.0), LEFT);
        assert_eq!(y.pos(f64::NAN), BOTTOM);
        assert_eq!(x.pos(1.0), RIGHT);
        assert_eq!(y.pos(2.0), TOP);
        assert!(svg.contains(&format!("{LEFT:.1},{BOTTOM:.1} ")));
    }

    #[test]
    fn the_default_axes_run_from_1e_5_and_1e_3_to_one() {
        let svg = render_svg(&[("a", vec![(0.5, 0.2), (0.01, 0.5)])], &[]);
        let labels = |e: i32| {
            svg.matches(&format!("font-size=\"9\">−{e}</tspan>"))
                .count()
        };
        // x: 10^-5 ..= 10^-1; y: 10^-3 ..= 10^-1.
        assert_eq!([6, 5, 4, 3, 2, 1].map(labels), [0, 1, 1, 2, 2, 2]);
    }

    #[test]
    fn an_empty_plot_still_has_its_axes() {
        let svg = render_svg(&[], &[]);
        assert!(svg.contains("False positive identification rate (FPIR)"));
        assert!(!svg.contains("<polyline"));
        assert!(!svg.contains("id=\"legend\""));
    }

    #[test]
    fn labels_that_would_collide_are_moved_apart() {
        let svg = render_svg(
            &[],
            &[("first label", 1e-3, 0.1), ("second label", 1.1e-3, 0.1)],
        );
        let baselines: Vec<f64> = svg
            .lines()
            .filter(|l| l.starts_with("<text") && l.contains("label"))
            .map(|l| {
                let y = l.split(" y=\"").nth(1).unwrap();
                y.split('"').next().unwrap().parse().unwrap()
            })
            .collect();
        assert_eq!(baselines.len(), 2);
        assert!((baselines[0] - baselines[1]).abs() >= 14.0, "{baselines:?}");
        assert!(svg.contains("stroke-width=\"0.8\""), "a leader line");
    }
}
