//! A global allocator that counts allocations, to prove a code path allocates nothing.
//!
//! Install it in a test binary with
//! `#[global_allocator] static ALLOC: CountingAlloc = CountingAlloc;`
//! and compare [`CountingAlloc::allocations`] before and after the path under test.
//!
//! Counts are per thread: the test harness runs tests (and its own bookkeeping) on
//! other threads at the same time, and their allocations must not be charged to the
//! path under test.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    // `const` initialisation with no destructor: reading it never allocates, so the
    // allocator cannot recurse into itself.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

/// Wraps the system allocator, counting every allocation and reallocation.
pub struct CountingAlloc;

impl CountingAlloc {
    /// Allocations (including reallocations) made so far by the calling thread.
    pub fn allocations(&self) -> usize {
        ALLOCATIONS.with(Cell::get)
    }
}

fn count() {
    // `try_with`: during thread teardown the slot may be gone; those allocations are
    // not on any path under test.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so
// `System`'s guarantees hold; counting touches only a thread-local `Cell`, never the
// memory handed out.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract for `layout`.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (through us) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: `ptr` was allocated by `System` (through us) with `layout`, and the
        // caller upholds `realloc`'s contract for `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
