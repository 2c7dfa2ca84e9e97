//! The report as one self-contained HTML page: plain CSS, inline SVG charts, no
//! script and no external URL, so it opens from a CI artifact or an e-mail as is.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::charts::{self, si};
use super::{ClockKind, LayerProfile, ParetoPoint, Report, Summary, TaskReport};

const STYLE: &str = r#"
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; margin: 0; background: #f6f8fa; }
main { max-width: 1180px; margin: 0 auto; padding: 16px 28px 48px; background: #fff; min-height: 100vh; box-sizing: border-box; }
h1 { font-size: 24px; margin: 8px 0 4px; }
h2 { font-size: 19px; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 1px solid #d0d7de; }
h3 { font-size: 15px; margin: 20px 0 6px; }
.meta { color: #57606a; margin: 0 0 8px; }
.meta code { background: #f6f8fa; padding: 1px 4px; border-radius: 3px; }
nav a { margin-right: 14px; }
table { border-collapse: collapse; margin: 8px 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: right; white-space: nowrap; }
th { background: #f6f8fa; font-weight: 600; }
td.name, th.name { text-align: left; }
td.name { white-space: normal; overflow-wrap: break-word; max-width: 28em; }
tr.miss td { background: #fff1f0; }
.bad { color: #b42318; font-weight: 600; }
.good { color: #1a7f37; }
.scroll { overflow-x: auto; }
svg.chart { display: block; max-width: 100%; height: auto; margin: 4px 0 12px; }
svg .axis { stroke: #57606a; }
svg .tick { stroke: #57606a; }
svg .grid { stroke: #eaeef2; }
svg .tick-label, svg .value, svg .row-label, svg .point-label { font-size: 11px; fill: #1f2328; }
svg .axis-title { font-size: 12px; fill: #57606a; }
svg .bar { fill: #4c78a8; }
svg .bar.other { fill: #8c959f; }
svg .deadline { stroke: #d62728; stroke-width: 2; stroke-dasharray: 6 3; }
svg .deadline-label { fill: #d62728; font-size: 11px; }
svg .wcrt { stroke: #8250df; stroke-width: 1.5; stroke-dasharray: 2 3; }
svg .wcrt-label { fill: #8250df; font-size: 11px; }
svg .lane { fill: #f6f8fa; stroke: #eaeef2; }
svg .release { stroke: #57606a; stroke-width: 1; }
svg .deadline-mark { fill: #d62728; }
svg .job.met, .swatch.met { fill: #2da44e; background: #2da44e; }
svg .job.late, .swatch.late { fill: #fb8500; background: #fb8500; }
svg .job.skipped, .swatch.skipped { fill: #8c959f; background: #8c959f; }
svg .job.failed, .swatch.failed { fill: #cf222e; background: #cf222e; }
svg .point { fill: #fff; stroke: #4c78a8; stroke-width: 2; }
svg .point.frontier { fill: #4c78a8; }
.legend { color: #57606a; font-size: 12px; }
.swatch { display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 10px; vertical-align: -2px; border-radius: 2px; }
.release-swatch { width: 2px; background: #57606a; }
.deadline-swatch { width: 0; height: 0; border-left: 5px solid transparent; border-right: 5px solid transparent; border-top: 7px solid #d62728; border-radius: 0; }
"#;

/// `s` with the five HTML-special characters replaced, safe in text and in quoted
/// attributes alike.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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

fn fmt_ms(v: f64) -> String {
    format!("{v:.3}")
}

/// The whole page for `report`. Sections with no data are left out.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let clock = match report.clock {
        ClockKind::Simulated => "simulated clock (reproducible)",
        ClockKind::Real => "real clock (this machine)",
    };
    let _ = write!(
        out,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title><style>{STYLE}</style></head><body><main><h1>{title}</h1><p class="meta">source <code>{source}</code> · {clock} · {generated_by}</p>"#,
        title = escape(&report.title),
        source = escape(&report.source),
        generated_by = escape(&report.generated_by),
    );
    let sections = [
        ("tasks", "Deadlines and latency", !report.tasks.is_empty()),
        (
            "histograms",
            "Response-time histograms",
            !report.tasks.is_empty(),
        ),
        ("timeline", "Timeline", !report.timeline.is_empty()),
        ("layers", "Time per layer", !report.layers.is_empty()),
        ("pareto", "Cost against latency", !report.pareto.is_empty()),
    ];
    out.push_str("<nav>");
    for (id, heading, present) in sections {
        if present {
            let _ = write!(out, r##"<a href="#{id}">{heading}</a>"##);
        }
    }
    out.push_str("</nav>");
    if !report.tasks.is_empty() {
        tasks_section(&mut out, &report.tasks);
        out.push_str(r#"<section id="histograms"><h2>Response-time histograms</h2>"#);
        for task in &report.tasks {
            let _ = write!(out, "<h3>{}</h3>", escape(&task.name));
            charts::histogram(&mut out, task);
        }
        out.push_str("</section>");
    }
    if !report.timeline.is_empty() {
        let jobs = charts::timeline_window(&report.tasks, &report.timeline);
        let _ = write!(
            out,
            r#"<section id="timeline"><h2>Timeline</h2><p class="meta">{} of {} jobs, from the first release</p>"#,
            jobs.len(),
            report.timeline.len()
        );
        charts::timeline(&mut out, &jobs);
        charts::timeline_legend(&mut out);
        out.push_str("</section>");
    }
    if !report.layers.is_empty() {
        out.push_str(r#"<section id="layers"><h2>Time per layer</h2>"#);
        for profile in &report.layers {
            layers_section(&mut out, profile);
        }
        out.push_str("</section>");
    }
    if !report.pareto.is_empty() {
        pareto_section(&mut out, &report.pareto);
    }
    out.push_str("</main></body></html>\n");
    out
}

fn tasks_section(out: &mut String, tasks: &[TaskReport]) {
    out.push_str(r#"<section id="tasks"><h2>Deadlines and latency</h2><div class="scroll"><table><thead><tr><th class="name">task</th><th class="name">accelerator</th><th>period ms</th><th>deadline ms</th><th>budget ms</th><th>WCRT ms</th><th>released</th><th>met</th><th>late</th><th>skipped</th><th>failed</th><th>deadline misses</th></tr></thead><tbody>"#);
    for t in tasks {
        let wcrt = match t.wcrt_ms {
            Some(w) if w > t.deadline_ms => {
                format!(r#"<span class="bad">{} &gt; deadline</span>"#, fmt_ms(w))
            }
            Some(w) => format!(r#"<span class="good">{}</span>"#, fmt_ms(w)),
            None => "—".to_owned(),
        };
        let _ = write!(
            out,
            r#"<tr class="{}"><td class="name">{}</td><td class="name">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{wcrt}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            if t.deadline_misses > 0 { "miss" } else { "ok" },
            escape(&t.name),
            escape(&t.accelerator),
            fmt_ms(t.period_ms),
            fmt_ms(t.deadline_ms),
            fmt_ms(t.budget_ms),
            t.released,
            t.met,
            t.late,
            t.skipped,
            t.failed,
            t.deadline_misses,
        );
    }
    out.push_str("</tbody></table></div>");
    out.push_str(r#"<h3>Latency (ms)</h3><div class="scroll"><table><thead><tr><th class="name">task</th><th class="name">measure</th><th>count</th><th>min</th><th>mean</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>jitter p99.9−p50</th><th>jitter max−min</th></tr></thead><tbody>"#);
    for t in tasks {
        let measures: [(&str, &Summary); 4] = [
            ("response", &t.response),
            ("execution", &t.execution),
            ("release jitter", &t.release_jitter),
            ("end to end", &t.end_to_end),
        ];
        for (measure, s) in measures {
            let over = |v: f64| {
                if measure == "response" && v > t.deadline_ms {
                    format!(r#"<span class="bad">{}</span>"#, fmt_ms(v))
                } else {
                    fmt_ms(v)
                }
            };
            let _ = write!(
                out,
                r#"<tr><td class="name">{}</td><td class="name">{measure}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                escape(&t.name),
                s.count,
                fmt_ms(s.min_ms),
                fmt_ms(s.mean_ms),
                over(s.p50_ms),
                over(s.p90_ms),
                over(s.p99_ms),
                over(s.p99_9_ms),
                over(s.max_ms),
                fmt_ms(s.jitter_p999_minus_p50_ms),
                fmt_ms(s.jitter_max_minus_min_ms),
            );
        }
    }
    out.push_str("</tbody></table></div></section>");
}

fn layers_section(out: &mut String, profile: &LayerProfile) {
    let total: f64 = profile.steps.iter().map(|s| s.mean_us).sum();
    let _ = write!(
        out,
        r#"<h3>{}</h3><p class="meta">{} backend · {} frames · {} steps · {:.1} µs per frame in total</p>"#,
        escape(&profile.package),
        escape(&profile.backend),
        profile.frames,
        profile.steps.len(),
        total
    );
    charts::layers(out, profile);
}

fn pareto_section(out: &mut String, points: &[ParetoPoint]) {
    out.push_str(r#"<section id="pareto"><h2>Cost against latency</h2><p class="meta">Filled points are on the frontier: no other package is both cheaper and faster.</p>"#);
    let mut by_task: BTreeMap<&str, Vec<&ParetoPoint>> = BTreeMap::new();
    for p in points {
        by_task.entry(&p.task).or_default().push(p);
    }
    for (task, points) in by_task {
        let _ = write!(
            out,
            r#"<h3>{}</h3><div class="scroll"><table><thead><tr><th class="name">package</th><th>MACs</th><th>params</th><th>arena bytes</th><th>p50 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>frontier</th></tr></thead><tbody>"#,
            escape(task)
        );
        for (p, frontier) in points.iter().zip(charts::on_frontier(&points)) {
            let _ = write!(
                out,
                r#"<tr><td class="name">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                escape(&p.package),
                si(p.macs as f64),
                si(p.params as f64),
                p.arena_bytes,
                fmt_ms(p.p50_ms),
                fmt_ms(p.p99_ms),
                fmt_ms(p.p99_9_ms),
                if frontier { "yes" } else { "no" },
            );
        }
        out.push_str("</tbody></table></div>");
        charts::pareto(out, task, &points);
    }
    out.push_str("</section>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_every_special_character() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
