//! `backend = "cuda"` in scenarios: the GPU is a non-preemptive accelerator of its own,
//! and on a machine without CUDA the task fails at start with the driver error.

use std::path::Path;

use cadence_hal::BackendKind;
use cadence_host::scenario::{Scenario, ScenarioError};

fn scenario(accelerators: &str, tasks: &str) -> Result<Scenario, ScenarioError> {
    Scenario::parse(Path::new("gpu.toml"), &format!("{accelerators}\n{tasks}"))
}

const GPU: &str = "[[accelerator]]\nname = \"gpu0\"\n";
const CPU: &str = "[[accelerator]]\nname = \"cpu0\"\n";

fn task(name: &str, accelerator: &str, backend: &str) -> String {
    format!(
        "[[task]]\nname = \"{name}\"\naccelerator = \"{accelerator}\"\nperiod_ms = 50\nbudget_ms = 1\nbackend = \"{backend}\"\n"
    )
}

#[test]
fn a_cuda_task_on_its_own_non_preemptive_accelerator_is_accepted() {
    let s = scenario(
        &format!("{GPU}{CPU}"),
        &format!(
            "{}{}",
            task("gpu_job", "gpu0", "cuda"),
            task("cpu_job", "cpu0", "cpu")
        ),
    )
    .unwrap();
    assert_eq!(s.tasks()[0].backend, BackendKind::Cuda);
    assert!(!s.accelerators()[s.tasks()[0].accelerator].preemptive);
}

#[test]
fn a_cuda_task_on_a_preemptive_or_shared_accelerator_is_refused() {
    let preemptive = scenario(
        "[[accelerator]]\nname = \"gpu0\"\npreemptive = true\n",
        &task("gpu_job", "gpu0", "cuda"),
    );
    let err = preemptive.unwrap_err();
    assert!(matches!(err, ScenarioError::GpuAccelerator { .. }), "{err}");
    assert!(err.to_string().contains("declared preemptive"), "{err}");

    let shared = scenario(
        GPU,
        &format!(
            "{}{}",
            task("gpu_job", "gpu0", "cuda"),
            task("cpu_job", "gpu0", "cpu")
        ),
    );
    let err = shared.unwrap_err();
    assert!(
        err.to_string()
            .contains("also runs task `cpu_job` on backend `cpu`"),
        "{err}"
    );
    // The error points at the cuda task (its `name` line).
    assert_eq!(err.location().map(|at| at.line), Some(5));
}

/// Without a GPU (this machine, CI) the task cannot start, and says why: the driver
/// is missing (built with `cuda`), or the feature to rebuild with.
#[test]
fn a_cuda_task_fails_at_start_without_a_driver() {
    let s = scenario(GPU, &task("gpu_job", "gpu0", "cuda")).unwrap();
    let err = match s.load_runner(0, 1_000_000) {
        Ok(_) => {
            // Only a machine with a working driver and device gets here.
            #[cfg(feature = "cuda")]
            {
                assert!(cadence_hal::cuda::probe(0).is_ok());
                return;
            }
            #[cfg(not(feature = "cuda"))]
            panic!("a cuda task started in a build without the cuda feature");
        }
        Err(err) => err,
    };
    assert!(
        matches!(err, ScenarioError::BackendUnavailable { .. }),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("task `gpu_job`: backend `cuda` cannot start"),
        "{message}"
    );
    #[cfg(feature = "cuda")]
    {
        let probe = cadence_hal::cuda::probe(0).unwrap_err();
        assert!(message.contains(&probe.to_string()), "{message}");
        if probe == cadence_hal::cuda::CudaError::NoDriver {
            assert!(
                message.contains("no CUDA driver") && message.contains("--backend cpu"),
                "{message}"
            );
        }
    }
    #[cfg(not(feature = "cuda"))]
    assert!(
        message.contains("rebuild with `--features cuda`"),
        "{message}"
    );
}

/// A backend name is parsed into the registry's kinds; a reference backend (tract)
/// or an unknown name is refused where the file gives it, listing the task backends.
#[test]
fn a_task_backend_that_is_no_frame_path_is_refused_where_it_is_given() {
    for name in ["tract", "npu"] {
        let err = scenario(GPU, &task("job", "gpu0", name)).unwrap_err();
        assert!(matches!(err, ScenarioError::UnknownBackend { .. }), "{err}");
        let message = err.to_string();
        assert!(
            message.starts_with("gpu.toml:9:11: task `job`: backend")
                && message.contains(&format!("`{name}`"))
                && message.ends_with("the backends are: cpu, cuda"),
            "{message}"
        );
    }
}
