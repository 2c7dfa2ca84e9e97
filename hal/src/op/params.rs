//! How an op's parameters live in a step's [`PARAM_WORDS`] words.
//!
//! Every parameter type implements [`Param`]: how many words it takes and how it
//! reads and writes them. An op's fields are stored one after another in the order
//! the op table declares them, so the table alone fixes each field's word offset;
//! the CUDA prelude publishes those offsets (and the codes of `word_enum!` types)
//! as `#define`s, so the kernels name every word and every code.

use super::OpError;
use crate::plan::PARAM_WORDS;

/// A value stored in a fixed number of consecutive parameter words.
pub trait Param: Sized {
    /// Words the value occupies.
    const WORDS: usize;
    /// Named parts of the value, as (name, words), in storage order, for types whose
    /// words a kernel reads one by one (a window's stride, an activation's code).
    const PARTS: &'static [(&'static str, usize)] = &[];
    /// Writes the value into `words` (exactly [`Param::WORDS`] long).
    fn write(&self, words: &mut [u32]);
    /// Reads the value from `words` (exactly [`Param::WORDS`] long), checking its range.
    fn read(words: &[u32]) -> Result<Self, OpError>;
}

impl Param for usize {
    const WORDS: usize = 1;
    fn write(&self, words: &mut [u32]) {
        words[0] = *self as u32;
    }
    fn read(words: &[u32]) -> Result<Self, OpError> {
        Ok(words[0] as usize)
    }
}

impl Param for bool {
    const WORDS: usize = 1;
    fn write(&self, words: &mut [u32]) {
        words[0] = u32::from(*self);
    }
    fn read(words: &[u32]) -> Result<Self, OpError> {
        Ok(words[0] != 0)
    }
}

impl Param for f32 {
    const WORDS: usize = 1;
    fn write(&self, words: &mut [u32]) {
        words[0] = self.to_bits();
    }
    fn read(words: &[u32]) -> Result<Self, OpError> {
        Ok(f32::from_bits(words[0]))
    }
}

impl<T: Param + Copy + Default, const N: usize> Param for [T; N] {
    const WORDS: usize = N * T::WORDS;
    fn write(&self, words: &mut [u32]) {
        for (value, chunk) in self.iter().zip(words.chunks_exact_mut(T::WORDS)) {
            value.write(chunk);
        }
    }
    fn read(words: &[u32]) -> Result<Self, OpError> {
        let mut out = [T::default(); N];
        for (value, chunk) in out.iter_mut().zip(words.chunks_exact(T::WORDS)) {
            *value = T::read(chunk)?;
        }
        Ok(out)
    }
}

/// Writes parameters one after another into a step's words.
pub(crate) struct ParamWriter {
    words: [u32; PARAM_WORDS],
    at: usize,
}

impl ParamWriter {
    pub(crate) fn new() -> Self {
        Self {
            words: [0; PARAM_WORDS],
            at: 0,
        }
    }

    pub(crate) fn put<T: Param>(&mut self, value: &T) {
        value.write(&mut self.words[self.at..self.at + T::WORDS]);
        self.at += T::WORDS;
    }

    pub(crate) fn finish(self) -> [u32; PARAM_WORDS] {
        self.words
    }
}

/// Reads parameters one after another from a step's words.
pub(crate) struct ParamReader<'a> {
    words: &'a [u32; PARAM_WORDS],
    at: usize,
}

impl<'a> ParamReader<'a> {
    pub(crate) fn new(words: &'a [u32; PARAM_WORDS]) -> Self {
        Self { words, at: 0 }
    }

    pub(crate) fn take<T: Param>(&mut self) -> Result<T, OpError> {
        let value = T::read(&self.words[self.at..self.at + T::WORDS])?;
        self.at += T::WORDS;
        Ok(value)
    }
}

/// Defines a field-less enum stored as one parameter word: its variants with their
/// codes, [`Param`] (an unknown code is refused with `$unknown`), and `ALL` with each
/// variant's name, from which the CUDA prelude defines `CADENCE_<PREFIX>_<VARIANT>`.
macro_rules! word_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($prefix:literal, $unknown:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $code:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u32)]
        pub enum $name {
            $( $(#[$vmeta])* $variant = $code, )*
        }

        impl $name {
            /// Every variant with its name, in code order.
            pub const ALL: &[(Self, &'static str)] = &[ $( (Self::$variant, stringify!($variant)), )* ];
            /// The prefix of this enum's constants in the CUDA prelude.
            pub const C_PREFIX: &'static str = $prefix;

            /// The stored code.
            pub fn code(self) -> u32 {
                self as u32
            }

            /// The variant stored as `code`.
            pub fn from_code(code: u32) -> Option<Self> {
                match code {
                    $( $code => Some(Self::$variant), )*
                    _ => None,
                }
            }
        }

        impl $crate::op::params::Param for $name {
            const WORDS: usize = 1;
            fn write(&self, words: &mut [u32]) {
                words[0] = self.code();
            }
            fn read(words: &[u32]) -> Result<Self, $crate::op::OpError> {
                Self::from_code(words[0]).ok_or($crate::op::OpError::BadParam($unknown))
            }
        }
    };
}
pub(crate) use word_enum;

/// Defines the op set from one table: the [`Op`](super::Op) enum, [`OpCode`](super::OpCode)
/// (each op's stored code, report name and CUDA kernel entry), and the encoding and
/// decoding of each op's fields, stored in declaration order. A field may name a
/// check (`=> fn(&T) -> Result<(), OpError>`) that decoding applies.
macro_rules! op_table {
    (
        $(
            $(#[$vmeta:meta])*
            $variant:ident
            $( ( $( $tfield:ident : $ttype:ty ),* ) )?
            $( { $( $(#[$fmeta:meta])* $field:ident : $ftype:ty $( => $check:path )? ),* $(,)? } )?
            = $code:literal, $name:literal, $entry:literal;
        )*
    ) => {
        /// One kernel call, decoded.
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub enum Op {
            $(
                $(#[$vmeta])*
                $variant
                $( ( $( $ttype ),* ) )?
                $( { $( $(#[$fmeta])* $field: $ftype ),* } )?,
            )*
        }

        /// Which op a step runs: the fact a `.cpk` stores, a report prints and the CUDA
        /// backend launches.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u32)]
        pub enum OpCode {
            $(
                #[doc = concat!("[`Op::", stringify!($variant), "`].")]
                $variant = $code,
            )*
        }

        impl OpCode {
            /// Every op code, in code order.
            pub const ALL: &[Self] = &[ $( Self::$variant ),* ];

            /// The op stored as `code`.
            pub fn from_code(code: u32) -> Option<Self> {
                match code {
                    $( $code => Some(Self::$variant), )*
                    _ => None,
                }
            }

            /// Position in [`OpCode::ALL`] (a table of per-op data, such as the loaded
            /// CUDA kernels, is indexed by it).
            pub fn index(self) -> usize {
                Self::ALL
                    .iter()
                    .position(|code| *code == self)
                    .expect("ALL lists every op code")
            }

            /// A short name for reports (`conv2d`, `matmul`, …).
            pub fn name(self) -> &'static str {
                match self {
                    $( Self::$variant => $name, )*
                }
            }

            /// The `extern "C"` entry point of the CUDA kernel that runs this op.
            pub fn kernel_entry(self) -> &'static str {
                match self {
                    $( Self::$variant => $entry, )*
                }
            }

            /// The op's fields as (name, words, parts), in storage order: field `i`
            /// starts at the sum of the words before it.
            pub fn fields(self) -> &'static [$crate::op::params::FieldLayout] {
                match self {
                    $( Self::$variant => {
                        const FIELDS: &[$crate::op::params::FieldLayout] = &[
                            $( $( $crate::op::params::FieldLayout::of::<$ttype>(stringify!($tfield)), )* )?
                            $( $( $crate::op::params::FieldLayout::of::<$ftype>(stringify!($field)), )* )?
                        ];
                        FIELDS
                    } )*
                }
            }
        }

        impl Op {
            /// Which op this is.
            pub fn op_code(&self) -> OpCode {
                match self {
                    $( Self::$variant { .. } => OpCode::$variant, )*
                }
            }

            /// Encodes the op's parameters into the step's parameter words.
            pub fn encode_params(&self) -> [u32; $crate::plan::PARAM_WORDS] {
                let mut words = $crate::op::params::ParamWriter::new();
                match self {
                    $(
                        Self::$variant $( ( $( $tfield ),* ) )? $( { $( $field ),* } )? => {
                            $( $( words.put($tfield); )* )?
                            $( $( words.put($field); )* )?
                        }
                    )*
                }
                words.finish()
            }

            /// Decodes a stored step. Checks parameter ranges, not shapes (see
            /// [`Op::check`]).
            pub fn decode(step: &$crate::plan::StepRecord) -> Result<Self, OpError> {
                let code = OpCode::from_code(step.op).ok_or(OpError::UnknownOp(step.op))?;
                let mut words = $crate::op::params::ParamReader::new(&step.params);
                Ok(match code {
                    $(
                        OpCode::$variant => Self::$variant
                            $( ( $( words.take::<$ttype>()? ),* ) )?
                            $( { $( $field: {
                                let value = words.take::<$ftype>()?;
                                $( $check(&value)?; )?
                                value
                            } ),* } )?,
                    )*
                })
            }
        }
    };
}
pub(crate) use op_table;

/// Where one field of an op sits in the parameter words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldLayout {
    /// The field's name in [`Op`](super::Op).
    pub name: &'static str,
    /// Words it occupies.
    pub words: usize,
    /// Its named parts, as [`Param::PARTS`].
    pub parts: &'static [(&'static str, usize)],
}

impl FieldLayout {
    /// The layout of a field of type `T` named `name`.
    pub const fn of<T: Param>(name: &'static str) -> Self {
        Self {
            name,
            words: T::WORDS,
            parts: T::PARTS,
        }
    }
}
