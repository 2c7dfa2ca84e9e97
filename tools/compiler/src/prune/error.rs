//! Everything that can stop a prune, each with a message that says what to change.

use crate::error::CompileError;

use super::NotPruned;

/// Why a model could not be pruned.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// `--ratio` (or a per-layer ratio) is outside `[0, 1)`.
    #[error(
        "ratio {ratio} for {what} is out of range: give a fraction of channels to remove in [0, 1)"
    )]
    BadRatio {
        /// The ratio as given.
        ratio: f64,
        /// Where it came from (`--ratio`, or the per-layer entry).
        what: String,
    },
    /// The per-layer file is not valid TOML or has an entry of the wrong form.
    #[error("per-layer rules: {0}")]
    PerLayer(String),
    /// A per-layer entry names no conv that writes a channel group.
    #[error(
        "per-layer rules: `{name}` is not a conv whose output channels can be ranked (convs that start a channel group: {known})"
    )]
    UnknownLayer {
        /// The name in the file.
        name: String,
        /// The conv names that would be accepted, comma separated.
        known: String,
    },
    /// Two per-layer entries name convs of one channel group with different rules.
    #[error(
        "per-layer rules: `{first}` and `{second}` write one channel group (their channels must stay aligned) but have different rules; give them the same rule or one entry"
    )]
    ConflictingRules {
        /// One entry.
        first: String,
        /// The other.
        second: String,
    },
    /// tract could not load or analyse the model to prune.
    #[error("cannot analyse the model: {0}")]
    Import(CompileError),
    /// No channel group could be pruned.
    #[error("nothing to prune: {}", describe(.0))]
    NothingPrunable(Vec<NotPruned>),
    /// The pruned model failed validation: a pruner bug, reported as such.
    #[error("internal error: the pruned model is invalid ({0}); please report this with the model")]
    InvalidResult(String),
}

fn describe(not_pruned: &[NotPruned]) -> String {
    if not_pruned.is_empty() {
        return "the model has no convolution whose output channels could be removed".into();
    }
    let lines: Vec<String> = not_pruned
        .iter()
        .map(|n| format!("`{}` {}", n.layer, n.reason))
        .collect();
    format!("no channel group can be pruned: {}", lines.join("; "))
}
