//! The `.mognet` file: a compact, checksummed integer model.
//!
//! Layout (little-endian), version 1:
//!
//! ```text
//! magic "MOGNET\0\x1a" | u16 version | u8 packing (0 2-bit, 1 base-3) |
//!       u8 PW2 kind (0 CA, 1 PRNG, 2 ternary)
//! spec: u16 in_channels, u16 classes, u16 h, u16 w, u8 bits, u8 kernel, u16 stem width,
//!       u8 inner_norm, u8 gate (0 tgap, 1 always, 2 never), u8 mux (0 avg, 1 skip),
//!       u8 stages, then per stage u16 n, u16 m, u16 groups, u16 blocks
//! stem:  ternary weights, requant block
//! per CFLOG (stage by stage, block by block):
//!        ternary PW1, ternary grouped conv, [requant block if inner_norm],
//!        PW2, CA: u8 rule, u64 seed, u32 warmup, u32 CRC-32 of the generated rows,
//!             or PRNG: u64 seed, u32 CRC-32 of the generated rows, or ternary weights,
//!        requant block, [gate block for an MRB with gate tgap]
//! head:  ternary weights, u8 shift, i32 multiplier x classes, i32 offset x classes
//! u32 CRC-32 of everything before it
//! ```
//!
//! A requant block is `u8 base_bits, u8 gap_bits` and a bit stream (LSB first, byte-padded at
//! its end) with, per channel: a 2-bit direction (0 up, 1 down, 2 constant), a 1-bit wide flag,
//! the signed first threshold (the code for constant channels) and the `Q - 1` unsigned gaps
//! between consecutive thresholds, in the layer's widths, or in 32 bits each for a wide channel.
//! The layer widths are the ones that minimise the block (outlier channels go wide). A gate block
//! is `u8 bits` and the unsigned thresholds in a bit stream of the narrowest width.

mod read;
mod write;

use std::path::PathBuf;

use mognet_arch::{SpecError, StorageWidths};

use crate::ternary::Packing;

/// File magic.
pub const MAGIC: &[u8; 8] = b"MOGNET\0\x1a";
/// The format version this code writes and reads.
pub const VERSION: u16 = 1;
/// Bits of one channel's base and gaps when stored wide (an outlier channel).
const WIDE: u32 = 32;
/// Largest channel count or side accepted: anything larger is a corrupt header.
const MAX_DIM: usize = 4096;

/// Why a `.mognet` file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Not a `.mognet` file.
    #[error("not a .mognet file (bad magic)")]
    Magic,
    /// Written by another format version.
    #[error("format version {found}, this build reads version {VERSION}")]
    Version {
        /// Version in the file.
        found: u16,
    },
    /// The file ends early.
    #[error("truncated: {what} needs {needed} bytes at offset {offset}, the file has {len}")]
    Truncated {
        /// What was being read.
        what: String,
        /// Offset of the read.
        offset: usize,
        /// Bytes needed.
        needed: usize,
        /// File length.
        len: usize,
    },
    /// The checksum does not match: the file is damaged.
    #[error(
        "checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): the file is damaged"
    )]
    Checksum {
        /// CRC in the file.
        stored: u32,
        /// CRC of the content.
        computed: u32,
    },
    /// The shapes are not a valid network.
    #[error("invalid network shape: {0}")]
    Spec(#[from] SpecError),
    /// A field holds an impossible value.
    #[error("{what}: {detail}")]
    Invalid {
        /// The field.
        what: String,
        /// What is wrong.
        detail: String,
    },
    /// The CA of a layer does not regenerate the stored weights.
    #[error("{layer}: {detail}")]
    Ca {
        /// The layer.
        layer: String,
        /// What is wrong.
        detail: String,
    },
    /// Bytes left over after the head.
    #[error("{0} unexpected bytes after the model")]
    Trailing(usize),
}

/// A `.mognet` file that could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The content is invalid.
    #[error("{path}: {source}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: FormatError,
    },
}

/// What the file says about its own storage, for the size summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Weight packing.
    pub packing: Packing,
    /// File size in bytes.
    pub bytes: usize,
    /// Actual widths per layer.
    pub widths: StorageWidths,
}
