//! The soak (issue 7): the bundled scenarios for 100,000 frames under the `soak` fault
//! mix (overruns, backend errors, corrupted and dropped frames, a burst that makes the
//! set unschedulable for a while). Every released frame ends in exactly one state, the
//! totals add up per task and overall against the schedule table, nothing is allocated
//! per frame after warm-up, and the run is reproducible from its seed: in process
//! (simulator, fault injector and ledger) and through `cadence sim` as a user runs it.

#[path = "../../../targets/host/tests/common/mod.rs"]
mod common;
#[path = "../../../targets/host/tests/workspace/mod.rs"]
mod workspace;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;
use std::process::{Command, Output};

use cadence_alloc_count::{CountingAllocator, thread_allocations};
use cadence_host::scenario::{MeasureConfig, Plan, Scenario};
use cadence_runtime::stats::FrameState;
use cadence_scheduler::ledger::STATES;
use cadence_scheduler::task::TaskId;
use cadence_scheduler::{
    Analysis, Fault, FaultInjector, FaultMix, FaultPlan, FrameRecord, Ledger, Mode, Recorder,
    Simulator,
};
use serde_json::Value;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Frames of the soak.
const FRAMES: u64 = 100_000;
/// Frames recorded before allocations are counted.
const WARM_UP: u64 = 1_000;
const SCENARIOS: [&str; 2] = ["scenarios/highway.toml", "scenarios/sim-demo.toml"];

fn enter() -> &'static Path {
    workspace::enter("soak", &common::repo(), |stem| common::packages().get(stem))
}

fn plan(file: &str) -> Plan {
    enter();
    Scenario::load(Path::new(file))
        .and_then(|s| s.plan(&MeasureConfig::default()))
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Simulated time the releases of `frames` jobs span.
fn span_ns(plan: &Plan, frames: u64) -> u64 {
    frames.div_ceil(plan.table.releases().len() as u64) * plan.table.hyperperiod_ns()
}

/// What one soak run came to.
struct Soak<'t> {
    ledger: Ledger<'t>,
    injector: FaultInjector<'t>,
    /// A hash of every record, in the order recorded.
    digest: u64,
    /// Allocations on this thread while frames after the warm-up were recorded.
    allocations_after_warm_up: u64,
}

fn hash_record(h: &mut DefaultHasher, r: &FrameRecord) {
    let state = STATES.iter().position(|&s| s == r.state);
    (r.task, r.seq, r.accelerator, r.mode == Mode::Fallback).hash(h);
    (r.release_ns, r.start_ns, r.end_ns, r.deadline_ns, state).hash(h);
}

fn soak(plan: &Plan, seed: u64) -> Soak<'_> {
    let faults = FaultPlan::new(seed, FaultMix::soak(span_ns(plan, FRAMES)), &plan.table);
    let mut injector = FaultInjector::new(faults);
    let mut ledger = Ledger::new(&plan.set, faults);
    let mut hasher = DefaultHasher::new();
    let mut recorded = 0;
    let mut warm = None;
    let mut sim = Simulator::new(&plan.set, &plan.table);
    sim.run(FRAMES, &mut injector, &mut |r: &FrameRecord| {
        recorded += 1;
        if recorded == WARM_UP {
            warm = Some(thread_allocations());
        }
        ledger.record(r);
        hash_record(&mut hasher, r);
    });
    let allocations_after_warm_up = thread_allocations() - warm.expect("more frames than warm-up");
    ledger
        .check(sim.executive(), FRAMES)
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    Soak {
        ledger,
        injector,
        digest: hasher.finish(),
        allocations_after_warm_up,
    }
}

#[test]
fn the_soak_accounts_for_every_frame_allocates_nothing_and_follows_its_seed() {
    let before = thread_allocations();
    drop(std::hint::black_box(vec![0u8; 16]));
    assert!(
        thread_allocations() > before,
        "the counting allocator must count"
    );

    for file in SCENARIOS {
        let plan = plan(file);
        let run = soak(&plan, 1);
        assert_eq!(
            run.allocations_after_warm_up, 0,
            "{file}: allocations per frame"
        );
        let tasks = 0..plan.set.tasks().len() as TaskId;
        for fault in Fault::ALL {
            let injected: u64 = tasks.clone().map(|t| run.injector.injected(t, fault)).sum();
            assert!(injected > 0, "{file}: no {fault} injected");
        }
        // Each input fault ends its frame in the one state documented for it.
        for t in tasks.clone() {
            let l = &run.ledger;
            for (fault, state) in [
                (Fault::DroppedInput, FrameState::Skipped),
                (Fault::CorruptedInput, FrameState::Failed),
            ] {
                let injected = run.injector.injected(t, fault);
                assert_eq!(l.count(t, Some(fault), state), injected, "{file} {fault}");
            }
            assert_eq!(
                l.count(t, Some(Fault::BackendError), FrameState::Failed),
                run.injector.injected(t, Fault::BackendError),
                "{file}: every backend error fails its frame"
            );
        }
        for state in STATES {
            let n: u64 = tasks.clone().map(|t| run.ledger.state(t, state)).sum();
            assert!(n > 0, "{file}: no frame ended {state:?}");
        }
        let burst = FaultMix::soak(span_ns(&plan, FRAMES))
            .burst
            .expect("a burst");
        let refused = burst
            .inflated(&plan.set)
            .map(|slowed| Analysis::of(&slowed).check(&slowed).is_err())
            .unwrap_or(true);
        assert!(refused, "{file}: the burst must make the set unschedulable");

        assert_eq!(
            soak(&plan, 1).digest,
            run.digest,
            "{file}: same seed, same run"
        );
        assert_ne!(
            soak(&plan, 2).digest,
            run.digest,
            "{file}: another seed, other faults"
        );
    }
}

fn cadence(args: &[&str]) -> Output {
    enter();
    Command::new(env!("CARGO_BIN_EXE_cadence"))
        .args(args)
        .output()
        .expect("cadence runs")
}

fn count(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("`{key}` in {v}"))
}

#[test]
fn cadence_sim_soak_is_byte_identical_per_seed_and_every_frame_adds_up() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let frames = FRAMES.to_string();
    let run = |seed: &str, name: &str| {
        let trace = dir.path().join(name);
        let args = [
            "sim",
            "scenarios/highway.toml",
            "--frames",
            &frames,
            "--faults",
            "soak",
            "--seed",
            seed,
            "--json",
            "--trace",
            trace.to_str().expect("utf-8"),
        ];
        let out = cadence(&args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (out.stdout, std::fs::read(&trace).expect("the trace"))
    };
    // `assert!` rather than `assert_eq!`: a failure should not print megabytes.
    let (summary, trace) = run("5", "a.json");
    let (again_summary, again_trace) = run("5", "b.json");
    assert!(again_summary == summary, "same seed, another summary");
    assert!(again_trace == trace, "same seed, another trace");
    let (other_summary, other_trace) = run("6", "c.json");
    assert!(other_trace != trace, "another seed, the same trace");
    assert!(other_summary != summary, "another seed, the same summary");

    let report: Value = serde_json::from_slice(&summary).expect("JSON");
    assert_eq!(report["accounted"], true, "{}", report["verdict"]);
    assert!(
        report["verdict"]
            .as_str()
            .expect("a verdict")
            .starts_with(&format!("all {FRAMES} frames accounted")),
        "{}",
        report["verdict"]
    );
    // Releases per task from walking the schedule table; states from the report.
    let plan = plan("scenarios/highway.toml");
    let tasks = report["tasks"].as_array().expect("tasks");
    let mut total = 0;
    for (id, t) in tasks.iter().enumerate() {
        let expected = plan
            .table
            .cursor()
            .take(FRAMES as usize)
            .filter(|&(_, task)| usize::from(task) == id)
            .count() as u64;
        let states: u64 = ["met", "late", "skipped", "failed"]
            .iter()
            .map(|k| count(t, k))
            .sum();
        assert_eq!(count(t, "released"), expected, "{t}");
        assert_eq!(states, expected, "{t}");
        total += states;
    }
    assert_eq!(total, FRAMES);
    // The cause table partitions the same frames.
    let by_cause: u64 = report["causes"]
        .as_array()
        .expect("causes")
        .iter()
        .map(|r| {
            ["met", "late", "skipped", "failed"]
                .iter()
                .map(|k| count(r, k))
                .sum::<u64>()
        })
        .sum();
    assert_eq!(by_cause, FRAMES);
    let frames: Vec<Value> = serde_json::from_slice(&trace).expect("the trace is JSON");
    assert_eq!(frames.len() as u64, FRAMES, "one trace object per frame");
    assert!(
        report["burst"]["unschedulable"].is_string(),
        "{}",
        report["burst"]
    );
}
