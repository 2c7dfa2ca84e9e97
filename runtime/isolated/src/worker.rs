//! The worker side: what `cadence-worker` runs. It maps the parent's region, loads the
//! package into an [`Engine`] on the CPU backend with the region's arena, and serves
//! frames until it is killed (with the parent, at the latest: see the binary).

use std::path::Path;

use cadence_hal::cpu::CpuBackend;
use cadence_runtime::Engine;
use cadence_runtime::package::AlignedBytes;

use crate::error::{PackageFileError, WorkerError};
use crate::protocol::{
    ControlBlock, MAGIC, Outcome, WorkerState, publish, sleep_until_changed, spin_until_changed,
};
use crate::shared::SharedRegion;

/// Maps the region at `region_path`, loads the package at `package_path`, reports
/// ready, then serves frames for the rest of the process. Returns only if start-up
/// fails; the error is also in the control block when the region could be mapped.
pub fn serve(package_path: &Path, region_path: &Path) -> Result<(), WorkerError> {
    let region = SharedRegion::open(region_path).map_err(|reason| WorkerError::Region {
        path: region_path.to_path_buf(),
        reason,
    })?;
    let (control, arena) = region.into_worker_parts();
    if control.magic.load(std::sync::atomic::Ordering::SeqCst) != MAGIC {
        return Err(WorkerError::Protocol);
    }
    let engine = load(package_path, control, arena).inspect_err(|e| {
        control.write_message(e);
        control.set_state(WorkerState::LoadFailed);
    })?;
    control.set_state(WorkerState::Ready);
    serve_frames(control, engine)
}

fn load(
    package_path: &Path,
    control: &ControlBlock,
    arena: &'static mut [u8],
) -> Result<Engine<'static, 'static, CpuBackend>, WorkerError> {
    let bytes = PackageFileError::read(package_path)?;
    // The engine borrows the package for the rest of the process.
    let bytes: &'static AlignedBytes = Box::leak(Box::new(bytes));
    let package = PackageFileError::parse(package_path, bytes)?;
    let region = control
        .arena_bytes
        .load(std::sync::atomic::Ordering::SeqCst) as usize;
    if package.arena_bytes() != region || arena.len() != region {
        return Err(WorkerError::ArenaMismatch {
            package: package.arena_bytes(),
            region,
        });
    }
    Engine::load(&package, CpuBackend, arena).map_err(WorkerError::Engine)
}

fn serve_frames(
    control: &ControlBlock,
    mut engine: Engine<'static, 'static, CpuBackend>,
) -> Result<(), WorkerError> {
    let spin = control.spin();
    // The parent resets the sequence to 0 before spawning; it may publish request 1 as
    // soon as it sees Ready, before this line runs, so do not read the start point.
    let mut last = 0;
    loop {
        let request = match spin_until_changed(&control.request.0, last, spin) {
            Some(request) => request,
            None => loop {
                let woken =
                    sleep_until_changed(&control.request.0, last, &control.worker_sleeping, None);
                if let Some(request) = woken {
                    break request;
                }
            },
        };
        let outcome = match engine.run() {
            Ok(()) => Outcome::Completed,
            Err(e) => {
                control.write_message(&e);
                Outcome::Failed
            }
        };
        control
            .outcome
            .store(outcome as u32, std::sync::atomic::Ordering::SeqCst);
        publish(&control.done.0, request, &control.parent_sleeping.0);
        last = request;
    }
}
