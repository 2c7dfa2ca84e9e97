//! The deadline profiler's report: one data model, written as `report.json` for
//! machines and rendered as a self-contained `report.html` (inline SVG, no script, no
//! external URL) for people.
//!
//! Every time is in milliseconds as `f64`, converted from the runtime's nanosecond
//! statistics ([`cadence_runtime::stats`]) by the `From`/`new` helpers here, so a
//! producer (the package profiler, the scenario runner) fills the report from the
//! figures it already keeps and never formats a number itself.

mod charts;
mod html;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cadence_runtime::stats::{self, FrameState, Histogram, TaskStats};
use serde::{Deserialize, Serialize};

pub use charts::{MAX_TIMELINE_JOBS, TIMELINE_PERIODS, TOP_LAYERS};
pub use html::render;

/// Most bins a response-time histogram is shown with; finer buckets are merged.
pub const HISTOGRAM_BINS: usize = 60;

/// Nanoseconds as milliseconds.
pub fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// Nanoseconds as microseconds.
pub fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

/// A whole report; see the module docs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Heading of the HTML page.
    pub title: String,
    /// What was profiled: the scenario file or the package paths.
    pub source: String,
    /// Which clock the times were read from.
    pub clock: ClockKind,
    /// The tool and version that wrote the report, e.g. `cadence 0.1.0`.
    pub generated_by: String,
    /// One entry per periodic task.
    pub tasks: Vec<TaskReport>,
    /// Every job of a run, in release order (the HTML shows a window of it).
    pub timeline: Vec<TimelineEntry>,
    /// Per-layer time of each package profiled.
    pub layers: Vec<LayerProfile>,
    /// Cost and latency of several packages that can serve one task.
    pub pareto: Vec<ParetoPoint>,
}

impl Report {
    /// An empty report with the version of this `cadence` as `generated_by`.
    pub fn new(title: impl Into<String>, source: impl Into<String>, clock: ClockKind) -> Self {
        Self {
            title: title.into(),
            source: source.into(),
            clock,
            generated_by: format!("cadence {}", env!("CARGO_PKG_VERSION")),
            tasks: Vec::new(),
            timeline: Vec::new(),
            layers: Vec::new(),
            pareto: Vec::new(),
        }
    }
}

/// Where the times came from: a simulated clock gives reproducible figures, a real
/// one gives this machine's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockKind {
    /// A clock advanced by the simulator.
    Simulated,
    /// The host's monotonic clock.
    Real,
}

/// Report figures of one latency distribution, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Values recorded.
    pub count: u64,
    /// Smallest.
    pub min_ms: f64,
    /// Largest.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p99_9_ms: f64,
    /// How far the tail sits from the median.
    pub jitter_p999_minus_p50_ms: f64,
    /// The full spread.
    pub jitter_max_minus_min_ms: f64,
}

impl From<&stats::Summary> for Summary {
    fn from(s: &stats::Summary) -> Self {
        Self {
            count: s.count,
            min_ms: ms(s.min),
            max_ms: ms(s.max),
            mean_ms: ms(s.mean),
            p50_ms: ms(s.p50),
            p90_ms: ms(s.p90),
            p99_ms: ms(s.p99),
            p99_9_ms: ms(s.p99_9),
            jitter_p999_minus_p50_ms: ms(s.jitter_p999_minus_p50),
            jitter_max_minus_min_ms: ms(s.jitter_max_minus_min),
        }
    }
}

/// One bar of a histogram: values from `low_ms` to `high_ms`, both included.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistogramBin {
    /// Lowest value the bin holds.
    pub low_ms: f64,
    /// Highest value the bin holds.
    pub high_ms: f64,
    /// Values in it.
    pub count: u64,
}

/// `histogram`'s buckets merged into display bins: at most `max_bins`, and about
/// twice the square root of the count (so a few dozen jobs are not spread into
/// one-job spikes).
///
/// The runtime's buckets are log-linear (128 per power of two), far finer than a plot
/// can show. Display bins are equal steps of a logarithmic grid from the lowest
/// recorded bucket to the highest, so a long tail stays visible next to a narrow body;
/// each bin spans its grid step (so bars tile the axis) and empty bins are left out.
pub fn histogram_bins(histogram: &Histogram, max_bins: usize) -> Vec<HistogramBin> {
    let buckets: Vec<(u64, u64, u32)> = histogram.buckets().collect();
    let (Some(first), Some(last)) = (buckets.first(), buckets.last()) else {
        return Vec::new();
    };
    let wanted = (2.0 * (histogram.count() as f64).sqrt()).ceil() as usize;
    let bins = wanted.clamp(1, max_bins.max(1));
    if buckets.len() <= bins {
        return buckets
            .into_iter()
            .map(|(low, high, count)| HistogramBin {
                low_ms: ms(low),
                high_ms: ms(high),
                count: u64::from(count),
            })
            .collect();
    }
    let low = first.0.max(1) as f64;
    let high = last.1 as f64 + 1.0;
    let edge = |i: usize| low * (high / low).powf(i as f64 / bins as f64);
    let mut counts = vec![0u64; bins];
    for (bucket_low, bucket_high, count) in buckets {
        let mid = (bucket_low as f64 + bucket_high as f64) / 2.0;
        let slot = ((mid.max(low) / low).ln() / (high / low).ln() * bins as f64) as usize;
        counts[slot.min(bins - 1)] += u64::from(count);
    }
    counts
        .into_iter()
        .enumerate()
        .filter(|(_, count)| *count > 0)
        .map(|(i, count)| HistogramBin {
            low_ms: edge(i) / 1e6,
            high_ms: edge(i + 1) / 1e6,
            count,
        })
        .collect()
}

/// What a task is asked to do, in nanoseconds: the part of a [`TaskReport`] that
/// comes from the task set rather than from the measurements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskTiming {
    /// The task's name.
    pub name: String,
    /// The accelerator it runs on.
    pub accelerator: String,
    /// Release period.
    pub period_ns: u64,
    /// Relative deadline.
    pub deadline_ns: u64,
    /// Execution budget the schedule reserves.
    pub budget_ns: u64,
    /// Worst-case response time from the analysis, when one was computed.
    pub wcrt_ns: Option<u64>,
}

/// Everything measured about one periodic task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskReport {
    /// The task's name.
    pub name: String,
    /// The accelerator it runs on.
    pub accelerator: String,
    /// Release period.
    pub period_ms: f64,
    /// Relative deadline.
    pub deadline_ms: f64,
    /// Execution budget.
    pub budget_ms: f64,
    /// Worst-case response time from the analysis.
    pub wcrt_ms: Option<f64>,
    /// Jobs released.
    pub released: u64,
    /// Completed by their deadline.
    pub met: u64,
    /// Completed after it.
    pub late: u64,
    /// Skipped by the overrun policy.
    pub skipped: u64,
    /// Failed with an error.
    pub failed: u64,
    /// Late + skipped + failed.
    pub deadline_misses: u64,
    /// End − release.
    pub response: Summary,
    /// End − start.
    pub execution: Summary,
    /// Start − release.
    pub release_jitter: Summary,
    /// End − capture.
    pub end_to_end: Summary,
    /// Response times, at most [`HISTOGRAM_BINS`] bins.
    pub response_histogram: Vec<HistogramBin>,
}

impl TaskReport {
    /// The report of a task from its timing and the statistics recorded for it.
    pub fn new(timing: &TaskTiming, stats: &TaskStats) -> Self {
        let summary = stats.summary();
        Self {
            name: timing.name.clone(),
            accelerator: timing.accelerator.clone(),
            period_ms: ms(timing.period_ns),
            deadline_ms: ms(timing.deadline_ns),
            budget_ms: ms(timing.budget_ns),
            wcrt_ms: timing.wcrt_ns.map(ms),
            released: stats.frames(),
            met: summary.met,
            late: summary.late,
            skipped: summary.skipped,
            failed: summary.failed,
            deadline_misses: summary.deadline_misses,
            response: (&summary.response).into(),
            execution: (&summary.execution).into(),
            release_jitter: (&summary.release_jitter).into(),
            end_to_end: (&summary.end_to_end).into(),
            response_histogram: histogram_bins(&stats.response, HISTOGRAM_BINS),
        }
    }
}

/// How a job ended, as the report names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Completed by its deadline.
    Met,
    /// Completed after it.
    Late,
    /// Not run, by policy.
    Skipped,
    /// Run, and failed.
    Failed,
}

impl From<FrameState> for JobState {
    fn from(state: FrameState) -> Self {
        match state {
            FrameState::Met => Self::Met,
            FrameState::Late => Self::Late,
            FrameState::Skipped => Self::Skipped,
            FrameState::Failed => Self::Failed,
        }
    }
}

impl JobState {
    /// The name used in JSON and as the CSS class of a job's bar.
    pub fn name(self) -> &'static str {
        match self {
            Self::Met => "met",
            Self::Late => "late",
            Self::Skipped => "skipped",
            Self::Failed => "failed",
        }
    }
}

/// One job of the run: instants on the run's clock (absolute, not relative).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// The task it belongs to.
    pub task: String,
    /// Its sequence number within the task.
    pub job: u64,
    /// The accelerator it ran on.
    pub accelerator: String,
    /// When it was released.
    pub release_ms: f64,
    /// When it started; `None` when it never ran.
    pub start_ms: Option<f64>,
    /// When it ended; `None` when it never ran.
    pub end_ms: Option<f64>,
    /// Its absolute deadline.
    pub deadline_ms: f64,
    /// How it ended.
    pub state: JobState,
}

/// Per-layer time of one package over many frames.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerProfile {
    /// The package's path or name.
    pub package: String,
    /// The backend it ran on.
    pub backend: String,
    /// Frames timed.
    pub frames: u64,
    /// One entry per plan step, in plan order.
    pub steps: Vec<StepProfile>,
}

/// Time of one plan step over the frames of a [`LayerProfile`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepProfile {
    /// Position in the plan.
    pub index: usize,
    /// The kernel it runs.
    pub op: String,
    /// The layer name from the source model.
    pub name: String,
    /// Mean time, microseconds.
    pub mean_us: f64,
    /// Median time, microseconds.
    pub p50_us: f64,
    /// 99th percentile, microseconds.
    pub p99_us: f64,
    /// Its mean's share of the sum of every step's mean (0 to 1).
    pub share: f64,
}

impl LayerProfile {
    /// The profile of steps `(op, name, times)` in plan order: times are the
    /// histograms of each step's nanoseconds per frame.
    pub fn new<'s>(
        package: impl Into<String>,
        backend: impl Into<String>,
        frames: u64,
        steps: impl IntoIterator<Item = (&'s str, &'s str, &'s Histogram)>,
    ) -> Self {
        let mut steps: Vec<StepProfile> = steps
            .into_iter()
            .enumerate()
            .map(|(index, (op, name, times))| StepProfile {
                index,
                op: op.to_owned(),
                name: name.to_owned(),
                mean_us: us(times.mean().unwrap_or(0)),
                p50_us: us(times.percentile(50.0).unwrap_or(0)),
                p99_us: us(times.percentile(99.0).unwrap_or(0)),
                share: 0.0,
            })
            .collect();
        let total: f64 = steps.iter().map(|s| s.mean_us).sum();
        if total > 0.0 {
            for step in &mut steps {
                step.share = step.mean_us / total;
            }
        }
        Self {
            package: package.into(),
            backend: backend.into(),
            frames,
            steps,
        }
    }
}

/// Cost and latency of one package that can serve a task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParetoPoint {
    /// The task the packages compete for.
    pub task: String,
    /// The package's path or name.
    pub package: String,
    /// Multiply-accumulates per frame.
    pub macs: u64,
    /// Weights.
    pub params: u64,
    /// Arena the plan needs.
    pub arena_bytes: u64,
    /// Median latency.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p99_9_ms: f64,
}

/// The files [`write()`] produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// `DIR/report.json`.
    pub json: PathBuf,
    /// `DIR/report.html`.
    pub html: PathBuf,
}

/// Writes `report` as `dir/report.json` and `dir/report.html`, creating `dir`.
pub fn write(dir: &Path, report: &Report) -> Result<Written> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the report folder `{}`", dir.display()))?;
    let written = Written {
        json: dir.join("report.json"),
        html: dir.join("report.html"),
    };
    let json = serde_json::to_string_pretty(report).context("cannot encode the report")?;
    std::fs::write(&written.json, json)
        .with_context(|| format!("cannot write `{}`", written.json.display()))?;
    std::fs::write(&written.html, render(report))
        .with_context(|| format!("cannot write `{}`", written.html.display()))?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_buckets_are_kept_and_many_are_merged_without_losing_a_count() {
        let mut h = Histogram::new();
        for v in [1_000_000, 1_000_000, 2_000_000] {
            h.record(v);
        }
        let bins = histogram_bins(&h, HISTOGRAM_BINS);
        assert_eq!(bins.len(), 2);
        assert_eq!(bins.iter().map(|b| b.count).sum::<u64>(), 3);

        let mut wide = Histogram::new();
        for i in 0..5000u64 {
            wide.record(1_000_000 + i * 7_919);
        }
        wide.record(900_000_000);
        let bins = histogram_bins(&wide, 20);
        assert!(bins.len() <= 20, "{} bins", bins.len());
        assert_eq!(bins.iter().map(|b| b.count).sum::<u64>(), 5001);
        for pair in bins.windows(2) {
            assert!(pair[0].high_ms <= pair[1].low_ms, "{pair:?}");
        }
        let lowest_bucket = wide.buckets().next().map(|(low, _, _)| ms(low));
        assert_eq!(bins.first().map(|b| b.low_ms), lowest_bucket);
        assert!(bins.last().is_some_and(|b| b.high_ms >= 900.0));
        assert!(histogram_bins(&Histogram::new(), 10).is_empty());

        let mut few = Histogram::new();
        for i in 0..25u64 {
            few.record(1_000_000 + i * 100_000);
        }
        assert!(
            histogram_bins(&few, HISTOGRAM_BINS).len() <= 10,
            "two per square root of the count"
        );
    }

    #[test]
    fn task_report_converts_nanoseconds_to_milliseconds() {
        let mut stats = TaskStats::new();
        let times = stats::FrameTimes {
            capture_ns: 0,
            release_ns: 1_000_000,
            start_ns: 1_500_000,
            end_ns: 4_000_000,
        };
        stats.record(FrameState::Met, Some(&times));
        stats.record(FrameState::Skipped, None);
        let timing = TaskTiming {
            name: "camera".into(),
            accelerator: "cpu0".into(),
            period_ns: 33_333_333,
            deadline_ns: 30_000_000,
            budget_ns: 10_000_000,
            wcrt_ns: Some(12_000_000),
        };
        let task = TaskReport::new(&timing, &stats);
        assert_eq!((task.released, task.met, task.skipped), (2, 1, 1));
        assert_eq!(task.deadline_misses, 1);
        assert_eq!(task.response.max_ms, 3.0);
        assert_eq!(task.release_jitter.max_ms, 0.5);
        assert_eq!(task.end_to_end.max_ms, 4.0);
        assert_eq!(task.wcrt_ms, Some(12.0));
        assert_eq!(task.response_histogram.len(), 1);
    }

    #[test]
    fn layer_shares_add_up_to_one() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        a.record(3_000);
        b.record(1_000);
        let profile =
            LayerProfile::new("m.cpk", "cpu", 1, [("Conv", "/c", &a), ("Relu", "/r", &b)]);
        assert_eq!(profile.steps[0].share, 0.75);
        assert_eq!(profile.steps[1].index, 1);
        assert_eq!(profile.steps[1].p99_us, 1.0);
    }
}
