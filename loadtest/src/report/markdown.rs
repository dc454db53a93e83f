//! `report.md`: the run in words and tables, for the people who size and run a deployment.
//!
//! The order answers their questions in turn: what was run (header), how many cameras fit
//! (summary), how each step went (steps), where the time goes (per-stage latency), what it costs
//! (CPU and memory per service, the in-process baseline), and the same as pictures (plots).
//! Latencies are stored in seconds and printed in whole milliseconds; a figure that was not
//! measured prints "—" rather than a misleading 0.

use super::{cameras, max_step, num, ramp_name, reference_step};
use crate::results::{
    AlertTally, Baseline, Comparison, Loss, Overhead, Quantiles, Ramp, Report, ServiceUsage,
    StageLatency, StepResult,
};

/// Printed for any figure that was not measured.
const DASH: &str = "—";

/// The whole of `report.md`.
pub fn render(report: &Report) -> String {
    let sections = [
        header(report),
        summary(report),
        comparison(report),
        steps(report),
        stage_latency(report),
        service_usage(report),
        baseline(report),
        plots(),
    ];
    sections.join("\n")
}

// ---------------------------------------------------------------------------------------------
// Sections

/// Title and what was run, so that a report read months later says what it measured.
fn header(report: &Report) -> String {
    let budget = format!(
        "p99 capture-to-decision and capture-to-alert under {}, no watch-listed face lost",
        ms(report.budget_seconds)
    );
    let items = [
        ("Started", text_or_dash(&report.started_at)),
        ("Machine", text_or_dash(&report.machine)),
        ("System", system(&report.system)),
        ("Budget", budget),
        (
            "Step length",
            format!("{} s measured per step", num(report.step_seconds)),
        ),
        ("Scene", text_or_dash(&report.scene)),
    ];
    let mut out = String::from("# lfr load test\n\n");
    for (name, value) in items {
        out += &format!("- **{name}:** {value}\n");
    }
    out
}

/// The answer first: per frame rate, the largest camera count within budget and its figures; then
/// what the bus costs against one process.
fn summary(report: &Report) -> String {
    let mut out = String::from("## Summary\n\n");
    if report.ramps.is_empty() {
        out += "No ramps were run.\n";
    } else {
        out += "The largest number of cameras each frame rate ran within budget, and the figures \
                at that step.\n\n";
        let head = [
            ("fps", Align::Right),
            ("max cameras within budget", Align::Right),
            ("p99 capture-to-decision", Align::Right),
            ("p99 capture-to-alert", Align::Right),
            ("alerts expected / raised / missed", Align::Right),
        ];
        let rows: Vec<Vec<String>> = report.ramps.iter().map(summary_row).collect();
        out += &table(&head, &rows);
    }
    out += "\n";
    out += &cost_paragraph(report.overhead.as_ref(), report.baseline.as_ref());
    out
}

/// lfr against the naive reference pipeline: the figure the project is held to (2x its frames a
/// second on the same box), and where lfr's CPU goes per frame.
fn comparison(report: &Report) -> String {
    let mut out = String::from("## Against the naive reference pipeline\n\n");
    let Some(c) = &report.reference else {
        return out + "The reference pipeline was not run (`--reference`).\n";
    };
    out += &reference_paragraph(c);
    let head = [
        ("", Align::Left),
        ("frames per second", Align::Right),
        ("CPU ms per frame", Align::Right),
    ];
    let r = &c.reference;
    let mut rows = vec![
        vec![
            format!("reference: naive.py, {} processes", r.processes),
            num(r.frames_per_s),
            num(r.cpu_ms_per_frame),
        ],
        vec![
            "lfr: best step within budget".to_string(),
            num(c.lfr_fps),
            num(c.lfr_cpu_ms_per_frame),
        ],
    ];
    for (service, ms) in &c.lfr_stage_cpu_ms_per_frame {
        rows.push(vec![
            format!("  of which {service}"),
            DASH.to_string(),
            num(*ms),
        ]);
    }
    rows.push(vec![
        "**lfr / reference**".to_string(),
        format!("**{:.2}x**", c.fps_ratio),
        format!("{:.2}x less", c.cpu_ratio),
    ]);
    out += &table(&head, &rows);
    out
}

fn reference_paragraph(c: &Comparison) -> String {
    let r = &c.reference;
    let step = c
        .step
        .map_or("no step was within budget".to_string(), |(n, fps)| {
            format!("the step of {n} cameras at {} fps", num(fps))
        });
    format!(
        "The naive pipeline (`loadtest/reference/naive.py`: OpenCV and onnxruntime with the same \
         models, one process per core, every face of every frame detected and embedded) read \
         {} frames of `{}` ({} faces) as fast as it could, before the pipeline started. lfr's \
         figure is {step}, the most frames a second sustained within budget with no pass \
         missed, every smaller camera count within budget too (the summary's step); its CPU is \
         that of nats-server and the services (the load generator excluded).\n\n",
        r.frames, r.video, r.faces
    )
}

/// One ramp's row of the summary.
fn summary_row(ramp: &Ramp) -> Vec<String> {
    let best = max_step(ramp);
    let p99 = |stage: &str| quantile(best.and_then(|s| s.since_capture(stage)), |q| q.p99);
    let alerts = best.map_or(DASH.to_string(), |s| {
        let a = s.alerts;
        format!("{} / {} / {}", a.expected, a.raised, a.missed)
    });
    vec![
        num(ramp.fps),
        ramp.max_cameras
            .map_or("none".to_string(), |n| n.to_string()),
        p99("match"),
        p99("alert"),
        alerts,
    ]
}

/// The overhead of the bus and the separate services, and the baseline it is measured against.
fn cost_paragraph(overhead: Option<&Overhead>, baseline: Option<&Baseline>) -> String {
    let mut sentences = Vec::new();
    if let Some(o) = overhead {
        sentences.push(format!(
            "The bus and separate services cost {} the CPU per frame of the same code in one \
             process, and add {} latency at {} {} fps.",
            ratio(o.cpu_ratio),
            ratio(o.latency_ratio),
            cameras(o.cameras),
            num(o.fps)
        ));
    }
    match baseline {
        Some(b) => sentences.push(format!(
            "In one process, without the bus, the same frames ran at {} fps one after another, \
             {} per frame at p50 ({} at p99), using {} CPU s per frame.",
            num(b.fps),
            quantile(Some(b.frame_latency), |q| q.p50),
            quantile(Some(b.frame_latency), |q| q.p99),
            cpu_seconds(b.cpu_seconds_per_frame)
        )),
        None => sentences.push(
            "No in-process baseline was run, so the cost of the bus is not known.".to_string(),
        ),
    }
    sentences.join(" ") + "\n"
}

/// Every step of every ramp: how the figures move as cameras are added.
fn steps(report: &Report) -> String {
    let mut out = String::from("## Steps\n\n");
    if report.ramps.is_empty() {
        return out + "No ramps were run.\n";
    }
    out += "*Decision*: capture to the match verdict on a face. *Alert*: capture to the candidate \
            alert stored. *Lost*: messages that entered a stage and were never handled, as lost / \
            offered (stages that lost nothing are left out). *Alerts*: expected / raised / missed \
            / duplicate / false.\n";
    for ramp in &report.ramps {
        out += &format!("\n### {}\n\n", ramp_name(ramp));
        if ramp.steps.is_empty() {
            out += "No steps were run.\n";
            continue;
        }
        out += &match ramp.max_cameras {
            Some(n) => format!("Largest within budget: {}.\n\n", cameras(n)),
            None => "No step was within budget.\n\n".to_string(),
        };
        let rows: Vec<Vec<String>> = ramp.steps.iter().map(step_row).collect();
        out += &table(&STEP_HEAD, &rows);
    }
    out
}

/// The columns of a ramp's step table.
const STEP_HEAD: [(&str, Align); 11] = [
    ("cameras", Align::Right),
    ("offered fps", Align::Right),
    ("sustained fps", Align::Right),
    ("faces", Align::Right),
    ("decision p50", Align::Right),
    ("decision p95", Align::Right),
    ("decision p99", Align::Right),
    ("alert p99", Align::Right),
    ("lost", Align::Left),
    ("alerts", Align::Right),
    ("within budget", Align::Left),
];

/// One step's row of its ramp's table.
fn step_row(step: &StepResult) -> Vec<String> {
    let decision = step.since_capture("match");
    vec![
        step.cameras.to_string(),
        num(step.offered_fps),
        fixed(step.sustained_fps, 1),
        step.faces.to_string(),
        quantile(decision, |q| q.p50),
        quantile(decision, |q| q.p95),
        quantile(decision, |q| q.p99),
        quantile(step.since_capture("alert"), |q| q.p99),
        losses(&step.losses),
        alert_tally(&step.alerts),
        within_budget(step),
    ]
}

/// Where the time goes, stage by stage, at the load each frame rate is sized for.
fn stage_latency(report: &Report) -> String {
    let mut out = String::from("## Per-stage latency\n\n");
    if report.ramps.is_empty() {
        return out + "No ramps were run.\n";
    }
    out += "At each frame rate's largest step within budget (its first step where none was). \
            *Since capture*: from capture of the frame to the end of the stage. *Own*: the stage \
            alone, from the end of the previous one (— where the two ends cannot be joined \
            message by message). *Source*: `exact` from message timestamps, `histogram` from the \
            service's Prometheus buckets.\n";
    for ramp in &report.ramps {
        out += &step_heading(ramp);
        if let Some(step) = reference_step(ramp) {
            let rows: Vec<Vec<String>> = step.latency.iter().map(stage_row).collect();
            out += &table_or_note(&STAGE_HEAD, &rows, "No stage latency was measured.");
        }
    }
    out
}

/// The columns of a per-stage latency table.
const STAGE_HEAD: [(&str, Align); 8] = [
    ("stage", Align::Left),
    ("since capture p50", Align::Right),
    ("since capture p95", Align::Right),
    ("since capture p99", Align::Right),
    ("own p50", Align::Right),
    ("own p95", Align::Right),
    ("own p99", Align::Right),
    ("source", Align::Left),
];

/// One stage's row of a per-stage latency table.
fn stage_row(latency: &StageLatency) -> Vec<String> {
    let since = Some(latency.since_capture);
    vec![
        latency.stage.clone(),
        quantile(since, |q| q.p50),
        quantile(since, |q| q.p95),
        quantile(since, |q| q.p99),
        quantile(latency.own, |q| q.p50),
        quantile(latency.own, |q| q.p95),
        quantile(latency.own, |q| q.p99),
        text_or_dash(&latency.source),
    ]
}

/// What each process costs at the same steps as the per-stage latency.
fn service_usage(report: &Report) -> String {
    let mut out = String::from("## CPU and memory per service\n\n");
    if report.ramps.is_empty() {
        return out + "No ramps were run.\n";
    }
    out += "At the same steps as the per-stage latency. *CPU cores*: average over the step (1.00 \
            = one core fully busy). `nats` is the bus; `cameras` is the load generator itself, \
            not part of a deployment.\n";
    for ramp in &report.ramps {
        out += &step_heading(ramp);
        if let Some(step) = reference_step(ramp) {
            let mut rows: Vec<Vec<String>> = step.usage.iter().map(usage_row).collect();
            if !rows.is_empty() {
                rows.push(usage_total(&step.usage));
            }
            out += &table_or_note(&USAGE_HEAD, &rows, "No CPU or memory was measured.");
        }
    }
    out
}

/// The columns of a CPU and memory table.
const USAGE_HEAD: [(&str, Align); 4] = [
    ("service", Align::Left),
    ("CPU cores", Align::Right),
    ("RSS mean MiB", Align::Right),
    ("RSS peak MiB", Align::Right),
];

/// One service's row of a CPU and memory table.
fn usage_row(usage: &ServiceUsage) -> Vec<String> {
    vec![
        usage.service.clone(),
        fixed(usage.cpu_cores, 2),
        mib(usage.rss_mean_bytes),
        mib(usage.rss_peak_bytes),
    ]
}

/// The sum over services. Peaks are not summed: they need not fall at the same moment.
fn usage_total(usage: &[ServiceUsage]) -> Vec<String> {
    let cpu: f64 = usage
        .iter()
        .map(|u| u.cpu_cores)
        .filter(|c| c.is_finite())
        .sum();
    let rss: u64 = usage.iter().map(|u| u.rss_mean_bytes).sum();
    vec![
        "**total**".to_string(),
        fixed(cpu, 2),
        mib(rss),
        DASH.to_string(),
    ]
}

/// The same frames in one process: the floor the pipeline's cost is compared with.
fn baseline(report: &Report) -> String {
    let mut out = String::from("## In-process baseline\n\n");
    let Some(b) = &report.baseline else {
        return out + "No in-process baseline was run.\n";
    };
    out += "The same frames through the same code in one process, one frame after another, \
            without the bus: the least this machine spends per frame.\n\n";
    let rows = [
        ("frames", b.frames.to_string()),
        ("faces", b.faces.to_string()),
        ("seconds", num(b.seconds)),
        ("frames per second", num(b.fps)),
        (
            "frame latency p50",
            quantile(Some(b.frame_latency), |q| q.p50),
        ),
        (
            "frame latency p99",
            quantile(Some(b.frame_latency), |q| q.p99),
        ),
        ("CPU s per frame", cpu_seconds(b.cpu_seconds_per_frame)),
        ("peak RSS MiB", mib(b.rss_peak_bytes)),
        ("alerts raised in process", alerts_raised(&b.alerts)),
    ];
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|(name, value)| vec![name.to_string(), value])
        .collect();
    out += &table(&[("figure", Align::Left), ("value", Align::Right)], &rows);
    out
}

/// The plots, each with how to read it.
fn plots() -> String {
    let mut out = String::from("## Plots\n");
    for (title, alt, file, how) in PLOTS {
        out += &format!("\n### {title}\n\n![{alt}]({file})\n\n**How to read:** {how}\n");
    }
    out
}

/// Title, alternative text, file and reading guide of each plot.
const PLOTS: [(&str, &str, &str, &str); 4] = [
    (
        "Latency",
        "p99 latency against cameras, per frame rate",
        "latency.svg",
        "one colour per frame rate. Solid lines with dots are the p99 time from capture to the \
         match verdict; dashed lines with open dots, capture to the stored alert. The red dashed \
         line is the budget: a frame rate is within budget up to the last camera count whose \
         points lie under it. Where a line turns steeply upwards, a stage no longer keeps up and \
         frames queue; values beyond three times the budget are drawn at that height (the tables \
         above have them in full).",
    ),
    (
        "Throughput",
        "offered and sustained frames per second against cameras",
        "throughput.svg",
        "dashed lines are the frames per second the cameras offered (cameras × fps); solid lines \
         the frames per second the detect stage finished. While the two lie on top of each other \
         the system keeps up; where the solid line falls below the dashed one it is saturated, \
         and the difference is queued or lost.",
    ),
    (
        "Where the time goes",
        "median time per stage, per frame rate",
        "stages.svg",
        "one bar per frame rate, at the step of the per-stage table. Each segment is the median \
         time a frame spends in one stage (where a stage's own time could not be measured, the \
         difference of the since-capture medians); the bar's length is roughly the median time from \
         capture to decision. The longest segment is the stage to give capacity to first.",
    ),
    (
        "CPU per service",
        "CPU cores per service, per frame rate",
        "usage.svg",
        "one group of bars per process, one bar per frame rate, at the step of the per-stage \
         table; the height is the CPU cores it used on average (1 = one core fully busy). The \
         tallest group is the service to scale out or give CPU to first; `cameras` is the load \
         generator and costs nothing in a deployment.",
    ),
];

// ---------------------------------------------------------------------------------------------
// Pieces

/// "### 5 fps at 2 cameras (largest within budget)": which step a section's tables are taken at,
/// or a note that the ramp had none.
fn step_heading(ramp: &Ramp) -> String {
    let name = ramp_name(ramp);
    match (max_step(ramp), reference_step(ramp)) {
        (Some(s), _) => format!(
            "\n### {name} at {} (largest within budget)\n\n",
            cameras(s.cameras)
        ),
        (None, Some(s)) => format!(
            "\n### {name} at {} (first step; none within budget)\n\n",
            cameras(s.cameras)
        ),
        (None, None) => format!("\n### {name}\n\nNo steps were run.\n"),
    }
}

/// The system, with what it means.
fn system(system: &str) -> String {
    match system {
        "local" => "local (NATS and the services started by the load test)".to_string(),
        "external" => "external (a running system, started outside the load test)".to_string(),
        other => text_or_dash(other),
    }
}

/// One figure of a distribution in milliseconds, or "—" when nothing was measured.
fn quantile(q: Option<Quantiles>, pick: fn(&Quantiles) -> f64) -> String {
    q.filter(|q| q.count > 0)
        .map_or(DASH.to_string(), |q| ms(pick(&q)))
}

/// Seconds as whole milliseconds: `412 ms`.
fn ms(seconds: f64) -> String {
    if seconds.is_finite() {
        format!("{:.0} ms", seconds * 1000.0)
    } else {
        DASH.to_string()
    }
}

/// A ratio: `3.2×`.
fn ratio(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.1}×")
    } else {
        "an unknown multiple of".to_string()
    }
}

/// `x` with `decimals` decimals, or "—".
fn fixed(x: f64, decimals: usize) -> String {
    if x.is_finite() {
        format!("{x:.decimals$}")
    } else {
        DASH.to_string()
    }
}

/// CPU seconds, to the millisecond.
fn cpu_seconds(seconds: f64) -> String {
    fixed(seconds, 3)
}

/// Bytes as MiB with one decimal.
fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

/// The stages that lost messages, `detect 3/400, embed 1/1200`; "none" when nothing was lost.
fn losses(losses: &[Loss]) -> String {
    if losses.is_empty() {
        return DASH.to_string();
    }
    let lost: Vec<String> = losses
        .iter()
        .filter(|l| l.lost > 0)
        .map(|l| format!("{} {}/{}", l.stage, l.lost, l.offered))
        .collect();
    if lost.is_empty() {
        "none".to_string()
    } else {
        lost.join(", ")
    }
}

/// expected/raised/missed/duplicate/false.
fn alert_tally(a: &AlertTally) -> String {
    format!(
        "{}/{}/{}/{}/{}",
        a.expected, a.raised, a.missed, a.duplicate, a.unexpected
    )
}

/// "4 of 4 passes".
fn alerts_raised(a: &AlertTally) -> String {
    format!("{} of {} passes", a.raised, a.expected)
}

/// "yes", or "no: " and why.
fn within_budget(step: &StepResult) -> String {
    match (step.within_budget, step.verdict.trim()) {
        (true, _) => "yes".to_string(),
        (false, "") => "no".to_string(),
        (false, why) => format!("no: {why}"),
    }
}

/// Free text, or "—" when empty.
fn text_or_dash(text: &str) -> String {
    if text.trim().is_empty() {
        DASH.to_string()
    } else {
        inline(text)
    }
}

/// Text made safe for one line of Markdown and for a table cell: line breaks become spaces, pipes
/// are escaped (they would end the cell), and `<` cannot open HTML.
fn inline(text: &str) -> String {
    text.trim()
        .replace("\r\n", " ")
        .replace(['\n', '\r'], " ")
        .replace('|', "\\|")
        .replace('<', "&lt;")
}

// ---------------------------------------------------------------------------------------------
// Tables

/// How a column's cells line up: text to the left, figures to the right.
#[derive(Debug, Clone, Copy)]
enum Align {
    Left,
    Right,
}

/// A table, or `note` when it has no rows.
fn table_or_note(head: &[(&str, Align)], rows: &[Vec<String>], note: &str) -> String {
    if rows.is_empty() {
        format!("{note}\n")
    } else {
        table(head, rows)
    }
}

/// A GitHub Markdown table. Cells are escaped here, and padded so that the raw file reads as a
/// table too.
fn table(head: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let head_cells: Vec<String> = head.iter().map(|(h, _)| inline(h)).collect();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| (0..head.len()).map(|i| cell_text(r, i)).collect())
        .collect();
    let widths: Vec<usize> = (0..head.len())
        .map(|i| {
            rows.iter()
                .map(|r| width(&r[i]))
                .chain([width(&head_cells[i]), 3])
                .max()
                .unwrap_or(3)
        })
        .collect();
    let aligns: Vec<Align> = head.iter().map(|(_, a)| *a).collect();
    let mut out = table_line(&head_cells, &widths, &aligns);
    out += &rule_line(&widths, &aligns);
    for row in &rows {
        out += &table_line(row, &widths, &aligns);
    }
    out
}

/// Cell `i` of `row`, escaped; "—" where the row is short.
fn cell_text(row: &[String], i: usize) -> String {
    row.get(i).map_or(DASH.to_string(), |c| {
        if c.trim().is_empty() {
            DASH.to_string()
        } else {
            inline(c)
        }
    })
}

/// `| a | b |`, each cell padded to its column's width.
fn table_line(cells: &[String], widths: &[usize], aligns: &[Align]) -> String {
    let padded: Vec<String> = cells
        .iter()
        .zip(widths)
        .zip(aligns)
        .map(|((c, w), a)| pad(c, *w, *a))
        .collect();
    format!("| {} |\n", padded.join(" | "))
}

/// `| :--- | ---: |`: the line under the head that sets each column's alignment.
fn rule_line(widths: &[usize], aligns: &[Align]) -> String {
    let rules: Vec<String> = widths
        .iter()
        .zip(aligns)
        .map(|(w, a)| match a {
            Align::Left => format!(":{}", "-".repeat(w - 1)),
            Align::Right => format!("{}:", "-".repeat(w - 1)),
        })
        .collect();
    format!("| {} |\n", rules.join(" | "))
}

/// `text` padded with spaces to `width` characters.
fn pad(text: &str, width: usize, align: Align) -> String {
    let fill = " ".repeat(width.saturating_sub(self::width(text)));
    match align {
        Align::Left => format!("{text}{fill}"),
        Align::Right => format!("{fill}{text}"),
    }
}

/// Characters, not bytes: "—" and "×" are one column wide.
fn width(text: &str) -> usize {
    text.chars().count()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{empty, sample, step};
    use super::*;

    /// The cells of the first row under `section` (a `## ` heading) whose first cell is `first`.
    fn row(md: &str, section: &str, first: &str) -> Vec<String> {
        let start = md.find(section).expect("section present");
        md[start..]
            .lines()
            .skip(1)
            .take_while(|l| !l.starts_with("## "))
            .map(|l| l.trim())
            .filter(|l| l.starts_with('|'))
            .map(|l| {
                l.trim_matches('|')
                    .split(" | ")
                    .map(|c| c.trim().to_string())
                    .collect::<Vec<_>>()
            })
            .find(|cells| cells[0] == first)
            .unwrap_or_else(|| panic!("no row {first} under {section}"))
    }

    #[test]
    fn summary_gives_max_cameras_and_latency_at_that_step() {
        let md = render(&sample());
        assert!(md.starts_with("# lfr load test\n"));
        let five = row(&md, "## Summary", "5");
        assert_eq!(five, ["5", "2", "240 ms", "310 ms", "4 / 4 / 0"]);
        let ten = row(&md, "## Summary", "10");
        assert_eq!(ten, ["10", "none", "—", "—", "—"]);
    }

    #[test]
    fn summary_states_the_overhead_and_baseline() {
        let md = render(&sample());
        assert!(md.contains(
            "The bus and separate services cost 3.2× the CPU per frame of the same code in one \
             process, and add 1.8× latency at 1 camera 5 fps."
        ));
        assert!(md.contains("70 ms per frame at p50 (95 ms at p99)"));
    }

    #[test]
    fn steps_list_latency_losses_alerts_and_verdict() {
        let md = render(&sample());
        let four = row(&md, "## Steps", "4");
        assert_eq!(four[6], "900 ms");
        assert_eq!(four[7], "970 ms");
        assert_eq!(four[8], "detect 3/400");
        assert_eq!(four[9], "4/3/1/0/0");
        assert_eq!(
            four[10],
            "no: p99 capture-to-decision over budget \\| 1 face lost"
        );
        let one = row(&md, "## Steps", "1");
        assert_eq!(one[8], "none");
        assert_eq!(one[10], "yes");
    }

    #[test]
    fn stage_table_uses_the_reference_step_and_dashes_missing_own() {
        let md = render(&sample());
        assert!(md.contains("### 5 fps at 2 cameras (largest within budget)"));
        assert!(md.contains("### 10 fps at 1 camera (first step; none within budget)"));
        let matched = row(&md, "## Per-stage latency", "match");
        assert_eq!(matched[3], "240 ms");
        assert_eq!(&matched[4..7], ["—", "—", "—"]);
        let detect = row(&md, "## Per-stage latency", "detect");
        assert_eq!(detect[6], "120 ms");
    }

    #[test]
    fn usage_and_baseline_tables() {
        let md = render(&sample());
        let detect = row(&md, "## CPU and memory per service", "detect");
        assert_eq!(detect, ["detect", "3.00", "100.0", "150.0"]);
        let peak = row(&md, "## In-process baseline", "peak RSS MiB");
        assert_eq!(peak[1], "300.0");
        for file in ["latency.svg", "throughput.svg", "stages.svg", "usage.svg"] {
            assert!(md.contains(&format!("]({file})")), "{file} not embedded");
        }
    }

    #[test]
    fn unmeasured_figures_print_a_dash() {
        let mut report = sample();
        let s = &mut report.ramps[0].steps[1];
        s.latency[2].since_capture.count = 0;
        s.latency[3].since_capture.p99 = f64::NAN;
        let md = render(&report);
        assert_eq!(
            row(&md, "## Summary", "5"),
            ["5", "2", "—", "—", "4 / 4 / 0"]
        );
        assert!(!md.contains("NaN"));
    }

    #[test]
    fn empty_report_renders() {
        let md = render(&empty());
        assert!(md.starts_with("# lfr load test\n"));
        assert!(md.contains("No ramps were run."));
        assert!(md.contains("No in-process baseline was run."));
        assert!(!md.contains("NaN"));
    }

    #[test]
    fn ramp_without_steps_or_usage_renders() {
        let mut report = empty();
        report.ramps.push(Ramp {
            fps: 2.5,
            steps: Vec::new(),
            max_cameras: None,
        });
        let mut bare = step(1, 2.5, 0.1, true);
        bare.latency.clear();
        bare.usage.clear();
        bare.losses.clear();
        report.ramps.push(Ramp {
            fps: 3.0,
            steps: vec![bare],
            max_cameras: Some(1),
        });
        let md = render(&report);
        assert!(md.contains("### 2.5 fps\n\nNo steps were run."));
        assert!(md.contains("No stage latency was measured."));
        assert!(md.contains("No CPU or memory was measured."));
    }
}
