//! `cadence schedule`, `cadence sim` and `cadence run-scenario` as a user runs them,
//! from a directory laid out like the repository root.

#[path = "../../../targets/host/tests/common/mod.rs"]
mod common;
#[path = "../../../targets/host/tests/workspace/mod.rs"]
mod workspace;

use std::path::Path;
use std::process::{Command, Output};

use cadence_host::scenario::{MeasureConfig, Scenario};
use cadence_scheduler::task::TaskId;
use serde_json::Value;

fn enter() -> &'static Path {
    workspace::enter("cli", &common::repo(), |stem| common::packages().get(stem))
}

fn cadence(args: &[&str]) -> Output {
    enter();
    Command::new(env!("CARGO_BIN_EXE_cadence"))
        .args(args)
        .output()
        .expect("cadence runs")
}

/// Runs `cadence args`, expects exit status `code`, answers stdout as JSON.
fn json(args: &[&str], code: i32) -> Value {
    let out = cadence(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "cadence {args:?}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn count(task: &Value, key: &str) -> u64 {
    task[key]
        .as_u64()
        .unwrap_or_else(|| panic!("`{key}` in {task}"))
}

/// Every released frame ended in exactly one state.
fn assert_accounted(tasks: &[Value]) {
    for t in tasks {
        let states: u64 = ["met", "late", "skipped", "failed"]
            .iter()
            .map(|k| count(t, k))
            .sum();
        assert_eq!(states, count(t, "released"), "{t}");
    }
}

fn by_name<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("task `{name}` in {report}"))
}

#[test]
fn schedule_json_matches_the_analysis() {
    for file in ["scenarios/highway.toml", "scenarios/sim-demo.toml"] {
        let report = json(&["schedule", file, "--json"], 0);
        let plan = Scenario::load(Path::new(file))
            .and_then(|s| s.plan(&MeasureConfig::default()))
            .expect("the bundled scenarios load");
        assert_eq!(report["schedulable"], plan.analysis.schedulable());
        assert!(plan.analysis.schedulable(), "{file} is schedulable");
        let tasks = report["tasks"].as_array().expect("tasks");
        assert_eq!(tasks.len(), plan.set.tasks().len());
        for (id, t) in tasks.iter().enumerate() {
            let v = plan.analysis.verdict(id as TaskId);
            assert_eq!(t["name"], plan.set.task(id as TaskId).name.as_str());
            assert_eq!(t["wcrt_ms"].as_f64(), v.wcrt_ns.map(ms), "{file}: {t}");
            assert_eq!(t["deadline_ms"].as_f64(), Some(ms(v.deadline_ns)));
            assert_eq!(t["schedulable"], v.schedulable());
        }
    }
}

#[test]
fn schedule_exit_status_tells_bad_files_from_unschedulable_sets() {
    let out = cadence(&["schedule", "scenarios/bad/unschedulable.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("task `hog` can miss its deadline"),
        "{stderr}"
    );
    let out = cadence(&["schedule", "scenarios/bad/bad-overrun.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("scenarios/bad/bad-overrun.toml:10:"),
        "{stderr}"
    );
}

#[test]
fn sim_traces_are_byte_identical_and_every_frame_is_accounted() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let traces: Vec<_> = (0..2)
        .map(|run| {
            let trace = dir.path().join(format!("trace{run}.json"));
            let t = trace.to_str().expect("utf-8");
            let report = json(
                &[
                    "sim",
                    "scenarios/sim-demo.toml",
                    "--frames",
                    "3000",
                    "--trace",
                    t,
                    "--json",
                ],
                0,
            );
            let tasks = report["tasks"].as_array().expect("tasks");
            assert_accounted(tasks);
            let released: u64 = tasks.iter().map(|t| count(t, "released")).sum();
            assert_eq!(released, 3000);
            std::fs::read(&trace).expect("the trace")
        })
        .collect();
    assert_eq!(traces[0], traces[1], "two runs, one trace");
    let frames: Vec<Value> = serde_json::from_slice(&traces[0]).expect("the trace is JSON");
    assert_eq!(frames.len(), 3000, "one object per frame");
    // Keys in the fixed order, read from the text (a JSON map would sort them).
    let first = std::str::from_utf8(&traces[0])
        .expect("utf-8")
        .lines()
        .nth(1)
        .expect("a frame");
    let keys = [
        "task",
        "seq",
        "accelerator",
        "mode",
        "release_ns",
        "start_ns",
        "end_ns",
        "deadline_ns",
        "state",
    ];
    let at: Vec<usize> = keys
        .iter()
        .map(|k| {
            first
                .find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("`{k}` in {first}"))
        })
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{first}");
    assert!(!first.contains('.'), "integers only: {first}");
}

#[test]
fn seeded_faults_are_reproducible_and_show_in_the_counts() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let run = |seed: &str, name: &str| {
        let trace = dir.path().join(name);
        let t = trace.to_str().expect("utf-8");
        let args = [
            "sim",
            "scenarios/sim-demo.toml",
            "--frames",
            "2000",
            "--trace",
            t,
            "--json",
            "--fault-seed",
            seed,
            "--overrun-rate",
            "0.1",
            "--fail-rate",
            "0.05",
        ];
        let report = json(&args, 0);
        assert_accounted(report["tasks"].as_array().expect("tasks"));
        (report, std::fs::read(&trace).expect("the trace"))
    };
    let (report, a) = run("7", "a.json");
    let (_, b) = run("7", "b.json");
    let (_, c) = run("8", "c.json");
    assert_eq!(a, b, "same seed, same trace");
    assert_ne!(a, c, "another seed, other faults");
    let tasks = report["tasks"].as_array().expect("tasks");
    assert!(tasks.iter().map(|t| count(t, "failed")).sum::<u64>() > 0);
    assert!(
        tasks
            .iter()
            .map(|t| count(t, "late") + count(t, "skipped"))
            .sum::<u64>()
            > 0,
        "overruns push some frames past their deadlines: {report}"
    );
}

#[test]
fn sim_refuses_an_unschedulable_set_unless_forced_then_shows_each_policy() {
    let out = cadence(&["sim", "scenarios/bad/unschedulable.toml", "--frames", "400"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    let dir = tempfile::tempdir().expect("a temporary folder");
    let trace = dir.path().join("trace.json");
    let t = trace.to_str().expect("utf-8");
    let args = [
        "sim",
        "scenarios/bad/unschedulable.toml",
        "--frames",
        "400",
        "--force",
        "--trace",
        t,
        "--json",
    ];
    let report = json(&args, 0);
    assert_accounted(report["tasks"].as_array().expect("tasks"));
    // skip-next: an overrunning job still ends (late) and the releases it overlaps are
    // skipped.
    let hog = by_name(&report, "hog");
    assert!(count(hog, "late") > 0 && count(hog, "skipped") > 0, "{hog}");
    // abort: nothing is ever delivered after its deadline.
    let dropper = by_name(&report, "dropper");
    assert!(
        count(dropper, "late") == 0 && count(dropper, "skipped") > 0,
        "{dropper}"
    );
    // degrade: after a miss the next job runs the fallback.
    let frames: Vec<Value> =
        serde_json::from_slice(&std::fs::read(&trace).expect("trace")).expect("JSON");
    assert!(
        frames
            .iter()
            .any(|f| f["task"] == "degrader" && f["mode"] == "fallback"),
        "the degrader ran its fallback"
    );
    assert!(
        frames
            .iter()
            .all(|f| f["mode"] == "primary" || f["task"] == "degrader")
    );
}

/// A small random task set as a scenario file (seeded, so a failure can be replayed).
fn random_scenario(seed: u64) -> String {
    let mut state = seed;
    let mut next = |n: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % n
    };
    let periods = [10.0, 20.0, 25.0, 40.0, 50.0, 100.0];
    let policies = ["skip-next", "abort", "degrade"];
    let mut text = String::new();
    let accelerators = 1 + next(2);
    for a in 0..accelerators {
        let preemptive = next(2) == 1;
        text += &format!("[[accelerator]]\nname = \"acc{a}\"\npreemptive = {preemptive}\n\n");
    }
    for t in 0..2 + next(4) {
        let period = periods[next(periods.len() as u64) as usize];
        let budget = period * (1 + next(30)) as f64 / 100.0;
        let policy = policies[next(3) as usize];
        text += &format!(
            "[[task]]\nname = \"t{t}\"\naccelerator = \"acc{}\"\nperiod_ms = {period}\nbudget_ms = {budget}\noverrun = \"{policy}\"\n",
            next(accelerators)
        );
        if policy == "degrade" {
            text += &format!("fallback_budget_ms = {}\n", budget / 2.0);
        }
        text += "\n";
    }
    text
}

#[test]
fn an_accepted_set_never_misses_in_sim() {
    let demo = json(
        &[
            "sim",
            "scenarios/sim-demo.toml",
            "--frames",
            "2000",
            "--json",
        ],
        0,
    );
    let misses = |report: &Value| -> u64 {
        let tasks = report["tasks"].as_array().expect("tasks");
        assert_accounted(tasks);
        tasks
            .iter()
            .map(|t| count(t, "late") + count(t, "skipped") + count(t, "failed"))
            .sum()
    };
    assert_eq!(misses(&demo), 0, "{demo}");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut accepted = 0;
    for seed in 0..24 {
        let file = dir.path().join(format!("random{seed}.toml"));
        std::fs::write(&file, random_scenario(seed)).expect("writing a scenario");
        let f = file.to_str().expect("utf-8");
        let out = cadence(&["schedule", f, "--json"]);
        let verdict: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        if verdict["schedulable"] != true {
            assert_eq!(out.status.code(), Some(1));
            continue;
        }
        accepted += 1;
        let report = json(&["sim", f, "--frames", "1000", "--json"], 0);
        assert_eq!(
            misses(&report),
            0,
            "seed {seed} was accepted but missed: {report}"
        );
    }
    assert!(
        accepted >= 6,
        "only {accepted} of 24 random sets were accepted"
    );
}

#[test]
fn run_scenario_accounts_for_every_frame_on_the_host() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let file = dir.path().join("spin.toml");
    std::fs::write(
        &file,
        "[[accelerator]]\nname = \"cpu0\"\n\n\
         [[task]]\nname = \"fast\"\naccelerator = \"cpu0\"\nperiod_ms = 20.0\nbudget_ms = 2.0\n\n\
         [[task]]\nname = \"slow\"\naccelerator = \"cpu0\"\nperiod_ms = 50.0\nbudget_ms = 5.0\noverrun = \"abort\"\n",
    )
    .expect("writing a scenario");
    let trace = dir.path().join("trace.json");
    let args = [
        "run-scenario",
        file.to_str().expect("utf-8"),
        "--seconds",
        "1.5",
        "--json",
        "--trace",
        trace.to_str().expect("utf-8"),
    ];
    let report = json(&args, 0);
    let tasks = report["tasks"].as_array().expect("tasks");
    assert_accounted(tasks);
    let released: u64 = tasks.iter().map(|t| count(t, "released")).sum();
    assert_eq!(
        released,
        count(&report, "released"),
        "every released frame recorded once"
    );
    assert!(tasks.iter().all(|t| count(t, "released") > 0), "{report}");
    let frames: Vec<Value> =
        serde_json::from_slice(&std::fs::read(&trace).expect("trace")).expect("JSON");
    assert_eq!(frames.len() as u64, released);
    let out = cadence(&[
        "run-scenario",
        "scenarios/bad/preemptive-on-host.toml",
        "--seconds",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("preemptive-on-host.toml:3:") && stderr.contains("preemptive"),
        "{stderr}"
    );
}
