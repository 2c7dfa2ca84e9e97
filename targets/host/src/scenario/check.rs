//! The checks of a scenario file, value by value, each refusing with the line it
//! concerns.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

use cadence_hal::BackendKind;
use cadence_runtime::package::{AlignedBytes, ModelFamily, Package};
use cadence_scheduler::task::{MAX_ACCELERATORS, MAX_TASKS, NAME_LEN};

use super::raw::{RawBudget, RawIsolation, RawScenario, RawTask};
use super::{AcceleratorEntry, Budget, Location, Overrun, ScenarioError, TaskEntry, ns_to_ms};
use crate::backend::task_backends;
use crate::pipeline::{Isolation, Sensor};

/// The values of `sensor`.
const SENSORS: [&str; 3] = ["camera", "lidar", "none"];

/// Checks scenario `text` (`path` names it in errors): its accelerators and tasks.
pub(super) fn parse(
    path: &Path,
    text: &str,
) -> Result<(Vec<AcceleratorEntry>, Vec<TaskEntry>), ScenarioError> {
    let lines = Lines::new(path, text);
    if let Err(e) = text.parse::<toml::Table>() {
        return Err(ScenarioError::Syntax {
            at: lines.at(e.span().unwrap_or(0..0)),
            message: e.message().to_owned(),
        });
    }
    let raw: RawScenario = toml::from_str(text).map_err(|e| lines.serde_error(&e))?;
    let accelerators = accelerators(&lines, &raw)?;
    let mut tasks = Vec::with_capacity(raw.task.len());
    for (i, t) in raw.task.iter().enumerate() {
        let name = t.get_ref().name.get_ref();
        if let Some(first) = raw.task[..i]
            .iter()
            .find(|u| u.get_ref().name.get_ref() == name)
        {
            return Err(ScenarioError::DuplicateName {
                at: lines.at(t.get_ref().name.span()),
                kind: "task",
                name: name.clone(),
                first_line: lines.at(first.get_ref().name.span()).line,
            });
        }
        if i == MAX_TASKS {
            return Err(ScenarioError::TooManyTasks {
                at: lines.at(t.get_ref().name.span()),
                task: name.clone(),
            });
        }
        tasks.push(
            TaskChecker {
                lines: &lines,
                raw: t.get_ref(),
                accelerators: &accelerators,
            }
            .check()?,
        );
    }
    if tasks.is_empty() {
        return Err(ScenarioError::NoTasks { at: lines.at(0..0) });
    }
    check_gpu_accelerators(&accelerators, &tasks)?;
    let given = tasks.iter().find(|t| t.priority.is_some());
    if let (Some(given), Some(missing)) = (given, tasks.iter().find(|t| t.priority.is_none())) {
        return Err(ScenarioError::MixedPriorities {
            at: missing.at.clone(),
            task: missing.name.clone(),
            other: given.name.clone(),
        });
    }
    Ok((accelerators, tasks))
}

/// A `cuda` task needs an accelerator of its own (the GPU's worker) that is not
/// preemptive: a kernel runs to completion, and the analysis must count it that way.
fn check_gpu_accelerators(
    accelerators: &[AcceleratorEntry],
    tasks: &[TaskEntry],
) -> Result<(), ScenarioError> {
    for task in tasks.iter().filter(|t| t.backend == BackendKind::Cuda) {
        let accelerator = &accelerators[task.accelerator];
        let reason = if accelerator.preemptive {
            Some(format!(
                "accelerator `{}` is declared preemptive",
                accelerator.name
            ))
        } else {
            tasks
                .iter()
                .find(|u| u.accelerator == task.accelerator && u.backend != BackendKind::Cuda)
                .map(|u| {
                    format!(
                        "accelerator `{}` also runs task `{}` on backend `{}`",
                        accelerator.name, u.name, u.backend
                    )
                })
        };
        if let Some(reason) = reason {
            return Err(ScenarioError::GpuAccelerator {
                at: task.at.clone(),
                task: task.name.clone(),
                reason,
            });
        }
    }
    Ok(())
}

/// Byte offsets to `file:line:column`.
struct Lines<'a> {
    path: &'a Path,
    text: &'a str,
}

impl<'a> Lines<'a> {
    fn new(path: &'a Path, text: &'a str) -> Self {
        Self { path, text }
    }

    fn at(&self, span: Range<usize>) -> Location {
        let start = span.start.min(self.text.len());
        let before = &self.text[..self.text.floor_char_boundary(start)];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Location {
            file: self.path.to_owned(),
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }

    /// Sorts a deserialisation error into its variant by serde's standard wording.
    fn serde_error(&self, e: &toml::de::Error) -> ScenarioError {
        let at = self.at(e.span().unwrap_or(0..0));
        let message = e.message().to_owned();
        let quoted = |prefix: &str| {
            message
                .strip_prefix(prefix)
                .and_then(|rest| rest.split('`').next())
                .map(str::to_owned)
        };
        if let Some(key) = quoted("unknown field `") {
            ScenarioError::UnknownKey { at, key, message }
        } else if let Some(key) = quoted("missing field `") {
            ScenarioError::MissingKey { at, key }
        } else {
            ScenarioError::BadValue { at, message }
        }
    }
}

fn accelerators(
    lines: &Lines<'_>,
    raw: &RawScenario,
) -> Result<Vec<AcceleratorEntry>, ScenarioError> {
    let mut out: Vec<AcceleratorEntry> = Vec::with_capacity(raw.accelerator.len());
    for a in &raw.accelerator {
        let a = a.get_ref();
        let at = lines.at(a.name.span());
        let name = a.name.get_ref().clone();
        check_name(&at, "accelerator", &name)?;
        if let Some(first) = out.iter().find(|b| b.name == name) {
            return Err(ScenarioError::DuplicateName {
                at,
                kind: "accelerator",
                name,
                first_line: first.at.line,
            });
        }
        if out.len() == MAX_ACCELERATORS {
            return Err(ScenarioError::TooManyAccelerators {
                at,
                accelerator: name,
            });
        }
        out.push(AcceleratorEntry {
            name,
            preemptive: a.preemptive.as_ref().is_some_and(|p| *p.get_ref()),
            at,
        });
    }
    Ok(out)
}

fn check_name(at: &Location, kind: &'static str, name: &str) -> Result<(), ScenarioError> {
    if name.is_empty() || name.len() > NAME_LEN {
        return Err(ScenarioError::BadName {
            at: at.clone(),
            kind,
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Milliseconds to nanoseconds: `None` unless finite, in range and (when `positive`)
/// at least one nanosecond.
fn ms_to_ns(ms: f64, positive: bool) -> Option<u64> {
    let ns = (ms * 1e6).round();
    let ok = ms.is_finite() && ns >= 0.0 && ns < u64::MAX as f64 && (!positive || ns >= 1.0);
    ok.then_some(ns as u64)
}

/// Checks one `[[task]]`.
struct TaskChecker<'a> {
    lines: &'a Lines<'a>,
    raw: &'a RawTask,
    accelerators: &'a [AcceleratorEntry],
}

impl TaskChecker<'_> {
    fn name(&self) -> String {
        self.raw.name.get_ref().clone()
    }

    fn at<T>(&self, value: &Spanned<T>) -> Location {
        self.lines.at(value.span())
    }

    fn time(
        &self,
        key: &'static str,
        value: &Spanned<f64>,
        positive: bool,
    ) -> Result<u64, ScenarioError> {
        ms_to_ns(*value.get_ref(), positive).ok_or_else(|| ScenarioError::BadTime {
            at: self.at(value),
            task: self.name(),
            key,
            value: *value.get_ref(),
            requirement: if positive {
                "a positive, finite"
            } else {
                "a non-negative, finite"
            },
        })
    }

    fn budget(
        &self,
        key: &'static str,
        value: &Spanned<RawBudget>,
        deadline_ns: u64,
    ) -> Result<Budget, ScenarioError> {
        match *value.get_ref() {
            RawBudget::Measure => Ok(Budget::Measure),
            RawBudget::Ms(ms) => {
                let ns = self.time(key, &Spanned::new(value.span(), ms), true)?;
                if ns > deadline_ns {
                    return Err(ScenarioError::BudgetAfterDeadline {
                        at: self.at(value),
                        task: self.name(),
                        key,
                        budget_ms: ms,
                        deadline_ms: ns_to_ms(deadline_ns),
                    });
                }
                Ok(Budget::Given(ns))
            }
        }
    }

    fn check(&self) -> Result<TaskEntry, ScenarioError> {
        let raw = self.raw;
        let at = self.at(&raw.name);
        let name = self.name();
        check_name(&at, "task", &name)?;
        let accelerator = self
            .accelerators
            .iter()
            .position(|a| &a.name == raw.accelerator.get_ref())
            .ok_or_else(|| ScenarioError::UndeclaredAccelerator {
                at: self.at(&raw.accelerator),
                task: name.clone(),
                accelerator: raw.accelerator.get_ref().clone(),
                declared: self
                    .accelerators
                    .iter()
                    .map(|a| format!("`{}`", a.name))
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let period_ns = self.time("period_ms", &raw.period_ms, true)?;
        let deadline_ns = match &raw.deadline_ms {
            None => period_ns,
            Some(d) => {
                let ns = self.time("deadline_ms", d, true)?;
                if ns > period_ns {
                    return Err(ScenarioError::DeadlineAfterPeriod {
                        at: self.at(d),
                        task: name,
                        deadline_ms: *d.get_ref(),
                        period_ms: *raw.period_ms.get_ref(),
                    });
                }
                ns
            }
        };
        let budget = self.budget("budget_ms", &raw.budget_ms, deadline_ns)?;
        let release_jitter_ns = match &raw.release_jitter_ms {
            None => 0,
            Some(j) => self.time("release_jitter_ms", j, false)?,
        };
        let backend = match &raw.backend {
            None => BackendKind::default(),
            Some(b) => match b.get_ref().parse() {
                Ok(kind) if task_backends().any(|k| k == kind) => kind,
                _ => {
                    let known: Vec<&str> = task_backends().map(BackendKind::name).collect();
                    return Err(ScenarioError::UnknownBackend {
                        at: self.at(b),
                        task: name,
                        backend: b.get_ref().clone(),
                        known: known.join(", "),
                    });
                }
            },
        };
        let (packages, sensor) = self.packages()?;
        if packages.is_empty() {
            self.refuse_key(
                &raw.isolation,
                "isolation",
                "a task without `package` runs no model to isolate",
            )?;
        }
        if budget == Budget::Measure && packages.is_empty() {
            return Err(ScenarioError::MeasureWithoutPackage {
                at: self.at(&raw.budget_ms),
                task: name,
            });
        }
        let overrun = self.overrun(&packages, budget, deadline_ns)?;
        Ok(TaskEntry {
            name,
            at,
            accelerator,
            period_ns,
            deadline_ns,
            budget,
            budget_at: self.at(&raw.budget_ms),
            priority: raw.priority.as_ref().map(|p| *p.get_ref()),
            release_jitter_ns,
            overrun,
            packages,
            sensor,
            backend,
            isolation: match raw.isolation.as_ref().map(|i| *i.get_ref()) {
                None | Some(RawIsolation::None) => Isolation::None,
                Some(RawIsolation::Process) => Isolation::Process,
            },
        })
    }

    fn overrun(
        &self,
        packages: &[PathBuf],
        budget: Budget,
        deadline_ns: u64,
    ) -> Result<Overrun, ScenarioError> {
        let raw = self.raw;
        let Some(value) = &raw.overrun else {
            return self.no_fallback_budget(Overrun::SkipNext);
        };
        let bad = || ScenarioError::BadOverrun {
            at: self.at(value),
            task: self.name(),
            value: value.get_ref().clone(),
        };
        let fallback_package = match value.get_ref().as_str() {
            "skip-next" => return self.no_fallback_budget(Overrun::SkipNext),
            "abort" => return self.no_fallback_budget(Overrun::Abort),
            "degrade" if packages.is_empty() => None,
            "degrade" => {
                return Err(ScenarioError::DegradeWithoutFallbackPackage {
                    at: self.at(value),
                    task: self.name(),
                });
            }
            other => match other.strip_prefix("degrade:") {
                Some(path) if !path.trim().is_empty() && !packages.is_empty() => {
                    Some(PathBuf::from(path.trim()))
                }
                _ => return Err(bad()),
            },
        };
        let (fallback_budget, budget_at) = match (&raw.fallback_budget_ms, budget) {
            (Some(b), _) => (
                self.budget("fallback_budget_ms", b, deadline_ns)?,
                self.at(b),
            ),
            (None, Budget::Measure) => (Budget::Measure, self.at(value)),
            (None, Budget::Given(_)) => {
                return Err(ScenarioError::DegradeWithoutFallbackBudget {
                    at: self.at(value),
                    task: self.name(),
                });
            }
        };
        let mut chain = packages.to_vec();
        if let Some(path) = fallback_package {
            let replaced = chain
                .pop()
                .expect("degrade:<package> needs packages, checked above");
            let family = self.family(value, &replaced)?;
            let fallback_family = self.family(value, &path)?;
            self.expect_family(value, &path, fallback_family, family, "a fallback replaces the last package of the chain, so it must be of the same family")?;
            chain.push(path);
        }
        if fallback_budget == Budget::Measure && chain.is_empty() {
            return Err(ScenarioError::MeasureWithoutPackage {
                at: budget_at,
                task: self.name(),
            });
        }
        Ok(Overrun::Degrade {
            packages: chain,
            budget: fallback_budget,
            budget_at,
        })
    }

    fn no_fallback_budget(&self, overrun: Overrun) -> Result<Overrun, ScenarioError> {
        match &self.raw.fallback_budget_ms {
            None => Ok(overrun),
            Some(b) => Err(ScenarioError::UnexpectedKey {
                at: self.at(b),
                task: self.name(),
                key: "fallback_budget_ms",
                reason: "only the degrade policy runs a fallback; drop the key or set `overrun = \"degrade:...\"`",
            }),
        }
    }

    /// The package chain and the sensor feeding it.
    fn packages(&self) -> Result<(Vec<PathBuf>, Sensor), ScenarioError> {
        let raw = self.raw;
        let package = match &raw.package {
            None => None,
            Some(p) => {
                let path = PathBuf::from(p.get_ref());
                let family = self.family(p, &path)?;
                Some((p, path, family))
            }
        };
        let sensor: &'static str = match (&raw.sensor, &package) {
            (Some(s), _) => SENSORS
                .into_iter()
                .find(|kind| kind == s.get_ref())
                .ok_or_else(|| ScenarioError::BadSensor {
                    at: self.at(s),
                    task: self.name(),
                    value: s.get_ref().clone(),
                })?,
            (None, Some((_, _, ModelFamily::Camera))) => "camera",
            (None, Some((_, _, ModelFamily::LidarBackbone | ModelFamily::LidarPfn))) => "lidar",
            (None, _) => "none",
        };
        let sensor_at = raw
            .sensor
            .as_ref()
            .map_or_else(|| self.at(&raw.name), |s| self.at(s));
        let Some((package_key, path, family)) = package else {
            if sensor != "none" {
                return Err(ScenarioError::SensorWithoutPackage {
                    at: sensor_at,
                    task: self.name(),
                    sensor,
                });
            }
            self.refuse_key(
                &raw.pfn_package,
                "pfn_package",
                "a task without `package` runs no model",
            )?;
            self.refuse_key(
                &raw.sensor_data,
                "sensor_data",
                "a task without `package` reads no sensor",
            )?;
            return Ok((Vec::new(), Sensor::None));
        };
        let data = |default: &str| {
            let path = raw
                .sensor_data
                .as_ref()
                .map_or_else(|| PathBuf::from(default), |d| PathBuf::from(d.get_ref()));
            if path.exists() {
                Ok(path)
            } else {
                Err(ScenarioError::MissingSensorData {
                    at: raw
                        .sensor_data
                        .as_ref()
                        .map_or_else(|| sensor_at.clone(), |d| self.at(d)),
                    task: self.name(),
                    path,
                })
            }
        };
        match sensor {
            "camera" => {
                self.expect_family(
                    package_key,
                    &path,
                    family,
                    ModelFamily::Camera,
                    "a camera task runs a camera model",
                )?;
                self.refuse_key(
                    &raw.pfn_package,
                    "pfn_package",
                    "only a lidar task runs a pillar feature net",
                )?;
                Ok((
                    vec![path],
                    Sensor::Camera {
                        frames: data("models/data/camera")?,
                    },
                ))
            }
            "lidar" => {
                self.expect_family(
                    package_key,
                    &path,
                    family,
                    ModelFamily::LidarBackbone,
                    "a lidar task's `package` is its backbone (the pillar feature net goes in `pfn_package`)",
                )?;
                let pfn =
                    raw.pfn_package
                        .as_ref()
                        .ok_or_else(|| ScenarioError::LidarWithoutPfn {
                            at: self.at(&raw.name),
                            task: self.name(),
                        })?;
                let pfn_path = PathBuf::from(pfn.get_ref());
                let pfn_family = self.family(pfn, &pfn_path)?;
                self.expect_family(
                    pfn,
                    &pfn_path,
                    pfn_family,
                    ModelFamily::LidarPfn,
                    "`pfn_package` is a lidar pillar feature net",
                )?;
                Ok((
                    vec![pfn_path, path],
                    Sensor::Lidar {
                        sweeps: data("models/data/lidar")?,
                    },
                ))
            }
            _ if raw.sensor.is_some() => Err(ScenarioError::UnexpectedKey {
                at: self.at(package_key),
                task: self.name(),
                key: "package",
                reason: "a task with `sensor = \"none\"` has no input for a model; give it the sensor its model reads",
            }),
            _ => Err(ScenarioError::WrongFamily {
                at: self.at(package_key),
                task: self.name(),
                path,
                found: family.name(),
                needed: "a task's `package` is a camera model or a lidar backbone",
            }),
        }
    }

    fn refuse_key<T>(
        &self,
        value: &Option<Spanned<T>>,
        key: &'static str,
        reason: &'static str,
    ) -> Result<(), ScenarioError> {
        match value {
            None => Ok(()),
            Some(v) => Err(ScenarioError::UnexpectedKey {
                at: self.at(v),
                task: self.name(),
                key,
                reason,
            }),
        }
    }

    /// The family `path` (named by `key`) declares.
    fn family<T>(&self, key: &Spanned<T>, path: &Path) -> Result<ModelFamily, ScenarioError> {
        if !path.is_file() {
            return Err(ScenarioError::MissingPackage {
                at: self.at(key),
                task: self.name(),
                path: path.to_owned(),
                cwd: std::env::current_dir().unwrap_or_default(),
            });
        }
        let bad = |reason: String| ScenarioError::BadPackage {
            at: self.at(key),
            task: self.name(),
            path: path.to_owned(),
            reason,
        };
        let bytes = AlignedBytes::read(path).map_err(|e| bad(e.to_string()))?;
        let package = Package::parse(bytes.as_slice()).map_err(|e| bad(e.to_string()))?;
        Ok(package.metadata().family())
    }

    /// Checks that `path` (named by `key`), of family `found`, is the `expected` family
    /// its place needs (`needed` says why, in words).
    fn expect_family<T>(
        &self,
        key: &Spanned<T>,
        path: &Path,
        found: ModelFamily,
        expected: ModelFamily,
        needed: &'static str,
    ) -> Result<(), ScenarioError> {
        if found == expected {
            return Ok(());
        }
        Err(ScenarioError::WrongFamily {
            at: self.at(key),
            task: self.name(),
            path: path.to_owned(),
            found: found.name(),
            needed,
        })
    }
}
