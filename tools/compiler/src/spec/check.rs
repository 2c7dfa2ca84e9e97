//! Whether a package implements a spec, and every place where it does not.

use std::collections::HashMap;
use std::fmt;

use cadence_runtime::package::{IoSpec, Package};
use serde::Serialize;

use super::{ProblemSpec, SpecDim, TensorSpec};

/// Input or output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A model input.
    Input,
    /// A model output.
    Output,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Input => "input",
            Self::Output => "output",
        })
    }
}

/// One dim of one tensor of the package, and its size there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Place {
    /// Input or output.
    pub role: Role,
    /// The tensor's name.
    pub tensor: String,
    /// The dim's index, outermost first.
    pub axis: usize,
    /// Its size in the package.
    pub size: usize,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} `{}` dim {} (= {})",
            self.role, self.tensor, self.axis, self.size
        )
    }
}

/// One way a package differs from a spec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Difference {
    /// The spec has a tensor the package lacks.
    Missing {
        /// Input or output.
        role: Role,
        /// The tensor's name.
        name: String,
    },
    /// The package has a tensor the spec does not.
    Unexpected {
        /// Input or output.
        role: Role,
        /// The tensor's name.
        name: String,
    },
    /// Both have the tensor, at different positions (callers may address it by index).
    Order {
        /// Input or output.
        role: Role,
        /// The tensor's name.
        name: String,
        /// Its position in the spec.
        spec_index: usize,
        /// Its position in the package.
        package_index: usize,
    },
    /// The element types differ.
    DType {
        /// Input or output.
        role: Role,
        /// The tensor's name.
        name: String,
        /// The spec's element type.
        spec: &'static str,
        /// The package's element type.
        package: &'static str,
    },
    /// The ranks differ (its dims are then not compared).
    Rank {
        /// Input or output.
        role: Role,
        /// The tensor's name.
        name: String,
        /// The spec's shape, as written.
        spec: String,
        /// The package's shape.
        package: String,
    },
    /// A fixed dim has another size in the package.
    FixedDim {
        /// Input or output.
        role: Role,
        /// The tensor's name.
        name: String,
        /// The dim's index.
        axis: usize,
        /// The spec's size.
        spec: usize,
        /// The package's size.
        package: usize,
    },
    /// A symbol is bound to two sizes: `first` is where it was first bound.
    SymbolConflict {
        /// The symbol.
        symbol: String,
        /// Where it was first bound.
        first: Place,
        /// Where it is bound to another size.
        second: Place,
    },
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing { role, name } => {
                write!(f, "{role} `{name}`: in the spec, missing from the package")
            }
            Self::Unexpected { role, name } => {
                write!(f, "{role} `{name}`: in the package, not in the spec")
            }
            Self::Order {
                role,
                name,
                spec_index,
                package_index,
            } => write!(
                f,
                "{role} `{name}`: position {package_index} in the package, {spec_index} in the spec"
            ),
            Self::DType {
                role,
                name,
                spec,
                package,
            } => write!(f, "{role} `{name}`: dtype {package}, the spec says {spec}"),
            Self::Rank {
                role,
                name,
                spec,
                package,
            } => write!(
                f,
                "{role} `{name}`: shape {package}, the spec says {spec} (rank differs)"
            ),
            Self::FixedDim {
                role,
                name,
                axis,
                spec,
                package,
            } => write!(
                f,
                "{role} `{name}` dim {axis}: {package}, the spec says {spec}"
            ),
            Self::SymbolConflict {
                symbol,
                first,
                second,
            } => write!(
                f,
                "symbol `{symbol}`: {} at {second}, but {} at {first}",
                second.size, first.size
            ),
        }
    }
}

/// Compares `package` with `spec`: names and order, element types, ranks, fixed dims,
/// and that each symbol has one size everywhere. Returns every difference (none: the
/// package implements the spec).
pub fn check(package: &Package<'_>, spec: &ProblemSpec) -> Vec<Difference> {
    let mut differences = Vec::new();
    let mut bound: HashMap<&str, Place> = HashMap::new();
    let roles = [
        (
            Role::Input,
            &spec.inputs,
            package.inputs().collect::<Vec<_>>(),
        ),
        (Role::Output, &spec.outputs, package.outputs().collect()),
    ];
    for (role, wanted, have) in &roles {
        let missing_or_extra = differences.len();
        for tensor in wanted.iter() {
            if !have.iter().any(|io| io.name() == tensor.name) {
                differences.push(Difference::Missing {
                    role: *role,
                    name: tensor.name.clone(),
                });
            }
        }
        for io in have {
            if !wanted.iter().any(|t| t.name == io.name()) {
                differences.push(Difference::Unexpected {
                    role: *role,
                    name: io.name().to_owned(),
                });
            }
        }
        // With a tensor missing or extra, every later position shifts: order is only
        // worth reporting when both have the same set.
        let same_set = differences.len() == missing_or_extra;
        for (spec_index, tensor) in wanted.iter().enumerate() {
            let Some(package_index) = have.iter().position(|io| io.name() == tensor.name) else {
                continue;
            };
            if same_set && package_index != spec_index {
                differences.push(Difference::Order {
                    role: *role,
                    name: tensor.name.clone(),
                    spec_index,
                    package_index,
                });
            }
            compare_tensor(
                *role,
                tensor,
                &have[package_index],
                &mut bound,
                &mut differences,
            );
        }
    }
    differences
}

fn compare_tensor<'s>(
    role: Role,
    tensor: &'s TensorSpec,
    io: &IoSpec<'_>,
    bound: &mut HashMap<&'s str, Place>,
    differences: &mut Vec<Difference>,
) {
    let name = || tensor.name.clone();
    if io.dtype() != tensor.dtype {
        differences.push(Difference::DType {
            role,
            name: name(),
            spec: tensor.dtype.name(),
            package: io.dtype().name(),
        });
    }
    let sizes: Vec<usize> = io.dims().map(|d| d.value()).collect();
    if sizes.len() != tensor.shape.len() {
        let dims: Vec<String> = sizes.iter().map(ToString::to_string).collect();
        differences.push(Difference::Rank {
            role,
            name: name(),
            spec: tensor.shape_string(),
            package: format!("[{}]", dims.join(", ")),
        });
        return;
    }
    for (axis, (dim, &size)) in tensor.shape.iter().zip(&sizes).enumerate() {
        match dim {
            SpecDim::Fixed(spec) if *spec != size => differences.push(Difference::FixedDim {
                role,
                name: name(),
                axis,
                spec: *spec,
                package: size,
            }),
            SpecDim::Fixed(_) => {}
            SpecDim::Symbol(symbol) => {
                let place = Place {
                    role,
                    tensor: name(),
                    axis,
                    size,
                };
                match bound.get(symbol.as_str()) {
                    None => {
                        bound.insert(symbol, place);
                    }
                    Some(first) if first.size != size => {
                        differences.push(Difference::SymbolConflict {
                            symbol: symbol.clone(),
                            first: first.clone(),
                            second: place,
                        });
                    }
                    Some(_) => {}
                }
            }
        }
    }
}
