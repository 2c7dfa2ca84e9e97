//! Per-layer pruning rules, read from a TOML file that maps conv node names to a ratio,
//! to `"skip"`, or to a table with a ratio and a channel multiple:
//!
//! ```toml
//! "stem.conv" = "skip"                          # keep every channel of this group
//! "b0.expand" = 0.25                            # remove a quarter of its channels
//! "fpn.lat4"  = { ratio = 0.5, multiple_of = 8 } # keep a multiple of 8 channels
//! "b1.expand" = { multiple_of = 4 }             # the global --ratio, multiple of 4
//! ```
//!
//! A rule applies to the whole channel group its conv writes: convs whose outputs are
//! added or multiplied together share one kept set, so one entry covers them all.

use std::collections::BTreeMap;

use toml::{Table, Value};

use super::PruneError;

/// What to do with one channel group.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LayerRule {
    /// Keep every channel.
    Skip,
    /// Remove channels.
    Prune {
        /// Fraction of channels to remove; `None` uses the global ratio.
        ratio: Option<f64>,
        /// The kept count is rounded up to a multiple of this (at least 1).
        multiple_of: usize,
    },
}

/// Rules by conv node name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PerLayer {
    /// Conv node name → rule.
    pub rules: BTreeMap<String, LayerRule>,
}

impl PerLayer {
    /// Parses the TOML text of a per-layer file.
    pub fn from_toml(text: &str) -> Result<Self, PruneError> {
        let table: Table = text
            .parse()
            .map_err(|e| PruneError::PerLayer(format!("not valid TOML: {e}")))?;
        let mut rules = BTreeMap::new();
        for (name, value) in &table {
            rules.insert(name.clone(), parse_rule(name, value)?);
        }
        Ok(Self { rules })
    }
}

fn bad_entry(name: &str) -> PruneError {
    PruneError::PerLayer(format!(
        "entry `{name}` must be a ratio (0.5), \"skip\", or {{ ratio = 0.5, multiple_of = 8 }}"
    ))
}

fn ratio_of(name: &str, value: &Value) -> Result<f64, PruneError> {
    let ratio = match value {
        Value::Float(f) => *f,
        Value::Integer(i) => *i as f64,
        _ => return Err(bad_entry(name)),
    };
    if !(0.0..1.0).contains(&ratio) {
        return Err(PruneError::BadRatio {
            ratio,
            what: format!("per-layer entry `{name}`"),
        });
    }
    Ok(ratio)
}

fn parse_rule(name: &str, value: &Value) -> Result<LayerRule, PruneError> {
    let fields = match value {
        Value::String(s) if s == "skip" => return Ok(LayerRule::Skip),
        Value::Table(t) => t,
        Value::Float(_) | Value::Integer(_) => {
            return Ok(LayerRule::Prune {
                ratio: Some(ratio_of(name, value)?),
                multiple_of: 1,
            });
        }
        _ => return Err(bad_entry(name)),
    };
    let mut ratio = None;
    let mut multiple_of = 1;
    for (key, value) in fields {
        match key.as_str() {
            "ratio" => ratio = Some(ratio_of(name, value)?),
            "multiple_of" => {
                multiple_of = value
                    .as_integer()
                    .and_then(|m| usize::try_from(m).ok())
                    .filter(|&m| m >= 1)
                    .ok_or_else(|| {
                        PruneError::PerLayer(format!(
                            "entry `{name}`: multiple_of must be a whole number of at least 1"
                        ))
                    })?;
            }
            other => {
                return Err(PruneError::PerLayer(format!(
                    "entry `{name}`: unknown key `{other}` (ratio, multiple_of)"
                )));
            }
        }
    }
    Ok(LayerRule::Prune { ratio, multiple_of })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses() {
        let rules = PerLayer::from_toml(
            r#"
            "a" = "skip"
            "b" = 0.25
            "c" = { ratio = 0.5, multiple_of = 8 }
            "d" = { multiple_of = 4 }
            "#,
        )
        .expect("parses");
        assert_eq!(rules.rules["a"], LayerRule::Skip);
        assert_eq!(
            rules.rules["b"],
            LayerRule::Prune {
                ratio: Some(0.25),
                multiple_of: 1
            }
        );
        assert_eq!(
            rules.rules["c"],
            LayerRule::Prune {
                ratio: Some(0.5),
                multiple_of: 8
            }
        );
        assert_eq!(
            rules.rules["d"],
            LayerRule::Prune {
                ratio: None,
                multiple_of: 4
            }
        );
    }

    #[test]
    fn bad_entries_are_refused_with_the_entry_named() {
        for (text, needle) in [
            ("a = 1.5", "per-layer entry `a`"),
            ("a = \"drop\"", "entry `a` must be"),
            ("a = { ratio = 0.5, keep = 3 }", "unknown key `keep`"),
            ("a = { multiple_of = 0 }", "multiple_of must be"),
            ("a = [", "not valid TOML"),
        ] {
            let err = PerLayer::from_toml(text).expect_err(text).to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
