//! Scenario files: `Scenario::parse` on arbitrary text.
//!
//! Contract: a refusal is a `ScenarioError` that names a place inside the text
//! (`file:line:column`, and its message leads with it); an accepted scenario holds
//! what the checks promise: tasks on declared accelerators, unique names, a positive
//! period, a deadline within it and a given budget within the deadline.
#![no_main]

use std::collections::HashSet;
use std::path::Path;

use cadence_host::scenario::{Budget, Scenario};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzzed.toml");
    match Scenario::parse(path, text) {
        Err(error) => {
            let at = error
                .location()
                .unwrap_or_else(|| panic!("a refused text names its place: {error:?}"));
            assert_eq!(at.file, path);
            let lines = text.split('\n').count();
            assert!(
                (1..=lines).contains(&at.line) && at.column >= 1,
                "{at} is inside the text ({lines} lines): {error:?}"
            );
            assert!(error.to_string().starts_with(&format!("{at}: ")), "{error}");
        }
        Ok(scenario) => {
            assert!(!scenario.tasks().is_empty());
            let mut names = HashSet::new();
            for accelerator in scenario.accelerators() {
                assert!(names.insert(("accelerator", accelerator.name.as_str())));
            }
            for task in scenario.tasks() {
                assert!(names.insert(("task", task.name.as_str())), "{}", task.name);
                assert!(task.accelerator < scenario.accelerators().len());
                assert!(task.period_ns > 0 && task.deadline_ns <= task.period_ns);
                if let Budget::Given(budget_ns) = task.budget {
                    assert!(budget_ns <= task.deadline_ns, "{}", task.name);
                }
            }
        }
    }
});
