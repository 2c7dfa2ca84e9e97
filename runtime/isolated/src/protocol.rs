//! The handshake between a parent and its worker, over the control block at the start
//! of the shared region.
//!
//! Both sides share one region: a control block page, then the package's arena. The
//! worker's [`Engine`](cadence_runtime::Engine) runs on that arena, so inputs and
//! outputs sit at their plan offsets and nothing is copied or serialised.
//!
//! A frame is two sequence numbers. The parent writes the inputs, then publishes
//! `request = n`; the worker sees it, runs, writes the outcome, then publishes
//! `done = n`. Publishing is a `SeqCst` store followed by a futex wake only when the
//! other side said it is asleep; waiting is a bounded spin, then a futex sleep. The
//! arena belongs to the worker between the two stores and to the parent otherwise: the
//! `SeqCst` store/load pairs are the hand-over, in both directions.
//!
//! Futexes here are shared (no `FUTEX_PRIVATE_FLAG`): the two processes map the same
//! file, and the kernel keys shared futexes by the page, not by the address.

use core::fmt;
use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::thread::futex;

/// Marks a control block written by a parent of this protocol version.
pub(crate) const MAGIC: u32 = u32::from_le_bytes(*b"CDW1");
/// Bytes reserved for the control block: one page, so the arena after it is
/// page-aligned (and so [`TENSOR_ALIGN`](cadence_hal::plan::TENSOR_ALIGN)-aligned).
pub(crate) const CONTROL_BYTES: usize = 4096;
/// Longest worker error message kept; longer ones are cut.
pub const MESSAGE_CAPACITY: usize = 256;

/// What the worker is doing, as stored in [`ControlBlock::state`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum WorkerState {
    /// Mapping the region and loading the package.
    Starting = 0,
    /// Loaded; waiting for a request.
    Ready = 1,
    /// The package could not be loaded; the message says why. The worker exits.
    LoadFailed = 2,
}

/// How the last frame ended, as stored in [`ControlBlock::outcome`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Outcome {
    /// Outputs are valid.
    Completed = 0,
    /// The engine refused or failed the frame; the message says why.
    Failed = 1,
}

/// A word on its own cache line, so that the two processes' stores do not bounce a
/// line they both write.
#[derive(Default)]
#[repr(C, align(64))]
pub(crate) struct Line<T>(pub T);

/// The shared control block. Every field is atomic: the two processes only ever meet
/// through atomics, and plain data (the arena) changes hands through them.
#[repr(C)]
pub(crate) struct ControlBlock {
    /// [`MAGIC`]; the worker refuses a region without it.
    pub magic: AtomicU32,
    /// Arena bytes the parent sized the region for; the worker checks its package.
    pub arena_bytes: AtomicU64,
    /// How long either side spins before sleeping on a futex, in nanoseconds.
    pub spin_ns: AtomicU64,
    /// Written by the parent: the sequence number of the latest request.
    pub request: Line<AtomicU32>,
    /// Written by the parent: 1 while it sleeps on `done`.
    pub parent_sleeping: Line<AtomicU32>,
    /// Written by the worker: the sequence number of the latest finished request.
    pub done: Line<AtomicU32>,
    /// Written by the worker: 1 while it sleeps on `request`.
    pub worker_sleeping: AtomicU32,
    /// Written by the worker: a [`WorkerState`]; a futex word during start-up.
    pub state: AtomicU32,
    /// Written by the worker: the last frame's [`Outcome`].
    pub outcome: AtomicU32,
    /// Written by the worker: bytes of `message` in use.
    pub message_len: AtomicU32,
    /// Written by the worker: why loading or the last frame failed (UTF-8).
    pub message: [AtomicU8; MESSAGE_CAPACITY],
}

const _: () = assert!(size_of::<ControlBlock>() <= CONTROL_BYTES);

impl ControlBlock {
    /// Puts the block in its start-up state, before a worker is spawned on it.
    pub fn reset(&self, arena_bytes: usize, spin: Duration) {
        self.arena_bytes
            .store(arena_bytes as u64, Ordering::Relaxed);
        self.spin_ns.store(
            spin.as_nanos().min(u64::MAX.into()) as u64,
            Ordering::Relaxed,
        );
        for word in [
            &self.request.0,
            &self.parent_sleeping.0,
            &self.done.0,
            &self.worker_sleeping,
            &self.state,
            &self.outcome,
            &self.message_len,
        ] {
            word.store(0, Ordering::Relaxed);
        }
        self.magic.store(MAGIC, Ordering::SeqCst);
    }

    /// The spin budget the parent chose.
    pub fn spin(&self) -> Duration {
        Duration::from_nanos(self.spin_ns.load(Ordering::Relaxed))
    }

    /// The worker's state (an unknown code reads as [`WorkerState::Starting`]).
    pub fn state(&self) -> WorkerState {
        match self.state.load(Ordering::SeqCst) {
            1 => WorkerState::Ready,
            2 => WorkerState::LoadFailed,
            _ => WorkerState::Starting,
        }
    }

    /// Publishes the worker's state and wakes a parent waiting for start-up.
    pub fn set_state(&self, state: WorkerState) {
        self.state.store(state as u32, Ordering::SeqCst);
        wake(&self.state);
    }

    /// Stores a message, cut to [`MESSAGE_CAPACITY`] bytes at a character boundary.
    pub fn write_message(&self, message: &dyn fmt::Display) {
        let mut buffer = MessageBuffer::default();
        let _ = fmt::write(&mut buffer, format_args!("{message}"));
        for (slot, &byte) in self.message.iter().zip(&buffer.bytes[..buffer.len]) {
            slot.store(byte, Ordering::Relaxed);
        }
        self.message_len.store(buffer.len as u32, Ordering::Release);
    }

    /// The message last stored.
    pub fn message(&self) -> WorkerMessage {
        let len = (self.message_len.load(Ordering::Acquire) as usize).min(MESSAGE_CAPACITY);
        let mut message = WorkerMessage {
            bytes: [0; MESSAGE_CAPACITY],
            len,
        };
        for (byte, slot) in message.bytes.iter_mut().zip(&self.message[..len]) {
            *byte = slot.load(Ordering::Relaxed);
        }
        message
    }
}

/// A worker's error message, held inline so that reporting a failed frame never
/// allocates.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct WorkerMessage {
    bytes: [u8; MESSAGE_CAPACITY],
    len: usize,
}

impl WorkerMessage {
    /// The message text (lossy if the worker wrote invalid UTF-8).
    pub fn as_str(&self) -> &str {
        let bytes = &self.bytes[..self.len];
        core::str::from_utf8(bytes)
            .unwrap_or_else(|e| core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default())
    }
}

impl fmt::Display for WorkerMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for WorkerMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Formats into a fixed buffer, dropping what does not fit (whole characters only).
struct MessageBuffer {
    bytes: [u8; MESSAGE_CAPACITY],
    len: usize,
}

impl Default for MessageBuffer {
    fn default() -> Self {
        Self {
            bytes: [0; MESSAGE_CAPACITY],
            len: 0,
        }
    }
}

impl fmt::Write for MessageBuffer {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            let mut utf8 = [0; 4];
            let encoded = c.encode_utf8(&mut utf8).as_bytes();
            let end = self.len + encoded.len();
            if end > MESSAGE_CAPACITY {
                return Err(fmt::Error);
            }
            self.bytes[self.len..end].copy_from_slice(encoded);
            self.len = end;
        }
        Ok(())
    }
}

/// Stores `value` into `word` and wakes the other side if it said it sleeps on it
/// (each word has one waiter: the other process).
pub(crate) fn publish(word: &AtomicU32, value: u32, other_sleeping: &AtomicU32) {
    word.store(value, Ordering::SeqCst);
    if other_sleeping.load(Ordering::SeqCst) != 0 {
        wake(word);
    }
}

fn wake(word: &AtomicU32) {
    // A failed wake can only mean a bad address, which a live mapping rules out; the
    // waiter's timeout covers it regardless.
    let _ = futex::wake(word, futex::Flags::empty(), 1);
}

/// Spins until `word` differs from `current` or `budget` has passed; returns the new
/// value, if any.
pub(crate) fn spin_until_changed(word: &AtomicU32, current: u32, budget: Duration) -> Option<u32> {
    if budget.is_zero() {
        return None;
    }
    let start = Instant::now();
    loop {
        // Reading the clock costs more than a load: look at it every few spins.
        for _ in 0..64 {
            let now = word.load(Ordering::SeqCst);
            if now != current {
                return Some(now);
            }
            core::hint::spin_loop();
        }
        if start.elapsed() >= budget {
            return None;
        }
        // On a machine with more runnable threads than cores, a pure spin can hold the
        // core the other side needs to answer; yielding hands it over.
        std::thread::yield_now();
    }
}

/// Sleeps on `word` until it differs from `current` or `timeout` passes (`None`: no
/// limit), announcing the sleep in `sleeping` so that [`publish`] wakes it. Returns the
/// new value, or `None` on timeout (or a spurious wake: callers loop).
pub(crate) fn sleep_until_changed(
    word: &AtomicU32,
    current: u32,
    sleeping: &AtomicU32,
    timeout: Option<Duration>,
) -> Option<u32> {
    sleeping.store(1, Ordering::SeqCst);
    // Seen after announcing the sleep: either this load sees the new value, or the
    // publisher's load of `sleeping` sees 1 and wakes us (both are SeqCst).
    let mut now = word.load(Ordering::SeqCst);
    if now == current {
        let timeout = timeout.and_then(|t| futex::Timespec::try_from(t).ok());
        // EAGAIN (the word already changed), EINTR and ETIMEDOUT all mean "look again".
        let _ = futex::wait(word, futex::Flags::empty(), current, timeout.as_ref());
        now = word.load(Ordering::SeqCst);
    }
    sleeping.store(0, Ordering::SeqCst);
    (now != current).then_some(now)
}
