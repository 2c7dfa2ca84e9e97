//! Cadence's scheduler: deterministic, time-triggered execution against fixed frame
//! deadlines (contract 3).
//!
//! 1. [`task`]: the task set (period, deadline, budget, priority, overrun policy) and
//!    the accelerators it runs on;
//! 2. [`analysis`]: response-time analysis, preemptive and non-preemptive, with
//!    release jitter: an unschedulable set is refused before anything runs;
//! 3. [`table`]: the static table of releases over a hyperperiod;
//! 4. [`executive`]: the state machine that releases jobs, dispatches them by priority,
//!    applies overrun policies and records how every frame ended;
//! 5. [`sim`]: the executive on a simulated clock, bit-for-bit reproducible;
//!    [`faults`]: seeded fault injection for it (overruns, backend errors, corrupted
//!    and dropped frames, a slow burst); [`ledger`]: the check that every released
//!    frame ended in exactly one state;
//! 6. `host` (feature `std`): the executive on the host's clock, one worker thread per
//!    accelerator, no allocation per frame.
//!
//! Everything but `host` is `no_std` and allocation-free.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![forbid(unsafe_code)]

pub mod analysis;
pub mod executive;
pub mod faults;
#[cfg(feature = "std")]
pub mod host;
pub mod ledger;
pub mod sim;
pub mod table;
pub mod task;

pub use analysis::{Analysis, TaskVerdict, Unschedulable};
pub use executive::{Dispatch, Executive, FrameRecord, InputFault, Mode, Recorder};
pub use faults::{Burst, Fault, FaultInjector, FaultMix, FaultPlan};
pub use ledger::{AccountingError, Ledger};
pub use sim::{Budgets, Execution, ExecutionModel, Simulator};
pub use table::{ScheduleTable, TableError};
pub use task::{AcceleratorSpec, OverrunPolicy, TaskId, TaskSet, TaskSetError, TaskSpec};
