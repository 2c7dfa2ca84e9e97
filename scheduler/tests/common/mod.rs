//! A task set and a job runner shared by the host-driver tests.

use cadence_hal::{Clock, StdClock};
use cadence_scheduler::host::{JobFailed, JobRunner};
use cadence_scheduler::task::name;
use cadence_scheduler::{AcceleratorSpec, Dispatch, TaskSet, TaskSpec};

/// Spins for a fixed time, failing every `fail_every`-th job.
pub struct Spinner {
    clock: StdClock,
    ns: u64,
    fail_every: u32,
    pub ran: u32,
}

impl JobRunner for Spinner {
    fn run(&mut self, job: &Dispatch) -> Result<(), JobFailed> {
        let end = self.clock.now_ns() + self.ns;
        while self.clock.now_ns() < end {
            std::hint::spin_loop();
        }
        self.ran += 1;
        if self.fail_every != 0 && job.seq % self.fail_every == self.fail_every - 1 {
            return Err(JobFailed);
        }
        Ok(())
    }
}

pub fn set(preemptive: bool) -> TaskSet {
    let task = |n: &str, acc: u8, period_ms: u64| {
        TaskSpec::periodic(n, acc, period_ms * 1_000_000, 1_000_000, 1)
    };
    let accs = [
        AcceleratorSpec {
            name: name("cpu0"),
            preemptive,
        },
        AcceleratorSpec {
            name: name("cpu1"),
            preemptive: false,
        },
    ];
    TaskSet::new(&accs, &[task("camera", 0, 4), task("lidar", 1, 12)]).unwrap()
}

pub fn spinner(ns: u64, fail_every: u32) -> Spinner {
    Spinner {
        clock: StdClock::default(),
        ns,
        fail_every,
        ran: 0,
    }
}
