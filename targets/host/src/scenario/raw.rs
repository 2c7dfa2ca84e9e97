//! The scenario file as TOML spells it, before any check: every value keeps its span so
//! an error can name the line it came from.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScenario {
    #[serde(default)]
    pub accelerator: Vec<Spanned<RawAccelerator>>,
    #[serde(default)]
    pub task: Vec<Spanned<RawTask>>,
}

/// One `[[accelerator]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccelerator {
    pub name: Spanned<String>,
    pub preemptive: Option<Spanned<bool>>,
}

/// One `[[task]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTask {
    pub name: Spanned<String>,
    pub accelerator: Spanned<String>,
    pub period_ms: Spanned<f64>,
    pub deadline_ms: Option<Spanned<f64>>,
    pub budget_ms: Spanned<RawBudget>,
    pub priority: Option<Spanned<u8>>,
    pub release_jitter_ms: Option<Spanned<f64>>,
    pub overrun: Option<Spanned<String>>,
    pub fallback_budget_ms: Option<Spanned<RawBudget>>,
    pub package: Option<Spanned<String>>,
    pub pfn_package: Option<Spanned<String>>,
    pub sensor: Option<Spanned<String>>,
    pub sensor_data: Option<Spanned<String>>,
    pub backend: Option<Spanned<String>>,
    pub isolation: Option<Spanned<RawIsolation>>,
}

/// Where a task's models run: `"none"` or `"process"`.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawIsolation {
    None,
    Process,
}

/// A budget: milliseconds, or the word `"measure"`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum RawBudget {
    Ms(f64),
    Measure,
}

impl<'de> Deserialize<'de> for RawBudget {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BudgetVisitor;

        impl Visitor<'_> for BudgetVisitor {
            type Value = RawBudget;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of milliseconds or \"measure\"")
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawBudget, E> {
                Ok(RawBudget::Ms(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawBudget, E> {
                Ok(RawBudget::Ms(v as f64))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawBudget, E> {
                Ok(RawBudget::Ms(v as f64))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawBudget, E> {
                if v == "measure" {
                    Ok(RawBudget::Measure)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
        }

        deserializer.deserialize_any(BudgetVisitor)
    }
}
