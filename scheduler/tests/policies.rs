//! Overrun policies and accounting, driven through the simulator: an injected overlong
//! or failing job ends exactly as its task's policy says, and every released frame is
//! recorded exactly once.

use cadence_runtime::stats::FrameState::{self, Failed, Late, Met, Skipped};
use cadence_scheduler::task::name;
use cadence_scheduler::{
    AcceleratorSpec, Execution, FrameRecord, Mode, OverrunPolicy, ScheduleTable, Simulator, TaskId,
    TaskSet, TaskSpec,
};

/// One task: period = deadline = 10, budget 4, on one accelerator.
fn one_task(policy: OverrunPolicy, preemptive: bool) -> TaskSet {
    let task = TaskSpec {
        policy,
        ..TaskSpec::periodic("camera", 0, 10, 4, 1)
    };
    let acc = AcceleratorSpec {
        name: name("cpu0"),
        preemptive,
    };
    TaskSet::new(&[acc], &[task]).unwrap()
}

/// Job `overlong` takes 15 instead of 4; job `failing` reports a fault.
fn inject(overlong: u32, failing: u32) -> impl FnMut(&TaskSet, TaskId, u32, Mode) -> Execution {
    move |set, task, seq, mode| {
        let spec = set.task(task);
        let ns = match (seq == overlong, mode, spec.policy) {
            (true, _, _) => 15,
            (false, Mode::Fallback, OverrunPolicy::Degrade { fallback_budget_ns }) => {
                fallback_budget_ns
            }
            _ => spec.budget_ns,
        };
        Execution {
            ns,
            fails: seq == failing,
        }
    }
}

fn simulate(set: &TaskSet, frames: u64, overlong: u32, failing: u32) -> Vec<FrameRecord> {
    let table = ScheduleTable::new(set).unwrap();
    let mut records = Vec::new();
    let outcome = Simulator::new(set, &table).run(
        frames,
        &mut inject(overlong, failing),
        &mut |r: &FrameRecord| records.push(*r),
    );
    assert_eq!(outcome.released, frames);
    records.sort_by_key(|r| (r.task, r.seq));
    let seqs: Vec<u32> = records.iter().map(|r| r.seq).collect();
    assert_eq!(
        seqs,
        (0..frames as u32).collect::<Vec<_>>(),
        "every frame recorded exactly once"
    );
    records
}

fn states(records: &[FrameRecord]) -> Vec<FrameState> {
    records.iter().map(|r| r.state).collect()
}

#[test]
fn skip_next_lets_the_late_job_finish_and_skips_the_release_it_overlaps() {
    let r = simulate(&one_task(OverrunPolicy::SkipNext, false), 6, 2, u32::MAX);
    // Job 2 runs 20–35: late; job 3 released at 30 while it runs: skipped.
    assert_eq!(states(&r), [Met, Met, Late, Skipped, Met, Met]);
    assert_eq!((r[2].start_ns, r[2].end_ns), (Some(20), Some(35)));
    assert_eq!((r[3].start_ns, r[3].end_ns), (None, None));
}

#[test]
fn abort_on_a_non_preemptive_accelerator_drops_the_result_and_delays_the_next_job() {
    let r = simulate(&one_task(OverrunPolicy::Abort, false), 6, 2, u32::MAX);
    // Job 2 is abandoned at its deadline (30) but holds the accelerator until 35; job 3
    // then runs 35–39, inside its deadline of 40.
    assert_eq!(states(&r), [Met, Met, Skipped, Met, Met, Met]);
    assert_eq!((r[2].start_ns, r[2].end_ns), (Some(20), None));
    assert_eq!((r[3].start_ns, r[3].end_ns), (Some(35), Some(39)));
}

#[test]
fn abort_on_a_preemptive_accelerator_cuts_the_job_at_its_deadline() {
    let r = simulate(&one_task(OverrunPolicy::Abort, true), 6, 2, u32::MAX);
    assert_eq!(states(&r), [Met, Met, Skipped, Met, Met, Met]);
    assert_eq!((r[3].start_ns, r[3].end_ns), (Some(30), Some(34)));
}

#[test]
fn degrade_runs_the_fallback_after_an_overrun_or_a_fault_then_recovers() {
    let set = one_task(
        OverrunPolicy::Degrade {
            fallback_budget_ns: 2,
        },
        false,
    );
    let r = simulate(&set, 8, 2, 5);
    // Job 2 late (20–35); job 3 waits for it and runs the fallback 35–37: met. Job 4 is
    // primary again; job 5 fails; job 6 runs the fallback; job 7 is primary.
    assert_eq!(states(&r), [Met, Met, Late, Met, Met, Failed, Met, Met]);
    let modes: Vec<Mode> = r.iter().map(|r| r.mode).collect();
    use Mode::{Fallback as F, Primary as P};
    assert_eq!(modes, [P, P, P, F, P, P, F, P]);
    assert_eq!((r[3].start_ns, r[3].end_ns), (Some(35), Some(37)));
}

#[test]
fn degrade_queues_one_job_at_most_and_skips_the_rest() {
    let set = one_task(
        OverrunPolicy::Degrade {
            fallback_budget_ns: 2,
        },
        false,
    );
    let table = ScheduleTable::new(&set).unwrap();
    let mut records = Vec::new();
    // Job 0 runs 35: jobs 1 (t = 10) waits, jobs 2 and 3 (20, 30) find the queue full.
    let mut model = |_: &TaskSet, _: TaskId, seq: u32, mode: Mode| Execution {
        ns: match (seq, mode) {
            (0, _) => 35,
            (_, Mode::Fallback) => 2,
            _ => 4,
        },
        fails: false,
    };
    Simulator::new(&set, &table).run(5, &mut model, &mut |r: &FrameRecord| records.push(*r));
    records.sort_by_key(|r| r.seq);
    assert_eq!(states(&records), [Late, Late, Skipped, Skipped, Met]);
    // Job 1 ran the fallback 35–37, after its deadline of 20.
    assert_eq!(
        (records[1].mode, records[1].end_ns),
        (Mode::Fallback, Some(37))
    );
}

#[test]
fn a_preempted_job_resumes_where_it_stopped() {
    let task =
        |n: &str, period, budget, priority| TaskSpec::periodic(n, 0, period, budget, priority);
    let acc = AcceleratorSpec {
        name: name("dsp"),
        preemptive: true,
    };
    let set = TaskSet::new(&[acc], &[task("fast", 10, 3, 2), task("slow", 40, 12, 1)]).unwrap();
    let table = ScheduleTable::new(&set).unwrap();
    let mut records = Vec::new();
    Simulator::new(&set, &table).run(
        5,
        &mut cadence_scheduler::Budgets,
        &mut |r: &FrameRecord| records.push(*r),
    );
    let slow = records.iter().find(|r| r.task == 1).unwrap();
    // slow runs 3–10, is preempted by fast (10–13), resumes 13–18: 7 + 5 = 12.
    assert_eq!(
        (slow.start_ns, slow.end_ns, slow.state),
        (Some(3), Some(18), Met)
    );
}
