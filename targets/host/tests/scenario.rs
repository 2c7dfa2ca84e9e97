//! Scenario files: every bad file gives its own error at the line that is wrong, paths
//! resolve against the current directory, measured budgets replace "measure".

mod common;
mod workspace;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use cadence_host::scenario::{Budget, MeasureConfig, Scenario, ScenarioError};

fn enter() -> &'static Path {
    workspace::enter("host", &common::repo(), |stem| common::packages().get(stem))
}

/// One run, no warm-up: measuring only has to work here, not be accurate.
const QUICK: MeasureConfig = MeasureConfig {
    warmup: 0,
    runs: 1,
    margin: 1.2,
    remeasure: false,
};

/// Everything a tool does with a scenario before running it: load, measure, analyse,
/// check for the host.
fn refusal(path: &Path) -> Option<ScenarioError> {
    let plan = Scenario::load(path).and_then(|s| s.plan(&QUICK));
    plan.and_then(|p| p.check_schedulable().and(p.check_host()))
        .err()
}

/// The variant a fixture's first line names (`ScenarioError::Name`) and the line marked
/// `# <- here`.
fn expectation(path: &Path) -> (String, usize) {
    let text = std::fs::read_to_string(path).expect("reading a fixture");
    let variant = text
        .lines()
        .next()
        .and_then(|l| l.split("ScenarioError::").nth(1))
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("{} names no variant on its first line", path.display()))
        .to_owned();
    let line = text
        .lines()
        .position(|l| l.contains("# <- here"))
        .unwrap_or_else(|| panic!("{} marks no line", path.display()))
        + 1;
    (variant, line)
}

#[test]
fn every_bad_scenario_gives_its_own_error_at_its_line() {
    enter();
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir("scenarios/bad")
        .expect("the fixtures")
        .map(|e| e.expect("a fixture").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    fixtures.sort();
    let mut variants = BTreeSet::new();
    for path in &fixtures {
        let (variant, line) = expectation(path);
        let err = refusal(path).unwrap_or_else(|| panic!("{} was accepted", path.display()));
        let debug = format!("{err:?}");
        assert!(
            debug.starts_with(&format!("{variant} ")),
            "{}: expected {variant}, got {debug}",
            path.display()
        );
        let at = err.location().expect("a bad file names its place");
        assert_eq!(at.line, line, "{}: {err}", path.display());
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("{}:{line}:", path.display())),
            "the message leads with file:line: {message}"
        );
        variants.insert(variant);
    }
    // Two fixtures each for duplicate names (task, accelerator) and bad times (period,
    // budget); every other fixture shows a variant of its own.
    assert_eq!(variants.len(), fixtures.len() - 2, "{variants:?}");
    assert!(variants.len() >= 30, "{variants:?}");
}

#[test]
fn an_unreadable_file_is_named() {
    let err = Scenario::load(Path::new("no/such/scenario.toml")).unwrap_err();
    assert!(matches!(err, ScenarioError::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("no/such/scenario.toml"), "{err}");
}

#[test]
fn package_paths_resolve_against_the_current_directory() {
    let dir = enter();
    let highway = Scenario::load(Path::new("scenarios/highway.toml")).expect("highway loads");
    let camera = &highway.tasks()[0];
    assert_eq!(
        camera.packages,
        [PathBuf::from("models/camera/camera_det.cpk")]
    );
    assert!(dir.join(&camera.packages[0]).is_file());
    // The same file read from elsewhere: its relative package paths name nothing there.
    let text = std::fs::read_to_string("scenarios/highway.toml").expect("reading highway");
    let elsewhere = tempfile::tempdir().expect("a temporary folder");
    let copy = elsewhere.path().join("highway.toml");
    std::fs::write(&copy, text).expect("copying highway");
    let nested = dir.join("scenarios");
    assert!(
        Scenario::load(&copy).is_ok(),
        "the current directory, not the file's, counts"
    );
    assert!(nested.join("highway.toml").is_file());
    let lidar = &highway.tasks()[1];
    assert_eq!(
        lidar.packages,
        [
            PathBuf::from("models/lidar/pfn.cpk"),
            PathBuf::from("models/lidar/backbone.cpk")
        ],
        "the PFN runs first"
    );
}

#[test]
fn measured_budgets_replace_measure_and_are_reported() {
    enter();
    let text = std::fs::read_to_string("scenarios/highway.toml")
        .expect("reading highway")
        .replace("budget_ms = 24.0", "budget_ms = \"measure\"")
        .replace("period_ms = 33.333          # 30 Hz", "period_ms = 1000.0")
        .replace("deadline_ms = 33.333", "deadline_ms = 1000.0")
        .replace("fallback_budget_ms = 14.4\n", "");
    let scenario = Scenario::parse(Path::new("measured.toml"), &text).expect("parses");
    assert_eq!(scenario.tasks()[0].budget, Budget::Measure);
    let plan = scenario.plan(&QUICK).expect("measures");
    assert!(plan.is_measured(0, true) && plan.is_measured(0, false));
    assert!(!plan.is_measured(1, true), "lidar's budget is given");
    let camera = plan
        .measured
        .iter()
        .find(|m| m.primary)
        .expect("camera measured");
    assert_eq!(plan.set.task(0).budget_ns, camera.budget_ns);
    assert_eq!(
        camera.budget_ns,
        (camera.max_ns as f64 * QUICK.margin).ceil() as u64
    );
    assert!(camera.budget_ns > 0);
}
