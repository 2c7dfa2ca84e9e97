//! The run's HTML report: one self-contained page (no scripts, no external files)
//! with the verdict of every check, per-stream latency figures in the DUT's clock and
//! round trip in the rig's, a response-time plot per stream against its deadline, and
//! the faults as injected.
//!
//! Written here rather than with the profiler's report writer (`cadence_cli::report`):
//! that crate depends on the compiler and so on tract, which the rig has no other use
//! for, and its report is shaped around scheduler tasks and per-layer profiles rather
//! than a conversation with a device.

use std::fmt::Write as _;

use cadence_runtime::wire::payload::Outcome;

use crate::checks::{Check, describe, seconds_since};
use crate::junit::escape;
use crate::rig::Rig;
use crate::session::RunLog;
use crate::streams::StreamPlan;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}\
.pass{color:#176117}.fail{color:#a11}details pre{white-space:pre-wrap;font-size:.85em}\
svg{border:1px solid #ccc;background:#fcfcfc}";

/// The report page for `rig`'s run.
pub fn render(rig: &Rig, plans: &[StreamPlan], log: &RunLog, checks: &[Check]) -> String {
    let failed = checks.iter().filter(|c| !c.passed).count();
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>HIL rig {name}</title><style>{STYLE}</style></head><body>\
         <h1>HIL rig <code>{name}</code></h1><p class=\"{class}\"><b>{verdict}</b>: {passed} of {total} checks passed; \
         {frames} frames released over {secs:.1} s (time scale {scale}).</p>",
        name = escape(&rig.name),
        class = if failed == 0 { "pass" } else { "fail" },
        verdict = if failed == 0 { "PASS" } else { "FAIL" },
        passed = checks.len() - failed,
        total = checks.len(),
        frames = log.frames.len(),
        secs = seconds_since(log.started, log.finished),
        scale = rig.run.time_scale,
    );
    if let Some(fatal) = &log.fatal {
        let _ = write!(
            html,
            "<p class=\"fail\">The run stopped early: {}</p>",
            escape(fatal)
        );
    }

    html.push_str("<h2>Checks</h2><table><tr><th>check</th><th>verdict</th><th>findings</th></tr>");
    for check in checks {
        let _ = write!(
            html,
            "<tr><td><code>{}</code></td><td class=\"{}\">{}</td><td>{}<details><summary>details</summary><pre>{}</pre></details></td></tr>",
            escape(&check.name),
            if check.passed { "pass" } else { "fail" },
            if check.passed { "pass" } else { "FAIL" },
            escape(&check.summary),
            escape(&check.details.join("\n"))
        );
    }
    html.push_str("</table>");

    html.push_str(
        "<h2>Streams</h2><table><tr><th>stream</th><th>period</th><th>deadline</th><th>answered</th>\
         <th>outcomes</th><th>DUT release→finish p50 / p90 / p99 / max</th><th>rig send→record p50 / max</th></tr>",
    );
    for plan in plans {
        let mut dut = Vec::new();
        let mut round_trip = Vec::new();
        let mut tally = [0usize; Outcome::ALL.len()];
        for frame in log.frames.iter().filter(|f| f.stream == plan.kind) {
            let Some(answer) = frame.seq.and_then(|s| log.answers.get(&s)) else {
                continue;
            };
            tally[usize::from(answer.outcome.code())] += 1;
            if matches!(answer.outcome, Outcome::Met | Outcome::Late) {
                dut.push(answer.record.response_ns() as f64 / 1e6);
                if let Some(sent) = frame.sent_at {
                    round_trip.push(answer.at.saturating_duration_since(sent).as_secs_f64() * 1e3);
                }
            }
        }
        let outcomes: Vec<String> = Outcome::ALL
            .iter()
            .filter(|o| tally[usize::from(o.code())] > 0)
            .map(|o| format!("{o:?} {}", tally[usize::from(o.code())]))
            .collect();
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{:.1} ms</td><td>{:.1} ms</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            plan.kind.name(),
            plan.period.as_secs_f64() * 1e3,
            plan.deadline.as_secs_f64() * 1e3,
            tally.iter().sum::<usize>(),
            outcomes.join(", "),
            quantiles(&mut dut, &[0.5, 0.9, 0.99, 1.0]),
            quantiles(&mut round_trip, &[0.5, 1.0]),
        );
    }
    html.push_str("</table>");

    for plan in plans {
        plot(&mut html, plan, log);
    }

    html.push_str("<h2>Faults</h2><table><tr><th>fault</th><th>at</th><th>lasted</th><th>frames hit</th></tr>");
    for fault in &log.faults {
        let spec = &rig.faults[fault.spec];
        let _ = write!(
            html,
            "<tr><td>{}{}</td><td>{:.3} s</td><td>{:.1} ms</td><td>{}</td></tr>",
            fault.kind.name(),
            spec.stream
                .map_or(String::new(), |s| format!(" ({})", s.name())),
            seconds_since(log.started, fault.window.0),
            fault
                .window
                .1
                .saturating_duration_since(fault.window.0)
                .as_secs_f64()
                * 1e3,
            fault.frames.len()
        );
    }
    html.push_str("</table><h2>DUT summaries</h2><ul>");
    for (index, epoch) in log.epochs.iter().enumerate() {
        let what = match (&epoch.summary, epoch.killed) {
            (Some(summary), _) => describe(summary),
            (None, true) => "killed by the restart fault: no summary".into(),
            (None, false) => "no summary".into(),
        };
        let _ = write!(html, "<li>instance {index}: {}</li>", escape(&what));
    }
    html.push_str("</ul></body></html>\n");
    html
}

/// `values` at the given quantiles (nearest rank), in ms, slash-separated.
fn quantiles(values: &mut [f64], at: &[f64]) -> String {
    if values.is_empty() {
        return "–".into();
    }
    values.sort_by(f64::total_cmp);
    let picks: Vec<String> = at
        .iter()
        .map(|q| {
            let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
            format!("{:.1}", values[rank - 1])
        })
        .collect();
    format!("{} ms", picks.join(" / "))
}

/// An SVG plot of each answered frame's release-to-finish time (DUT clock) over the
/// run, with the deadline as a line; faults are shaded.
fn plot(html: &mut String, plan: &StreamPlan, log: &RunLog) {
    const W: f64 = 900.0;
    const H: f64 = 220.0;
    let points: Vec<(f64, f64, Outcome)> = log
        .frames
        .iter()
        .filter(|f| f.stream == plan.kind)
        .filter_map(|f| {
            let answer = f.seq.and_then(|s| log.answers.get(&s))?;
            let sent = f.sent_at?;
            Some((
                seconds_since(log.started, sent),
                answer.record.response_ns() as f64 / 1e6,
                answer.outcome,
            ))
        })
        .collect();
    let span = seconds_since(log.started, log.finished).max(1e-3);
    let deadline = plan.deadline.as_secs_f64() * 1e3;
    let top = points.iter().map(|p| p.1).fold(deadline * 1.25, f64::max);
    let x = |t: f64| 40.0 + (W - 50.0) * t / span;
    let y = |v: f64| H - 20.0 - (H - 30.0) * v / top;
    let _ = write!(
        html,
        "<h3>{} release→finish (ms) over the run</h3><svg width=\"{W}\" height=\"{H}\" xmlns=\"http://www.w3.org/2000/svg\">",
        plan.kind.name()
    );
    for fault in &log.faults {
        let (a, b) = (
            x(seconds_since(log.started, fault.window.0)),
            x(seconds_since(log.started, fault.window.1)),
        );
        let _ = write!(
            html,
            "<rect x=\"{a:.1}\" y=\"10\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#fdd\"><title>{}</title></rect>",
            (b - a).max(2.0),
            H - 30.0,
            fault.kind.name()
        );
    }
    let _ = write!(
        html,
        "<line x1=\"40\" x2=\"{W}\" y1=\"{d:.1}\" y2=\"{d:.1}\" stroke=\"#a11\" stroke-dasharray=\"4\"/>\
         <text x=\"42\" y=\"{t:.1}\" font-size=\"11\" fill=\"#a11\">deadline {deadline:.1} ms</text>\
         <text x=\"2\" y=\"14\" font-size=\"11\">{top:.0}</text><text x=\"2\" y=\"{b:.1}\" font-size=\"11\">0</text>",
        d = y(deadline),
        t = y(deadline) - 3.0,
        b = H - 20.0
    );
    for (t, v, outcome) in points {
        let colour = match outcome {
            Outcome::Met => "#176117",
            Outcome::Late => "#a11",
            _ => "#888",
        };
        let _ = write!(
            html,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"><title>{outcome:?} {v:.1} ms at {t:.2} s</title></circle>",
            x(t),
            y(v)
        );
    }
    html.push_str("</svg>");
}
