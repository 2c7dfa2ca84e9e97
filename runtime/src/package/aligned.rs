//! A heap buffer whose bytes start on a 64-byte boundary, so a package read from disk
//! can be parsed in place (`Vec<u8>` only promises 1-byte alignment).

use std::path::Path;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::format::SECTION_ALIGN;

#[repr(C, align(64))]
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
struct Block([u8; SECTION_ALIGN]);

/// Bytes stored from a 64-byte-aligned address; derefs to `&[u8]` of the exact length.
#[derive(Clone)]
pub struct AlignedBytes {
    blocks: Vec<Block>,
    len: usize,
}

impl AlignedBytes {
    /// A zeroed buffer of `len` bytes.
    pub fn zeroed(len: usize) -> Self {
        Self {
            blocks: vec![Block([0; SECTION_ALIGN]); len.div_ceil(SECTION_ALIGN)],
            len,
        }
    }

    /// An aligned copy of `bytes`.
    pub fn from_slice(bytes: &[u8]) -> Self {
        let mut out = Self::zeroed(bytes.len());
        out.as_mut_slice().copy_from_slice(bytes);
        out
    }

    /// Reads a whole file straight into an aligned buffer (no intermediate copy).
    pub fn read(path: impl AsRef<Path>) -> std::io::Result<Self> {
        use std::io::Read;
        let mut file = std::fs::File::open(path)?;
        let len = usize::try_from(file.metadata()?.len())
            .map_err(|_| std::io::Error::other("file too large for memory"))?;
        let mut out = Self::zeroed(len);
        file.read_exact(out.as_mut_slice())?;
        // A file that grew while we read it would be silently cut: refuse instead.
        if file.read(&mut [0u8; 1])? != 0 {
            return Err(std::io::Error::other("file changed while being read"));
        }
        Ok(out)
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.blocks.as_bytes()[..self.len]
    }

    /// The bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.blocks.as_mut_bytes()[..self.len]
    }
}

impl std::ops::Deref for AlignedBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::ops::DerefMut for AlignedBytes {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
    }
}

impl std::fmt::Debug for AlignedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBytes({} bytes)", self.len)
    }
}
