//! Problem specs: what a model for a task takes and gives back (named tensors, element
//! types, shapes with symbolic dims), written in TOML before any model exists.
//!
//! ```toml
//! name = "camera-detector"
//!
//! [dims]
//! A = { value = 1500, description = "anchor boxes" }   # value: only for placeholders
//!
//! [[input]]
//! name = "image"
//! dtype = "f32"
//! shape = [1, 3, 320, 320]
//!
//! [[output]]
//! name = "boxes"
//! dtype = "f32"
//! shape = [1, "A", 4]                                   # every use of A must agree
//! ```
//!
//! A package implements a spec when it has exactly these inputs and outputs, in this
//! order, with these element types and ranks, the fixed dims equal, and each symbol
//! bound to one size everywhere it appears ([`check()`]). Packages that implement one spec
//! are interchangeable: a pipeline written against the spec runs any of them. A
//! placeholder package implementing a spec is built by [`crate::placeholder`].

pub mod check;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use cadence_hal::{DType, MAX_RANK};
use serde::Deserialize;
use serde::de::{self, Visitor};
use toml::Spanned;

pub use check::{Difference, Place, Role, check};

/// A problem spec, checked: every symbol used is declared, every name is unique.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProblemSpec {
    /// What the task is called (`camera-detector`).
    pub name: String,
    /// Free text for people.
    pub description: Option<String>,
    /// The symbolic dims, in name order.
    pub symbols: Vec<Symbol>,
    /// Inputs, in the order a package must declare them.
    pub inputs: Vec<TensorSpec>,
    /// Outputs, in the order a package must declare them.
    pub outputs: Vec<TensorSpec>,
}

/// A symbolic dim: a size left open by the spec, the same wherever it appears.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    /// The symbol as written in shapes (`A`).
    pub name: String,
    /// The size a placeholder is built with unless `--dim` says otherwise. Not checked
    /// against packages: any size is accepted if it is consistent.
    pub value: Option<usize>,
    /// Free text for people.
    pub description: Option<String>,
}

/// One input or output of a spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    /// The name callers use.
    pub name: String,
    /// The element type.
    pub dtype: DType,
    /// Dims, outermost first.
    pub shape: Vec<SpecDim>,
}

/// One dim of a spec's shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpecDim {
    /// A fixed size.
    Fixed(usize),
    /// A symbol declared in `[dims]`.
    Symbol(String),
}

impl fmt::Display for SpecDim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fixed(size) => write!(f, "{size}"),
            Self::Symbol(name) => f.write_str(name),
        }
    }
}

impl TensorSpec {
    /// The shape as written, e.g. `[1, A, 4]`.
    pub fn shape_string(&self) -> String {
        let dims: Vec<String> = self.shape.iter().map(ToString::to_string).collect();
        format!("[{}]", dims.join(", "))
    }
}

/// Why a spec file was refused: the file, the line and column, the field, and what is
/// wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {field}{}{message}", file.display(), if field.is_empty() { "" } else { ": " })]
pub struct SpecError {
    /// The spec file (`<memory>` when parsed from a string).
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The field, as a path (`output[1].shape[2]`); empty for a syntax error.
    pub field: String,
    /// What is wrong and what to write instead.
    pub message: String,
}

/// Why a spec file could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum SpecFileError {
    /// The file could not be read.
    #[error("cannot read `{}`: {reason}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: std::io::Error,
    },
    /// The file was read but is not a valid spec.
    #[error("{0}")]
    Invalid(#[from] SpecError),
}

impl ProblemSpec {
    /// Reads and checks the spec file at `path`.
    pub fn read(path: &Path) -> Result<Self, SpecFileError> {
        let text = std::fs::read_to_string(path).map_err(|reason| SpecFileError::Io {
            path: path.to_path_buf(),
            reason,
        })?;
        Ok(Self::parse(&text, path)?)
    }

    /// Parses and checks spec text; `file` names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Self, SpecError> {
        let located = Locator { text, file };
        let raw: RawSpec = toml::from_str(text).map_err(|e| {
            located.error(
                e.span().unwrap_or(0..0),
                "",
                e.message().trim_end().to_owned(),
            )
        })?;
        raw.check(&located)
    }

    /// The symbol called `name`.
    pub fn symbol(&self, name: &str) -> Option<&Symbol> {
        self.symbols.iter().find(|s| s.name == name)
    }
}

/// Turns byte spans into line and column for errors.
struct Locator<'a> {
    text: &'a str,
    file: &'a Path,
}

impl Locator<'_> {
    fn error(&self, span: Range<usize>, field: &str, message: String) -> SpecError {
        let before = &self.text[..span.start.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        SpecError {
            file: self.file.to_path_buf(),
            line,
            column,
            field: field.to_owned(),
            message,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    name: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    dims: BTreeMap<Spanned<String>, Spanned<RawSymbol>>,
    #[serde(default)]
    input: Vec<Spanned<RawTensor>>,
    #[serde(default)]
    output: Vec<Spanned<RawTensor>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSymbol {
    #[serde(default)]
    value: Option<Spanned<i64>>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTensor {
    name: Spanned<String>,
    dtype: Spanned<String>,
    shape: Spanned<Vec<Spanned<RawDim>>>,
}

/// A dim as written: an integer or a symbol's name.
enum RawDim {
    Size(i64),
    Symbol(String),
}

impl<'de> Deserialize<'de> for RawDim {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DimVisitor;
        impl Visitor<'_> for DimVisitor {
            type Value = RawDim;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size (a positive integer) or a symbol declared in [dims]")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawDim, E> {
                Ok(RawDim::Size(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawDim, E> {
                Ok(RawDim::Symbol(v.to_owned()))
            }
        }
        deserializer.deserialize_any(DimVisitor)
    }
}

fn dtype_named(name: &str) -> Option<DType> {
    [DType::F32, DType::U8, DType::I8, DType::I32, DType::I64]
        .into_iter()
        .find(|d| d.name() == name)
}

fn positive(value: i64) -> Option<usize> {
    usize::try_from(value)
        .ok()
        .filter(|&v| v > 0 && v <= u32::MAX as usize)
}

impl RawSpec {
    fn check(self, at: &Locator<'_>) -> Result<ProblemSpec, SpecError> {
        if self.name.get_ref().trim().is_empty() {
            return Err(at.error(self.name.span(), "name", "the spec needs a name".into()));
        }
        let mut symbols = Vec::with_capacity(self.dims.len());
        for (name, symbol) in &self.dims {
            let field = format!("dims.{}", name.get_ref());
            if !is_symbol(name.get_ref()) {
                return Err(at.error(
                    name.span(),
                    &field,
                    "a symbol is a letter or `_` followed by letters, digits or `_`".into(),
                ));
            }
            let symbol = symbol.get_ref();
            let value = match &symbol.value {
                Some(v) => Some(positive(*v.get_ref()).ok_or_else(|| {
                    at.error(
                        v.span(),
                        &format!("{field}.value"),
                        format!("{} is not a size: write a positive integer", v.get_ref()),
                    )
                })?),
                None => None,
            };
            symbols.push(Symbol {
                name: name.get_ref().clone(),
                value,
                description: symbol.description.clone(),
            });
        }
        let mut names = HashSet::new();
        let mut used = HashSet::new();
        let mut tensors = |raw: &[Spanned<RawTensor>], role: &str| {
            raw.iter()
                .enumerate()
                .map(|(index, tensor)| {
                    let field = format!("{role}[{index}]");
                    let spec = check_tensor(tensor.get_ref(), &field, &symbols, at)?;
                    if !names.insert(spec.name.clone()) {
                        return Err(at.error(
                            tensor.get_ref().name.span(),
                            &format!("{field}.name"),
                            format!(
                                "`{}` names another input or output already; names must be unique",
                                spec.name
                            ),
                        ));
                    }
                    for dim in &spec.shape {
                        if let SpecDim::Symbol(s) = dim {
                            used.insert(s.clone());
                        }
                    }
                    Ok(spec)
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let inputs = tensors(&self.input, "input")?;
        let outputs = tensors(&self.output, "output")?;
        if inputs.is_empty() || outputs.is_empty() {
            return Err(at.error(
                0..0,
                if inputs.is_empty() { "input" } else { "output" },
                "a spec needs at least one [[input]] and one [[output]]".into(),
            ));
        }
        if let Some((name, _)) = self.dims.iter().find(|(n, _)| !used.contains(n.get_ref())) {
            return Err(at.error(
                name.span(),
                &format!("dims.{}", name.get_ref()),
                "declared but no shape uses it; remove it".into(),
            ));
        }
        Ok(ProblemSpec {
            name: self.name.into_inner(),
            description: self.description,
            symbols,
            inputs,
            outputs,
        })
    }
}

fn is_symbol(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn check_tensor(
    raw: &RawTensor,
    field: &str,
    symbols: &[Symbol],
    at: &Locator<'_>,
) -> Result<TensorSpec, SpecError> {
    if raw.name.get_ref().is_empty() {
        return Err(at.error(
            raw.name.span(),
            &format!("{field}.name"),
            "a tensor needs a name".into(),
        ));
    }
    let dtype = dtype_named(raw.dtype.get_ref()).ok_or_else(|| {
        at.error(
            raw.dtype.span(),
            &format!("{field}.dtype"),
            format!(
                "unknown element type `{}`; write one of f32, u8, i8, i32, i64",
                raw.dtype.get_ref()
            ),
        )
    })?;
    let dims = raw.shape.get_ref();
    if dims.len() > MAX_RANK {
        return Err(at.error(
            raw.shape.span(),
            &format!("{field}.shape"),
            format!("rank {} exceeds the maximum of {MAX_RANK}", dims.len()),
        ));
    }
    let shape = dims
        .iter()
        .enumerate()
        .map(|(axis, dim)| {
            let field = format!("{field}.shape[{axis}]");
            match dim.get_ref() {
                RawDim::Size(v) => positive(*v).map(SpecDim::Fixed).ok_or_else(|| {
                    at.error(
                        dim.span(),
                        &field,
                        format!("{v} is not a size: write a positive integer or a symbol"),
                    )
                }),
                RawDim::Symbol(s) if symbols.iter().any(|sym| &sym.name == s) => {
                    Ok(SpecDim::Symbol(s.clone()))
                }
                RawDim::Symbol(s) => Err(at.error(
                    dim.span(),
                    &field,
                    format!("symbol `{s}` is not declared; add `{s} = {{}}` under [dims]"),
                )),
            }
        })
        .collect::<Result<_, _>>()?;
    Ok(TensorSpec {
        name: raw.name.get_ref().clone(),
        dtype,
        shape,
    })
}
