//! The report's plots as inline SVG: a latency histogram, a Gantt timeline, per-layer
//! bars and a cost/latency scatter. Each chart is an `<svg class="chart">` with a
//! `data-chart` kind; its marks carry a class (`bar`, `job`, `row`, `point`) so a
//! browser test can count what was drawn.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::html::escape;
use super::{
    HistogramBin, JobState, LayerProfile, ParetoPoint, StepProfile, TaskReport, TimelineEntry,
};

/// Width of every chart's coordinate system; the page scales it to the column.
const WIDTH: f64 = 960.0;
/// Layers drawn one by one; the rest are summed into one "other" bar.
pub const TOP_LAYERS: usize = 12;
/// Most jobs the timeline draws.
pub const MAX_TIMELINE_JOBS: usize = 400;
/// Periods of the slowest task the timeline window spans.
pub const TIMELINE_PERIODS: f64 = 2.0;

/// Maps a value range onto a pixel range, linearly.
#[derive(Clone, Copy, Debug)]
struct Scale {
    domain: (f64, f64),
    range: (f64, f64),
}

impl Scale {
    fn new(domain: (f64, f64), range: (f64, f64)) -> Self {
        let (lo, hi) = domain;
        let hi = if hi > lo { hi } else { lo + 1.0 };
        Self {
            domain: (lo, hi),
            range,
        }
    }

    fn at(&self, v: f64) -> f64 {
        let (d0, d1) = self.domain;
        let (r0, r1) = self.range;
        r0 + (v - d0) / (d1 - d0) * (r1 - r0)
    }

    /// Round values inside the domain, about `target` of them, for axis labels.
    fn ticks(&self, target: usize) -> (Vec<f64>, f64) {
        let (lo, hi) = self.domain;
        let raw = (hi - lo) / target.max(1) as f64;
        let magnitude = 10f64.powf(raw.log10().floor());
        let step = match raw / magnitude {
            n if n <= 1.0 => 1.0,
            n if n <= 2.0 => 2.0,
            n if n <= 5.0 => 5.0,
            _ => 10.0,
        } * magnitude;
        let mut ticks = Vec::new();
        let mut v = (lo / step).ceil() * step;
        while v <= hi + step * 1e-9 {
            ticks.push(v);
            v += step;
        }
        (ticks, step)
    }
}

/// `v` with as many decimals as a tick `step` needs.
fn tick_label(v: f64, step: f64) -> String {
    let decimals = (-step.log10().floor()).clamp(0.0, 6.0) as usize;
    format!("{v:.decimals$}")
}

/// `v` with an SI suffix: 1.5G, 320M, 12k.
pub fn si(v: f64) -> String {
    let a = v.abs();
    let (scaled, suffix) = if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let text = format!("{scaled:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{suffix}")
}

/// Cuts `s` to `max` characters, marking the cut.
fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let head: String = s.chars().take(max.saturating_sub(1)).collect();
        format!("{head}…")
    }
}

fn open_svg(out: &mut String, kind: &str, label: &str, height: f64) {
    let _ = write!(
        out,
        r#"<svg class="chart" data-chart="{kind}" data-label="{label}" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-label="{kind} {label}">"#,
        label = escape(label),
    );
}

/// A horizontal axis along `y` with tick labels, and its title.
fn x_axis(
    out: &mut String,
    scale: &Scale,
    y: f64,
    title: &str,
    format: impl Fn(f64, f64) -> String,
) {
    let (ticks, step) = scale.ticks(8);
    let _ = write!(
        out,
        r#"<line class="axis" x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}"/>"#,
        scale.range.0, scale.range.1
    );
    for t in ticks {
        let x = scale.at(t);
        let _ = write!(
            out,
            r#"<line class="tick" x1="{x:.1}" y1="{y:.1}" x2="{x:.1}" y2="{:.1}"/><text class="tick-label" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            y + 4.0,
            y + 16.0,
            escape(&format(t, step))
        );
    }
    let _ = write!(
        out,
        r#"<text class="axis-title" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        (scale.range.0 + scale.range.1) / 2.0,
        y + 32.0,
        escape(title)
    );
}

/// A vertical axis along `x` with grid lines across to `right`, and its title.
fn y_axis(
    out: &mut String,
    scale: &Scale,
    x: f64,
    right: f64,
    title: &str,
    format: impl Fn(f64, f64) -> String,
) {
    let (ticks, step) = scale.ticks(5);
    for t in ticks {
        let y = scale.at(t);
        let _ = write!(
            out,
            r#"<line class="grid" x1="{x:.1}" y1="{y:.1}" x2="{right:.1}" y2="{y:.1}"/><text class="tick-label" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            x - 6.0,
            y + 4.0,
            escape(&format(t, step))
        );
    }
    let mid = (scale.range.0 + scale.range.1) / 2.0;
    let _ = write!(
        out,
        r#"<text class="axis-title" x="14" y="{mid:.1}" text-anchor="middle" transform="rotate(-90 14 {mid:.1})">{}</text>"#,
        escape(title)
    );
}

/// A vertical marker line (deadline, WCRT) from `label_y` down to `bottom`, labelled
/// at its top on the side facing the middle of the plot, above the bars.
fn marker(out: &mut String, class: &str, x: f64, label_y: f64, bottom: f64, label: &str) {
    let (label_x, anchor) = if x > WIDTH / 2.0 {
        (x - 4.0, "end")
    } else {
        (x + 4.0, "start")
    };
    let _ = write!(
        out,
        r#"<line class="{class}" x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{bottom:.1}"><title>{label}</title></line><text class="{class}-label" x="{label_x:.1}" y="{label_y:.1}" text-anchor="{anchor}">{label}</text>"#,
        label_y - 10.0,
        label = escape(label),
    );
}

/// The response-time histogram of `task`, with its deadline (and WCRT, when known)
/// as vertical lines.
pub fn histogram(out: &mut String, task: &TaskReport) {
    let bins: &[HistogramBin] = &task.response_histogram;
    let height = 260.0;
    let (left, right, top, bottom) = (64.0, WIDTH - 20.0, 40.0, height - 44.0);
    open_svg(out, "histogram", &task.name, height);
    let data_low = bins.iter().map(|b| b.low_ms).fold(f64::INFINITY, f64::min);
    let data_high = bins.iter().map(|b| b.high_ms).fold(0.0, f64::max);
    let markers = [Some(task.deadline_ms), task.wcrt_ms];
    let extent = markers
        .iter()
        .flatten()
        .fold(data_high, |a, &b| a.max(b))
        .max(1e-6)
        * 1.05;
    let start = if data_low.is_finite() && data_low > extent / 2.0 {
        data_low * 0.95
    } else {
        0.0
    };
    let x = Scale::new((start, extent), (left, right));
    let max_count = bins.iter().map(|b| b.count).max().unwrap_or(1).max(1);
    let y = Scale::new((0.0, max_count as f64), (bottom, top));
    y_axis(out, &y, left, right, "jobs", |v, step| {
        tick_label(v, step.max(1.0))
    });
    for bin in bins {
        let x0 = x.at(bin.low_ms);
        let width = (x.at(bin.high_ms) - x0).max(2.0);
        // A tail bin of one job next to thousands would be invisible: keep 2 px.
        let top_y = y.at(bin.count as f64).min(bottom - 2.0);
        let _ = write!(
            out,
            r#"<rect class="bar" x="{x0:.2}" y="{top_y:.2}" width="{width:.2}" height="{:.2}"><title>{:.3}–{:.3} ms: {} jobs</title></rect>"#,
            bottom - top_y,
            bin.low_ms,
            bin.high_ms,
            bin.count
        );
    }
    x_axis(out, &x, bottom, "response time (ms)", tick_label);
    marker(
        out,
        "deadline",
        x.at(task.deadline_ms),
        14.0,
        bottom,
        &format!("deadline {:.3} ms", task.deadline_ms),
    );
    if let Some(wcrt) = task.wcrt_ms {
        marker(
            out,
            "wcrt",
            x.at(wcrt),
            30.0,
            bottom,
            &format!("WCRT {wcrt:.3} ms"),
        );
    }
    out.push_str("</svg>");
}

/// The jobs the timeline shows: from the first release, [`TIMELINE_PERIODS`] periods
/// of the slowest task (or every job when no task has a period), at most
/// [`MAX_TIMELINE_JOBS`].
pub fn timeline_window<'r>(
    tasks: &[TaskReport],
    timeline: &'r [TimelineEntry],
) -> Vec<&'r TimelineEntry> {
    let mut jobs: Vec<&TimelineEntry> = timeline.iter().collect();
    jobs.sort_by(|a, b| a.release_ms.total_cmp(&b.release_ms));
    let Some(first) = jobs.first().map(|j| j.release_ms) else {
        return jobs;
    };
    let slowest = tasks.iter().map(|t| t.period_ms).fold(0.0, f64::max);
    if slowest > 0.0 {
        let end = first + TIMELINE_PERIODS * slowest;
        jobs.retain(|j| j.release_ms < end);
    }
    jobs.truncate(MAX_TIMELINE_JOBS);
    jobs
}

/// A Gantt chart of `jobs`: one row per task, a tick at each release, a bar from
/// start to end coloured by state (a short grey block at the release for a skipped
/// job), and a marker at each deadline.
pub fn timeline(out: &mut String, jobs: &[&TimelineEntry]) {
    let mut rows: Vec<(&str, &str)> = Vec::new();
    for job in jobs {
        if !rows.iter().any(|(task, _)| *task == job.task) {
            rows.push((&job.task, &job.accelerator));
        }
    }
    let row_height = 34.0;
    let (left, right, top) = (170.0, WIDTH - 16.0, 8.0);
    let bottom = top + row_height * rows.len() as f64;
    let height = bottom + 44.0;
    open_svg(out, "timeline", "jobs", height);
    let low = jobs
        .iter()
        .map(|j| j.release_ms)
        .fold(f64::INFINITY, f64::min);
    let high = jobs
        .iter()
        .map(|j| j.deadline_ms.max(j.end_ms.unwrap_or(0.0)))
        .fold(low, f64::max);
    let x = Scale::new((low, high), (left, right));
    let by_task: BTreeMap<&str, usize> =
        rows.iter().enumerate().map(|(i, (t, _))| (*t, i)).collect();
    for (i, (task, accelerator)) in rows.iter().enumerate() {
        let y = top + row_height * i as f64;
        let _ = write!(
            out,
            r#"<g class="row" data-task="{task}"><rect class="lane" x="{left}" y="{y:.1}" width="{:.1}" height="{row_height}"/><text class="row-label" x="{:.1}" y="{:.1}" text-anchor="end">{label}</text></g>"#,
            right - left,
            left - 8.0,
            y + row_height / 2.0 + 4.0,
            task = escape(task),
            label = escape(&shorten(&format!("{task} ({accelerator})"), 26)),
        );
    }
    for job in jobs {
        let y = top + row_height * by_task[job.task.as_str()] as f64;
        let (bar_top, bar_height) = (y + 8.0, row_height - 14.0);
        let release = x.at(job.release_ms);
        let _ = write!(
            out,
            r#"<line class="release" x1="{release:.2}" y1="{:.1}" x2="{release:.2}" y2="{:.1}"/>"#,
            y + 2.0,
            y + row_height - 2.0
        );
        let (x0, width) = match (job.start_ms, job.end_ms) {
            (Some(start), Some(end)) => (x.at(start), (x.at(end) - x.at(start)).max(1.5)),
            _ => (release, 5.0),
        };
        let timing = match (job.start_ms, job.end_ms) {
            (Some(start), Some(end)) => format!(
                "start {start:.3} ms, end {end:.3} ms, response {:.3} ms",
                end - job.release_ms
            ),
            _ => "did not run".to_owned(),
        };
        let _ = write!(
            out,
            r#"<rect class="job {state}" x="{x0:.2}" y="{bar_top:.1}" width="{width:.2}" height="{bar_height:.1}"><title>{title}</title></rect>"#,
            state = job.state.name(),
            title = escape(&format!(
                "{} job {}: {} (released {:.3} ms, deadline {:.3} ms, {timing})",
                job.task,
                job.job,
                job.state.name(),
                job.release_ms,
                job.deadline_ms
            )),
        );
        let deadline = x.at(job.deadline_ms);
        let _ = write!(
            out,
            r#"<path class="deadline-mark" d="M{:.2},{:.1} L{:.2},{:.1} L{deadline:.2},{:.1} Z"/>"#,
            deadline - 4.0,
            y + 1.0,
            deadline + 4.0,
            y + 1.0,
            y + 7.0
        );
    }
    x_axis(out, &x, bottom, "time (ms)", tick_label);
    out.push_str("</svg>");
}

/// The legend of [`timeline`]'s colours and marks.
pub fn timeline_legend(out: &mut String) {
    out.push_str(r#"<p class="legend">"#);
    for state in [
        JobState::Met,
        JobState::Late,
        JobState::Skipped,
        JobState::Failed,
    ] {
        let _ = write!(out, r#"<span class="swatch {0}"></span>{0} "#, state.name());
    }
    out.push_str(r#"<span class="swatch release-swatch"></span>release <span class="swatch deadline-swatch"></span>deadline</p>"#);
}

/// One bar of [`layers`].
struct LayerBar {
    label: String,
    tooltip: String,
    mean_us: f64,
    share: f64,
    class: &'static str,
}

/// Horizontal bars of the [`TOP_LAYERS`] slowest steps of `profile` by mean time,
/// slowest first, and one grey bar for the rest.
pub fn layers(out: &mut String, profile: &LayerProfile) {
    let mut ranked: Vec<&StepProfile> = profile.steps.iter().collect();
    ranked.sort_by(|a, b| b.mean_us.total_cmp(&a.mean_us));
    let rest = ranked.split_off(ranked.len().min(TOP_LAYERS));
    let mut bars: Vec<LayerBar> = ranked
        .iter()
        .map(|s| LayerBar {
            label: shorten(&format!("#{} {} ({})", s.index, s.name, s.op), 44),
            tooltip: format!(
                "step {} {} ({}): mean {:.1} µs, p50 {:.1} µs, p99 {:.1} µs",
                s.index, s.name, s.op, s.mean_us, s.p50_us, s.p99_us
            ),
            mean_us: s.mean_us,
            share: s.share,
            class: "bar",
        })
        .collect();
    if !rest.is_empty() {
        bars.push(LayerBar {
            label: format!("other ({} steps)", rest.len()),
            tooltip: format!("the {} other steps together", rest.len()),
            mean_us: rest.iter().map(|s| s.mean_us).sum(),
            share: rest.iter().map(|s| s.share).sum(),
            class: "bar other",
        });
    }
    let bar_height = 22.0;
    let (left, right, top) = (320.0, WIDTH - 130.0, 8.0);
    let bottom = top + bar_height * bars.len() as f64;
    open_svg(out, "layers", &profile.package, bottom + 44.0);
    let longest = bars.iter().map(|b| b.mean_us).fold(0.0, f64::max);
    let x = Scale::new((0.0, longest), (left, right));
    for (i, bar) in bars.iter().enumerate() {
        let y = top + bar_height * i as f64;
        let end = x.at(bar.mean_us);
        let _ = write!(
            out,
            r#"<text class="row-label" x="{:.1}" y="{:.1}" text-anchor="end">{}</text><rect class="{}" x="{left}" y="{:.1}" width="{:.2}" height="{:.1}"><title>{}</title></rect><text class="value" x="{:.1}" y="{:.1}">{:.1} µs · {:.1} %</text>"#,
            left - 8.0,
            y + bar_height / 2.0 + 4.0,
            escape(&bar.label),
            bar.class,
            y + 3.0,
            (end - left).max(1.0),
            bar_height - 6.0,
            escape(&bar.tooltip),
            end + 6.0,
            y + bar_height / 2.0 + 4.0,
            bar.mean_us,
            bar.share * 100.0
        );
    }
    x_axis(out, &x, bottom, "mean time per frame (µs)", tick_label);
    out.push_str("</svg>");
}

/// Whether each point is on the Pareto frontier: no other point is at most as costly
/// and at most as slow, and strictly better in one.
pub fn on_frontier(points: &[&ParetoPoint]) -> Vec<bool> {
    points
        .iter()
        .map(|p| {
            !points.iter().any(|q| {
                q.macs <= p.macs && q.p99_ms <= p.p99_ms && (q.macs < p.macs || q.p99_ms < p.p99_ms)
            })
        })
        .collect()
}

/// MACs against p99 latency, one labelled point per package; frontier points filled.
pub fn pareto(out: &mut String, task: &str, points: &[&ParetoPoint]) {
    let height = 300.0;
    let (left, right, top, bottom) = (64.0, WIDTH - 24.0, 16.0, height - 44.0);
    open_svg(out, "pareto", task, height);
    let max_macs = points.iter().map(|p| p.macs as f64).fold(0.0, f64::max);
    let max_p99 = points.iter().map(|p| p.p99_ms).fold(0.0, f64::max);
    let x = Scale::new((0.0, max_macs * 1.15), (left, right));
    let y = Scale::new((0.0, max_p99 * 1.15), (bottom, top));
    y_axis(out, &y, left, right, "p99 latency (ms)", tick_label);
    x_axis(out, &x, bottom, "MACs per frame", |v, _| si(v));
    for (p, frontier) in points.iter().zip(on_frontier(points)) {
        let (cx, cy) = (x.at(p.macs as f64), y.at(p.p99_ms));
        let name = p.package.rsplit('/').next().unwrap_or(&p.package);
        // Labels point into the plot, away from the nearer side edge.
        let (label_x, anchor) = if cx < (left + right) / 2.0 {
            (cx + 9.0, "start")
        } else {
            (cx - 9.0, "end")
        };
        let _ = write!(
            out,
            r#"<circle class="point{}" cx="{cx:.2}" cy="{cy:.2}" r="6"><title>{}</title></circle><text class="point-label" x="{label_x:.2}" y="{:.2}" text-anchor="{anchor}">{}</text>"#,
            if frontier { " frontier" } else { "" },
            escape(&format!(
                "{}: {} MACs, p99 {:.3} ms",
                p.package,
                si(p.macs as f64),
                p.p99_ms
            )),
            cy - 8.0,
            escape(&shorten(name, 36)),
        );
    }
    out.push_str("</svg>");
}
