//! The host driver: the [`Executive`] on a real clock, one worker thread per
//! accelerator, fed by bounded `crossbeam` channels.
//!
//! The calling thread is the time-triggered dispatcher: it sleeps until just before the
//! next release in the [`ScheduleTable`], spins the last stretch (so a release is not
//! at the mercy of the OS timer's slack), releases the job and sends the dispatch to
//! the accelerator's worker. Workers run jobs to completion, so every host accelerator
//! is non-preemptive. After the threads start, nothing here allocates: channels are
//! bounded arrays and frame records go straight to the caller's [`Recorder`].

use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use thiserror::Error;

use cadence_hal::Clock;

use crate::executive::{Dispatch, Executive, Recorder};
use crate::table::ScheduleTable;
use crate::task::{AcceleratorId, Name, TaskId, TaskSet};

/// A job's runner reported that the frame failed; the runner keeps the details (its
/// own error log or counters), the executive records the frame as `failed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobFailed;

/// What a task does when its job runs: pre-processing, the model, post-processing.
pub trait JobRunner: Send {
    /// Runs one frame. Must not allocate once warmed up (contract 1).
    fn run(&mut self, job: &Dispatch) -> Result<(), JobFailed>;
}

/// When the run stops releasing jobs (jobs already released still end and are
/// recorded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// After this many releases in all.
    Frames(u64),
    /// At this much clock time after the first release.
    After(Duration),
}

/// Settings of a host run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostConfig {
    /// When to stop releasing.
    pub stop: Stop,
    /// How long before a release the dispatcher stops sleeping and spins.
    pub spin: Duration,
    /// Delay from the call to the first release, so every worker is waiting by then.
    pub lead: Duration,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            stop: Stop::Frames(1),
            spin: Duration::from_micros(200),
            lead: Duration::from_millis(2),
        }
    }
}

/// Why a host run could not start.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum HostError {
    /// Host workers run jobs to completion: a preemptive accelerator cannot be honoured.
    #[error(
        "accelerator `{0}` is declared preemptive, but host workers run each job to completion; \
         declare it `preemptive = false` (and re-check the schedule)"
    )]
    PreemptiveAccelerator(Name),
    /// Not one runner per task.
    #[error("{runners} job runners for {tasks} tasks: give exactly one per task")]
    RunnerCount {
        /// Runners given.
        runners: usize,
        /// Tasks in the set.
        tasks: usize,
    },
    /// A worker thread panicked.
    #[error("the worker of accelerator `{0}` panicked; see its message above")]
    WorkerPanicked(Name),
}

/// What a host run did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostOutcome {
    /// Jobs released.
    pub released: u64,
    /// Clock time of the first release.
    pub origin_ns: u64,
    /// Clock time when the last job ended.
    pub end_ns: u64,
}

#[derive(Clone, Copy, Debug)]
struct Completion {
    accelerator: AcceleratorId,
    start_ns: u64,
    end_ns: u64,
    ok: bool,
}

/// Runs `set` on the host by `table` until `config.stop`, with `runners[i]` doing task
/// `i`'s work and every frame recorded once in `recorder`. Release and start instants
/// are read from `clock`, which all threads share.
pub fn run(
    set: &TaskSet,
    table: &ScheduleTable,
    runners: &mut [&mut dyn JobRunner],
    clock: &(impl Clock + Sync),
    config: &HostConfig,
    recorder: &mut (impl Recorder + ?Sized),
) -> Result<HostOutcome, HostError> {
    if let Some(a) = set.accelerators().iter().find(|a| a.preemptive) {
        return Err(HostError::PreemptiveAccelerator(a.name.clone()));
    }
    if runners.len() != set.tasks().len() {
        return Err(HostError::RunnerCount {
            runners: runners.len(),
            tasks: set.tasks().len(),
        });
    }
    let accelerators = set.accelerators().len();
    let mut per_worker: Vec<Vec<(TaskId, &mut dyn JobRunner)>> =
        (0..accelerators).map(|_| Vec::new()).collect();
    for (task, runner) in runners.iter_mut().enumerate() {
        let accelerator = set.task(task as TaskId).accelerator;
        per_worker[usize::from(accelerator)].push((task as TaskId, &mut **runner));
    }
    let (done_tx, done_rx) = bounded::<Completion>(accelerators * 2);
    std::thread::scope(|scope| {
        let mut job_txs = Vec::with_capacity(accelerators);
        let mut workers = Vec::with_capacity(accelerators);
        for (a, runners) in per_worker.into_iter().enumerate() {
            let (job_tx, job_rx) = bounded::<Dispatch>(2);
            job_txs.push(job_tx);
            let done_tx = done_tx.clone();
            let name = set.accelerators()[a].name.clone();
            let handle = std::thread::Builder::new()
                .name(format!("cadence-{name}"))
                .spawn_scoped(scope, move || {
                    worker(a as AcceleratorId, runners, &job_rx, &done_tx, clock)
                })
                .expect("spawning a worker thread");
            workers.push((name, handle));
        }
        drop(done_tx);
        let outcome = dispatcher(set, table, &job_txs, &done_rx, clock, config, recorder);
        drop(job_txs);
        for (name, handle) in workers {
            handle.join().map_err(|_| HostError::WorkerPanicked(name))?;
        }
        Ok(outcome)
    })
}

fn worker(
    accelerator: AcceleratorId,
    mut runners: Vec<(TaskId, &mut dyn JobRunner)>,
    jobs: &Receiver<Dispatch>,
    done: &Sender<Completion>,
    clock: &impl Clock,
) {
    while let Ok(job) = jobs.recv() {
        let start_ns = clock.now_ns();
        let ok = runners
            .iter_mut()
            .find(|(task, _)| *task == job.task)
            .is_some_and(|(_, runner)| runner.run(&job).is_ok());
        let end_ns = clock.now_ns();
        let completion = Completion {
            accelerator,
            start_ns,
            end_ns,
            ok,
        };
        if done.send(completion).is_err() {
            return;
        }
    }
}

/// Waits until `deadline_ns` on `clock` or until a completion arrives, whichever is
/// first: sleeps on the channel until `spin` before the deadline, then polls it.
fn wait_until(
    deadline_ns: u64,
    done: &Receiver<Completion>,
    clock: &impl Clock,
    spin: Duration,
) -> Option<Completion> {
    let spin_ns = spin.as_nanos() as u64;
    loop {
        let now = clock.now_ns();
        if now >= deadline_ns {
            return None;
        }
        let left = deadline_ns - now;
        if left > spin_ns {
            match done.recv_timeout(Duration::from_nanos(left - spin_ns)) {
                Ok(c) => return Some(c),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
        if let Ok(c) = done.try_recv() {
            return Some(c);
        }
        std::hint::spin_loop();
    }
}

fn dispatcher(
    set: &TaskSet,
    table: &ScheduleTable,
    jobs: &[Sender<Dispatch>],
    done: &Receiver<Completion>,
    clock: &impl Clock,
    config: &HostConfig,
    recorder: &mut (impl Recorder + ?Sized),
) -> HostOutcome {
    let mut executive = Executive::new(set);
    let origin_ns = clock.now_ns() + config.lead.as_nanos() as u64;
    let stop_ns = match config.stop {
        Stop::After(d) => origin_ns.saturating_add(d.as_nanos() as u64),
        Stop::Frames(_) => u64::MAX,
    };
    let max_frames = match config.stop {
        Stop::Frames(n) => n,
        Stop::After(_) => u64::MAX,
    };
    let send = |d: Option<Dispatch>| {
        if let Some(d) = d {
            // A worker only disconnects by panicking; the join reports it.
            let _ = jobs[usize::from(d.accelerator)].send(d);
        }
    };
    let mut releases = table.cursor();
    let mut released = 0u64;
    loop {
        let next_release =
            Some(origin_ns + releases.peek().0).filter(|&t| released < max_frames && t < stop_ns);
        let next = [next_release, executive.next_expiry()]
            .into_iter()
            .flatten()
            .min();
        let completion = match next {
            Some(t) => wait_until(t, done, clock, config.spin),
            // Every worker gone (they only leave by panicking): nothing more will end.
            None if executive.busy() => match done.recv() {
                Ok(c) => Some(c),
                Err(_) => break,
            },
            None => break,
        };
        if let Some(c) = completion {
            send(executive.complete(c.accelerator, c.start_ns, c.end_ns, c.ok, recorder));
            continue;
        }
        let now = clock.now_ns();
        while let Some(cut) = executive.expire(now, recorder) {
            send(cut.next);
        }
        if let Some(t) = next_release.filter(|&t| t <= now) {
            let (_, task) = releases.peek();
            releases.advance();
            released += 1;
            send(executive.release(task, t, recorder));
        }
    }
    HostOutcome {
        released,
        origin_ns,
        end_ns: clock.now_ns(),
    }
}
