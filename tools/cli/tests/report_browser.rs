//! The profiler's report as a reader gets it: a synthetic report with every section,
//! filled through the same conversions a producer uses, written as JSON (it must read
//! back unchanged, under the documented field names) and as HTML, which Debian's
//! headless chromium opens; a check script appended for the test measures every chart
//! the browser laid out and counts its marks.

use std::path::Path;
use std::process::Command;

use cadence_cli::report::{
    self, ClockKind, JobState, LayerProfile, MAX_TIMELINE_JOBS, ParetoPoint, Report,
    TIMELINE_PERIODS, TOP_LAYERS, TaskReport, TaskTiming, TimelineEntry,
};
use cadence_runtime::stats::{FrameState, FrameTimes, Histogram, TaskStats};
use serde_json::Value;

const CHROMIUM: &str = "/usr/bin/chromium";
/// A name that runs a script if any string reaches the page unescaped, in text or in
/// an attribute.
const HOSTILE: &str = r#"</title>"'><script>window.injected = true</script>"#;

/// A small deterministic generator, so the report is the same on every run.
struct Lcg(u64);

impl Lcg {
    fn unit(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Three periodic tasks simulated for `run_ns`, with jobs in every state.
fn synthetic_report(run_ns: u64) -> Report {
    let timings = [
        (
            "camera",
            "cpu0",
            33_333_333,
            30_000_000,
            12_000_000,
            Some(21_000_000),
        ),
        (
            "lidar",
            "cpu1",
            100_000_000,
            90_000_000,
            40_000_000,
            Some(95_000_000),
        ),
        (HOSTILE, HOSTILE, 50_000_000, 20_000_000, 15_000_000, None),
    ];
    let mut rng = Lcg(7);
    let mut report = Report::new(
        format!("synthetic {HOSTILE}"),
        HOSTILE,
        ClockKind::Simulated,
    );
    for (name, accelerator, period_ns, deadline_ns, budget_ns, wcrt_ns) in timings {
        let timing = TaskTiming {
            name: name.into(),
            accelerator: accelerator.into(),
            period_ns,
            deadline_ns,
            budget_ns,
            wcrt_ns,
        };
        let mut stats = TaskStats::new();
        for job in 0..run_ns / period_ns {
            let release_ns = job * period_ns;
            let start_ns = release_ns + (rng.unit() * 2e6) as u64;
            let end_ns = start_ns + (budget_ns as f64 * (0.4 + rng.unit() * 1.2)) as u64;
            let times = FrameTimes {
                capture_ns: release_ns.saturating_sub(1_000_000),
                release_ns,
                start_ns,
                end_ns,
            };
            let state = match job % 7 {
                4 => FrameState::Skipped,
                5 => FrameState::Failed,
                _ if end_ns > release_ns + deadline_ns => FrameState::Late,
                _ => FrameState::Met,
            };
            let ran = state != FrameState::Skipped;
            stats.record(state, ran.then_some(&times));
            report.timeline.push(TimelineEntry {
                task: name.into(),
                job,
                accelerator: accelerator.into(),
                release_ms: report::ms(release_ns),
                start_ms: ran.then(|| report::ms(start_ns)),
                end_ms: ran.then(|| report::ms(end_ns)),
                deadline_ms: report::ms(release_ns + deadline_ns),
                state: state.into(),
            });
        }
        report.tasks.push(TaskReport::new(&timing, &stats));
    }
    let layer = |package: &str, steps: usize, rng: &mut Lcg| {
        let times: Vec<Histogram> = (0..steps)
            .map(|_| {
                let mut h = Histogram::new();
                let typical = 5_000.0 + rng.unit() * 400_000.0;
                for _ in 0..50 {
                    h.record((typical * (0.9 + rng.unit() * 0.3)) as u64);
                }
                h
            })
            .collect();
        let names: Vec<String> = (0..steps).map(|i| format!("/backbone/conv{i}")).collect();
        let ops = ["Conv2d", "Relu", "MaxPool", "Add"];
        LayerProfile::new(
            package,
            "cpu",
            50,
            (0..steps).map(|i| (ops[i % ops.len()], names[i].as_str(), &times[i])),
        )
    };
    report
        .layers
        .push(layer("camera_det.cpk", TOP_LAYERS + 8, &mut rng));
    report.layers.push(layer(HOSTILE, TOP_LAYERS / 2, &mut rng));
    for (package, macs, p99_ms, task) in [
        ("camera_det.cpk", 1_200_000_000, 14.0, "camera"),
        ("camera_det_pruned.cpk", 610_000_000, 8.5, "camera"),
        ("camera_det_odd.cpk", 900_000_000, 15.0, "camera"),
        (HOSTILE, 40_000_000, 30.0, HOSTILE),
        ("lidar_b.cpk", 80_000_000, 20.0, HOSTILE),
    ] {
        report.pareto.push(ParetoPoint {
            task: task.into(),
            package: package.into(),
            macs,
            params: macs / 300,
            arena_bytes: macs / 1000,
            p50_ms: p99_ms * 0.8,
            p99_ms,
            p99_9_ms: p99_ms * 1.1,
        });
    }
    report
}

const CHECK_SCRIPT: &str = r#"<pre id="check"></pre><script>
const charts = [...document.querySelectorAll('svg.chart')].map(svg => {
  const rect = svg.getBoundingClientRect();
  const marks = sel => [...svg.querySelectorAll(sel)];
  const drawn = sel => marks(sel).filter(e => { const b = e.getBBox(); return b.width > 0 && b.height > 0; }).length;
  return { kind: svg.dataset.chart, label: svg.dataset.label, width: rect.width, height: rect.height,
           bars: marks('.bar').length, drawn_bars: drawn('.bar'),
           jobs: marks('.job').length, drawn_jobs: drawn('.job'),
           rows: marks('.row').length, points: marks('.point').length, drawn_points: drawn('.point'),
           deadlines: marks('.deadline').length };
});
document.getElementById('check').textContent = JSON.stringify({
  title: document.title, scripts: document.scripts.length, injected: window.injected === true,
  tables: document.querySelectorAll('table').length, charts });
</script>"#;

fn chromium_dump_dom(page: &Path, profile_dir: &Path) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} not found: the report test needs Debian's chromium; install it with \
         `apt-get install -y chromium` (tools/test.sh does)"
    );
    let out = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile_dir.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 DOM")
}

/// The JSON the check script left in `<pre id="check">`.
fn check_result(dom: &str) -> Value {
    let start = dom
        .find(r#"<pre id="check">"#)
        .expect("check element in the DOM")
        + 16;
    let end = start
        + dom[start..]
            .find("</pre>")
            .expect("end of the check element");
    let text = dom[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("check output is not JSON ({e}): {text}"))
}

#[test]
fn every_chart_renders_in_a_browser_with_the_expected_marks() {
    let report = synthetic_report(3_000_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let html = report::render(&report);
    let page = dir.path().join("report.html");
    std::fs::write(
        &page,
        html.replace("</body>", &format!("{CHECK_SCRIPT}</body>")),
    )
    .expect("write page");
    let check = check_result(&chromium_dump_dom(&page, &dir.path().join("profile")));

    assert_eq!(
        check["injected"], false,
        "a string reached the page unescaped"
    );
    assert_eq!(check["scripts"], 1, "only the test's own script may run");
    assert_eq!(check["title"], report.title);
    assert!(check["tables"].as_u64().unwrap() >= 3, "{check}");
    let charts = check["charts"].as_array().expect("charts");
    for chart in charts {
        assert!(
            chart["width"].as_f64().unwrap() > 100.0 && chart["height"].as_f64().unwrap() > 50.0,
            "chart laid out too small: {chart}"
        );
    }
    let of_kind =
        |kind: &str| -> Vec<&Value> { charts.iter().filter(|c| c["kind"] == kind).collect() };

    let histograms = of_kind("histogram");
    assert_eq!(histograms.len(), report.tasks.len());
    for (chart, task) in histograms.iter().zip(&report.tasks) {
        assert_eq!(chart["label"], task.name.as_str());
        assert_eq!(chart["bars"], task.response_histogram.len(), "{chart}");
        assert_eq!(chart["drawn_bars"], chart["bars"], "{chart}");
        assert_eq!(chart["deadlines"], 1);
        assert!(
            task.response_histogram.len() > 1,
            "the synthetic tasks spread their times"
        );
    }

    let timeline = of_kind("timeline");
    assert_eq!(timeline.len(), 1);
    let slowest = report.tasks.iter().map(|t| t.period_ms).fold(0.0, f64::max);
    let window: Vec<&TimelineEntry> = report
        .timeline
        .iter()
        .filter(|j| j.release_ms < TIMELINE_PERIODS * slowest)
        .collect();
    assert!(window.len() < report.timeline.len() && window.len() <= MAX_TIMELINE_JOBS);
    for state in [
        JobState::Met,
        JobState::Late,
        JobState::Skipped,
        JobState::Failed,
    ] {
        assert!(
            window.iter().any(|j| j.state == state),
            "no {state:?} job in the window"
        );
    }
    assert_eq!(timeline[0]["jobs"], window.len(), "{}", timeline[0]);
    assert_eq!(timeline[0]["drawn_jobs"], window.len());
    assert_eq!(timeline[0]["rows"], report.tasks.len());

    let layers = of_kind("layers");
    assert_eq!(layers.len(), report.layers.len());
    for (chart, profile) in layers.iter().zip(&report.layers) {
        let other = usize::from(profile.steps.len() > TOP_LAYERS);
        assert_eq!(
            chart["bars"],
            profile.steps.len().min(TOP_LAYERS) + other,
            "{chart}"
        );
        assert_eq!(chart["drawn_bars"], chart["bars"]);
    }

    let pareto = of_kind("pareto");
    assert_eq!(pareto.len(), 2, "one scatter per task");
    let points: u64 = pareto.iter().map(|c| c["points"].as_u64().unwrap()).sum();
    assert_eq!(points, report.pareto.len() as u64);
    let drawn: u64 = pareto
        .iter()
        .map(|c| c["drawn_points"].as_u64().unwrap())
        .sum();
    assert_eq!(drawn, points);
}

#[test]
fn the_json_reads_back_unchanged_under_the_documented_names() {
    let report = synthetic_report(1_000_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let written = report::write(&dir.path().join("out"), &report).expect("write report");
    let text = std::fs::read_to_string(&written.json).expect("read json");
    let back: Report = serde_json::from_str(&text).expect("parse json");
    assert_eq!(back, report);
    assert!(written.html.exists());

    let json: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(json["clock"], "simulated");
    assert!(
        json["generated_by"]
            .as_str()
            .unwrap()
            .starts_with("cadence ")
    );
    let task = &json["tasks"][0];
    for key in [
        "name",
        "accelerator",
        "period_ms",
        "deadline_ms",
        "budget_ms",
        "wcrt_ms",
        "released",
        "met",
        "late",
        "skipped",
        "failed",
        "deadline_misses",
        "response",
        "execution",
        "release_jitter",
        "end_to_end",
        "response_histogram",
    ] {
        assert!(task.get(key).is_some(), "task lacks {key}");
    }
    for key in [
        "count",
        "min_ms",
        "max_ms",
        "mean_ms",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "p99_9_ms",
        "jitter_p999_minus_p50_ms",
        "jitter_max_minus_min_ms",
    ] {
        assert!(task["response"].get(key).is_some(), "summary lacks {key}");
    }
    assert!(task["response_histogram"][0].get("low_ms").is_some());
    assert_eq!(json["tasks"][2]["wcrt_ms"], Value::Null);
    let skipped = json["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["state"] == "skipped")
        .expect("a skipped job");
    assert_eq!(
        (&skipped["start_ms"], &skipped["end_ms"]),
        (&Value::Null, &Value::Null)
    );
    let step = &json["layers"][0]["steps"][0];
    for key in [
        "index", "op", "name", "mean_us", "p50_us", "p99_us", "share",
    ] {
        assert!(step.get(key).is_some(), "step lacks {key}");
    }
    for key in [
        "task",
        "package",
        "macs",
        "params",
        "arena_bytes",
        "p50_ms",
        "p99_ms",
        "p99_9_ms",
    ] {
        assert!(json["pareto"][0].get(key).is_some(), "pareto lacks {key}");
    }
}

#[test]
fn no_string_reaches_the_html_unescaped() {
    let report = synthetic_report(500_000_000);
    let html = report::render(&report);
    assert!(!html.contains("<script"), "a script tag in the page");
    assert!(!html.contains(HOSTILE));
    assert!(html.contains("&lt;script&gt;window.injected = true&lt;/script&gt;"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page must be self-contained"
    );
}
