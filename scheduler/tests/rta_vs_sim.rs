//! The analysis against the simulator on a corpus of random task sets: a set the
//! analysis accepts never misses a deadline in simulation, and no simulated response
//! exceeds the analysed worst case. The simulator is also bit-for-bit reproducible.

use cadence_runtime::stats::FrameState;
use cadence_scheduler::task::{MAX_TASKS, name};
use cadence_scheduler::{
    AcceleratorSpec, Analysis, Budgets, Execution, FrameRecord, Mode, OverrunPolicy, ScheduleTable,
    Simulator, TaskId, TaskSet, TaskSpec,
};

/// SplitMix64: a seeded, dependency-free generator, so the corpus is the same on every
/// machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Periods with short common multiples, so a table of a few hyperperiods stays small.
const PERIODS: [u64; 7] = [1_000, 2_000, 2_500, 4_000, 5_000, 10_000, 20_000];

fn random_set(rng: &mut Rng) -> TaskSet {
    let accelerators = 1 + rng.below(2) as usize;
    let accs: Vec<AcceleratorSpec> = (0..accelerators)
        .map(|a| AcceleratorSpec {
            name: name(&format!("acc{a}")),
            preemptive: rng.below(2) == 0,
        })
        .collect();
    let n = 2 + rng.below(4) as usize;
    let tasks: Vec<TaskSpec> = (0..n)
        .map(|i| {
            let period_ns = PERIODS[rng.below(PERIODS.len() as u64) as usize];
            let deadline_ns = period_ns - rng.below(period_ns / 4);
            let budget_ns = 1 + rng.below(deadline_ns * 2 / 5);
            TaskSpec {
                name: name(&format!("t{i}")),
                accelerator: rng.below(accelerators as u64) as u8,
                period_ns,
                deadline_ns,
                budget_ns,
                priority: rng.below(4) as u8,
                release_jitter_ns: 0,
                policy: OverrunPolicy::SkipNext,
            }
        })
        .collect();
    let mut set = TaskSet::new(&accs, &tasks).unwrap();
    if rng.below(2) == 0 {
        set.assign_rate_monotonic();
    }
    set
}

fn simulate(set: &TaskSet, hyperperiods: u64) -> Vec<FrameRecord> {
    let table = ScheduleTable::new(set).unwrap();
    let frames = table.releases().len() as u64 * hyperperiods;
    let mut records = Vec::new();
    Simulator::new(set, &table).run(frames, &mut Budgets, &mut |r: &FrameRecord| {
        records.push(*r)
    });
    assert_eq!(
        records.len() as u64,
        frames,
        "every released frame is recorded"
    );
    records
}

#[test]
fn accepted_sets_never_miss_in_simulation() {
    let mut rng = Rng(20_240_611);
    let (mut accepted, mut rejected_and_missed) = (0, 0);
    for case in 0..1_500 {
        let set = random_set(&mut rng);
        let analysis = Analysis::of(&set);
        let records = simulate(&set, 3);
        let mut worst = [0u64; MAX_TASKS];
        for r in &records {
            let response = r.end_ns.map(|e| e - r.release_ns).unwrap_or(u64::MAX);
            worst[usize::from(r.task)] = worst[usize::from(r.task)].max(response);
        }
        let missed = records.iter().any(|r| r.state != FrameState::Met);
        if analysis.schedulable() {
            accepted += 1;
            assert!(
                !missed,
                "case {case}: accepted set missed in simulation: {set:?}"
            );
            for (id, v) in analysis.verdicts().iter().enumerate() {
                assert!(
                    worst[id] <= v.wcrt_ns.unwrap(),
                    "case {case}: task {id} responded in {} > analysed {:?}: {set:?}",
                    worst[id],
                    v.wcrt_ns
                );
            }
        } else if missed {
            rejected_and_missed += 1;
        }
    }
    // The corpus must exercise both sides, or the test proves nothing.
    assert!(accepted > 300, "only {accepted} sets accepted");
    assert!(
        rejected_and_missed > 100,
        "only {rejected_and_missed} rejected sets missed"
    );
}

#[test]
fn the_analysis_is_exact_for_preemptive_sets_released_together() {
    // With every task released at t = 0 and running its full budget, the first job of
    // each task in a preemptive, constrained-deadline, schedulable set meets the
    // analysed response time exactly (the critical instant). Sets with equal priorities
    // on one accelerator are left out: the analysis charges ties both ways, the
    // simulator breaks them by index.
    let mut rng = Rng(7);
    let mut checked = 0;
    for _ in 0..500 {
        let set = random_set(&mut rng);
        let preemptive_only = set.accelerators().iter().all(|a| a.preemptive);
        let tasks = set.tasks();
        let tied = tasks.iter().enumerate().any(|(i, a)| {
            tasks[..i]
                .iter()
                .any(|b| a.accelerator == b.accelerator && a.priority == b.priority)
        });
        let analysis = Analysis::of(&set);
        if !preemptive_only || tied || !analysis.schedulable() {
            continue;
        }
        let records = simulate(&set, 1);
        for (id, v) in analysis.verdicts().iter().enumerate() {
            let first = records
                .iter()
                .find(|r| r.task == id as TaskId && r.seq == 0)
                .unwrap();
            assert_eq!(first.end_ns.unwrap() - first.release_ns, v.wcrt_ns.unwrap());
        }
        checked += 1;
    }
    assert!(checked > 20, "only {checked} preemptive sets checked");
}

#[test]
fn simulation_is_bit_for_bit_reproducible() {
    let set = random_set(&mut Rng(99));
    let faults = |seed: u64| {
        let mut rng = Rng(seed);
        move |set: &TaskSet, task: TaskId, _: u32, _: Mode| {
            let budget = set.task(task).budget_ns;
            Execution {
                ns: budget / 2 + rng.below(budget * 2),
                fails: rng.below(20) == 0,
            }
        }
    };
    let run = |seed| {
        let table = ScheduleTable::new(&set).unwrap();
        let mut records = Vec::new();
        Simulator::new(&set, &table).run(2_000, &mut faults(seed), &mut |r: &FrameRecord| {
            records.push(*r)
        });
        records
    };
    let first = run(1);
    assert_eq!(first, run(1));
    assert_ne!(
        first,
        run(2),
        "the seed must matter, or the comparison proves nothing"
    );
}
