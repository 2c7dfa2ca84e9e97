//! The shared region: one memfd, mapped by the parent and by its worker. This is the
//! crate's only `unsafe` code: turning the mapping into a control block reference and
//! arena slices.
//!
//! Who may touch the arena when is the protocol's business (see [`crate::protocol`]):
//! the parent only between frames, the worker only during one. The parent side upholds
//! it by construction: [`IsolatedEngine::run`](crate::IsolatedEngine::run) is the only
//! method that lets the worker run a frame, it takes `&mut self` (so no arena borrow of
//! the parent is alive meanwhile), and it returns only once the worker has published
//! `done` or is dead and reaped.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use memmap2::{MmapOptions, MmapRaw};
use rustix::fs::{MemfdFlags, memfd_create};

use crate::protocol::{CONTROL_BYTES, ControlBlock};

/// A control block page followed by an arena, in a file both processes map.
pub(crate) struct SharedRegion {
    file: File,
    map: MmapRaw,
    arena_bytes: usize,
}

impl std::fmt::Debug for SharedRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRegion")
            .field("arena_bytes", &self.arena_bytes)
            .finish_non_exhaustive()
    }
}

impl SharedRegion {
    /// Parent side: a new anonymous shared file, zero-filled, with room for the control
    /// block and `arena_bytes` of arena. Close-on-exec: the worker opens it by path.
    pub fn create(arena_bytes: usize) -> io::Result<Self> {
        let file = File::from(memfd_create("cadence-worker", MemfdFlags::CLOEXEC)?);
        file.set_len((CONTROL_BYTES + arena_bytes) as u64)?;
        Self::map(file, arena_bytes)
    }

    /// Worker side: maps the parent's region, named by [`SharedRegion::path_for_worker`].
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = usize::try_from(file.metadata()?.len()).unwrap_or(0);
        let arena_bytes = len.checked_sub(CONTROL_BYTES).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("`{}` is too short for a control block", path.display()),
            )
        })?;
        Self::map(file, arena_bytes)
    }

    fn map(file: File, arena_bytes: usize) -> io::Result<Self> {
        let map = MmapOptions::new()
            .len(CONTROL_BYTES + arena_bytes)
            .map_raw(&file)?;
        Ok(Self {
            file,
            map,
            arena_bytes,
        })
    }

    /// A path under which a child process opens this same file: the parent's
    /// `/proc/<pid>/fd/<fd>` link (the descriptor itself is not inherited).
    pub fn path_for_worker(&self) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            self.file.as_raw_fd()
        ))
    }

    /// Arena bytes after the control block.
    pub fn arena_bytes(&self) -> usize {
        self.arena_bytes
    }

    /// The control block.
    pub fn control(&self) -> &ControlBlock {
        // SAFETY: the mapping is at least CONTROL_BYTES >= size_of::<ControlBlock>() long
        // and page-aligned (more than ControlBlock's 64-byte alignment); it lives as long
        // as `self`, which the reference borrows. ControlBlock holds only atomics, for
        // which every bit pattern (including the fresh file's zeroes) is valid and which
        // the other process may access concurrently.
        unsafe { &*self.map.as_ptr().cast::<ControlBlock>() }
    }

    /// The arena, read-only. Parent side, between frames only (see the module docs).
    pub fn arena(&self) -> &[u8] {
        // SAFETY: the range lies inside the mapping, which lives as long as `self`. The
        // worker writes the arena only during a frame, and no frame is in flight while
        // the parent holds `&self` (module docs), so nothing changes the bytes under
        // this borrow.
        unsafe {
            std::slice::from_raw_parts(self.map.as_ptr().add(CONTROL_BYTES), self.arena_bytes)
        }
    }

    /// The arena, writable. Parent side, between frames only (see the module docs).
    pub fn arena_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `arena`; `&mut self` makes this the only borrow in this process,
        // and the worker does not touch the arena between frames.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.map.as_mut_ptr().add(CONTROL_BYTES),
                self.arena_bytes,
            )
        }
    }

    /// Worker side: keeps the mapping for the rest of the process and hands out the
    /// control block and the arena for the worker's engine.
    pub fn into_worker_parts(self) -> (&'static ControlBlock, &'static mut [u8]) {
        let region: &'static Self = Box::leak(Box::new(self));
        // SAFETY: the mapping is never unmapped (leaked above), so 'static holds. This is
        // the worker's only reference to the arena. The parent writes the arena only
        // between frames, while the worker is blocked waiting for the next request and
        // no worker code is using the slice; the request/done SeqCst hand-over orders
        // those writes before the worker's next reads.
        let arena = unsafe {
            std::slice::from_raw_parts_mut(
                region.map.as_mut_ptr().add(CONTROL_BYTES),
                region.arena_bytes,
            )
        };
        (region.control(), arena)
    }
}
