//! What a scenario's frames came to, shared by `cadence sim` and `cadence run-scenario`:
//! the per-task counts and latency figures (table and JSON) and the frame trace file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use cadence_runtime::stats::{FrameState, Histogram, TaskStats};
use cadence_scheduler::{FrameRecord, Mode, TaskSet};
use comfy_table::Table;
use serde::Serialize;

use super::schedule::ms;

/// Latency percentiles of one histogram, in milliseconds.
#[derive(Serialize)]
pub struct Percentiles {
    p50: f64,
    p99: f64,
    p99_9: f64,
    max: f64,
}

impl Percentiles {
    fn of(h: &Histogram) -> Self {
        let s = h.summary();
        Self {
            p50: ms(s.p50),
            p99: ms(s.p99),
            p99_9: ms(s.p99_9),
            max: ms(s.max),
        }
    }
}

/// How one task's frames ended.
#[derive(Serialize)]
pub struct TaskResult {
    name: String,
    released: u64,
    met: u64,
    late: u64,
    skipped: u64,
    failed: u64,
    /// Release to end.
    response_ms: Percentiles,
    /// Release to start: dispatch latency and queueing.
    release_jitter_ms: Percentiles,
}

/// One row per task of `set`: `released[i]` jobs released, `stats[i]` how they ended.
pub fn task_results(set: &TaskSet, released: &[u64], stats: &[TaskStats]) -> Vec<TaskResult> {
    set.tasks()
        .iter()
        .zip(released)
        .zip(stats)
        .map(|((t, &released), s)| TaskResult {
            name: t.name.to_string(),
            released,
            met: s.met(),
            late: s.late(),
            skipped: s.skipped(),
            failed: s.failed(),
            response_ms: Percentiles::of(&s.response),
            release_jitter_ms: Percentiles::of(&s.release_jitter),
        })
        .collect()
}

/// Prints `results` as a table.
pub fn print_results(results: &[TaskResult]) {
    let mut table = Table::new();
    table.set_header([
        "task",
        "released",
        "met",
        "late",
        "skipped",
        "failed",
        "response p50 ms",
        "p99",
        "p99.9",
        "max",
        "start delay p50 ms",
        "p99",
    ]);
    for r in results {
        table.add_row([
            r.name.clone(),
            r.released.to_string(),
            r.met.to_string(),
            r.late.to_string(),
            r.skipped.to_string(),
            r.failed.to_string(),
            format!("{:.3}", r.response_ms.p50),
            format!("{:.3}", r.response_ms.p99),
            format!("{:.3}", r.response_ms.p99_9),
            format!("{:.3}", r.response_ms.max),
            format!("{:.3}", r.release_jitter_ms.p50),
            format!("{:.3}", r.release_jitter_ms.p99),
        ]);
    }
    println!("{table}");
}

/// One frame of the trace file. Integers only and a fixed key order, so equal runs
/// give byte-identical files.
#[derive(Serialize)]
struct TraceFrame<'a> {
    task: &'a str,
    seq: u32,
    accelerator: &'a str,
    mode: &'static str,
    release_ns: u64,
    start_ns: Option<u64>,
    end_ns: Option<u64>,
    deadline_ns: u64,
    state: &'static str,
}

/// Writes `frames` to `path` as a JSON array, one frame object per line, times
/// counted from `origin_ns` (the first release).
pub fn write_trace(
    path: &Path,
    set: &TaskSet,
    frames: &[FrameRecord],
    origin_ns: u64,
) -> Result<()> {
    let write = || -> std::io::Result<()> {
        let mut out = BufWriter::new(File::create(path)?);
        out.write_all(b"[")?;
        for (i, f) in frames.iter().enumerate() {
            let frame = TraceFrame {
                task: &set.task(f.task).name,
                seq: f.seq,
                accelerator: &set.accelerators()[usize::from(f.accelerator)].name,
                mode: match f.mode {
                    Mode::Primary => "primary",
                    Mode::Fallback => "fallback",
                },
                release_ns: f.release_ns.saturating_sub(origin_ns),
                start_ns: f.start_ns.map(|t| t.saturating_sub(origin_ns)),
                end_ns: f.end_ns.map(|t| t.saturating_sub(origin_ns)),
                deadline_ns: f.deadline_ns.saturating_sub(origin_ns),
                state: match f.state {
                    FrameState::Met => "met",
                    FrameState::Late => "late",
                    FrameState::Skipped => "skipped",
                    FrameState::Failed => "failed",
                },
            };
            out.write_all(if i == 0 { b"\n" } else { b",\n" })?;
            serde_json::to_writer(&mut out, &frame)?;
        }
        out.write_all(b"\n]\n")?;
        out.flush()
    };
    write().with_context(|| format!("cannot write the trace to `{}`", path.display()))
}
