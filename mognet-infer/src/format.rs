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

use std::path::{Path, PathBuf};

use mognet_arch::ca::{CaError, CaGenerator};
use mognet_arch::{
    BlockNode, FixedPw, GateMode, MuxInputs, NetSpec, Node, PrngRows, Pw2Kind, SpecError,
    StageSpec, StorageWidths, ThresholdWidths,
};

use crate::bits::{BitReader, BitWriter, packed_len, signed_width, unsigned_width};
use crate::kernels::requant::ChannelRequant;
use crate::model::{BlockInt, CflogInt, HeadInt, IntModel, Pw2Layer, TernaryWeights, ca_crc};
use crate::ternary::{Packing, pack, unpack};

/// File magic.
pub const MAGIC: &[u8; 8] = b"MOGNET\0\x1a";
/// The format version this code writes and reads.
pub const VERSION: u16 = 1;
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

// ---------------------------------------------------------------- writing

fn put_u16(out: &mut Vec<u8>, v: usize, what: &str) -> Result<(), FormatError> {
    let v = u16::try_from(v).map_err(|_| FormatError::Invalid {
        what: what.into(),
        detail: format!("{v} does not fit 16 bits"),
    })?;
    out.extend(v.to_le_bytes());
    Ok(())
}

fn write_ternary(out: &mut Vec<u8>, w: &TernaryWeights, packing: Packing) {
    out.extend(pack(&w.codes, packing));
}

fn requant_parts(rq: &ChannelRequant) -> (u64, i64, Vec<u64>) {
    let gaps = |t: &[i32], down: bool| {
        t.windows(2)
            .map(|p| {
                let d = if down {
                    p[0] as i64 - p[1] as i64
                } else {
                    p[1] as i64 - p[0] as i64
                };
                d as u64
            })
            .collect::<Vec<u64>>()
    };
    match rq {
        ChannelRequant::Up(t) => (0, t[0] as i64, gaps(t, false)),
        ChannelRequant::Down(t) => (1, t[0] as i64, gaps(t, true)),
        ChannelRequant::Constant(c) => (2, *c as i64, vec![]),
    }
}

/// Bits of one channel's base and gaps when stored wide (an outlier channel).
const WIDE: u32 = 32;

/// The layer widths `(base, gap)` minimising the layer's bits, channels that do not fit being
/// stored wide (32-bit base and gaps).
fn choose_widths(needs: &[(u32, u32)], q: usize) -> (u32, u32) {
    let cost = |b: u32, g: u32| -> u64 {
        needs
            .iter()
            .map(|&(nb, ng)| {
                if nb <= b && ng <= g {
                    (b + (q as u32 - 1) * g) as u64
                } else {
                    (WIDE * q as u32) as u64
                }
            })
            .sum()
    };
    let mut best = (WIDE, WIDE, u64::MAX);
    for &(b, _) in needs {
        for &(_, g) in needs {
            let c = cost(b, g);
            if c < best.2 {
                best = (b, g, c);
            }
        }
    }
    (best.0, best.1)
}

/// Writes a requant block; returns its widths for the summary.
fn write_requant(out: &mut Vec<u8>, channels: &[ChannelRequant], q: usize) -> ThresholdWidths {
    let parts: Vec<_> = channels.iter().map(requant_parts).collect();
    let needs: Vec<(u32, u32)> = parts
        .iter()
        .map(|p| {
            (
                signed_width(p.1),
                p.2.iter().map(|&g| unsigned_width(g)).max().unwrap_or(0),
            )
        })
        .collect();
    let (base_bits, gap_bits) = choose_widths(&needs, q);
    out.push(base_bits as u8);
    out.push(gap_bits as u8);
    let mut w = BitWriter::new();
    let mut wide = 0;
    for (p, &(nb, ng)) in parts.iter().zip(&needs) {
        let is_wide = nb > base_bits || ng > gap_bits;
        wide += is_wide as u32;
        let (b, g) = if is_wide {
            (WIDE, WIDE)
        } else {
            (base_bits, gap_bits)
        };
        w.put(p.0, 2);
        w.put(is_wide as u64, 1);
        w.put_signed(p.1, b);
        for j in 0..q - 1 {
            w.put(p.2.get(j).copied().unwrap_or(0), g);
        }
    }
    out.extend(w.finish());
    ThresholdWidths {
        base: base_bits,
        gap: gap_bits,
        wide_channels: wide,
    }
}

fn write_gate(out: &mut Vec<u8>, gate: &[i32]) -> u32 {
    let bits = gate
        .iter()
        .map(|&g| unsigned_width(g.max(0) as u64))
        .max()
        .unwrap_or(0)
        .max(1);
    out.push(bits as u8);
    let mut w = BitWriter::new();
    for &g in gate {
        w.put(g.max(0) as u64, bits);
    }
    out.extend(w.finish());
    bits
}

/// A CFLOG block: PW1, the grouped convolution, its thresholds (`inner_norm`), the CA layer's
/// generator and CRC, the output thresholds.
fn write_cflog(out: &mut Vec<u8>, c: &CflogInt, q: usize, packing: Packing) {
    write_ternary(out, &c.pw1, packing);
    write_ternary(out, &c.gconv, packing);
    if let Some(inner) = &c.inner {
        write_requant(out, inner, q);
    }
    match &c.pw2.generator {
        Some(FixedPw::Ca(g)) => {
            out.push(g.rule);
            out.extend(g.seed.to_le_bytes());
            out.extend((g.warmup_for(c.pw2.width) as u32).to_le_bytes());
        }
        Some(FixedPw::Prng(g)) => out.extend(g.seed.to_le_bytes()),
        None => out.extend(pack(&c.pw2.weights, packing)),
    }
    if c.pw2.generator.is_some() {
        out.extend(ca_crc(&c.pw2.weights).to_le_bytes());
    }
    write_requant(out, &c.out, q);
}

/// The header: magic, version, packing, and every field of the network description.
fn write_header(out: &mut Vec<u8>, s: &NetSpec, packing: Packing) -> Result<(), FormatError> {
    out.extend(MAGIC);
    out.extend(VERSION.to_le_bytes());
    out.push(packing.tag());
    out.push(match s.pw2 {
        Pw2Kind::Ca => 0,
        Pw2Kind::Prng => 1,
        Pw2Kind::Ternary => 2,
    });
    put_u16(out, s.in_channels, "in_channels")?;
    put_u16(out, s.num_classes, "num_classes")?;
    put_u16(out, s.input_size[0], "input height")?;
    put_u16(out, s.input_size[1], "input width")?;
    out.push(s.bits as u8);
    out.push(s.kernel_size as u8);
    put_u16(out, s.stem_width, "stem width")?;
    out.push(s.inner_norm as u8);
    out.push(match s.gate {
        GateMode::Tgap => 0,
        GateMode::Always => 1,
        GateMode::Never => 2,
    });
    out.push(match s.mux {
        MuxInputs::Avg => 0,
        MuxInputs::Skip => 1,
    });
    out.push(s.stages.len() as u8);
    for st in &s.stages {
        for (v, what) in [
            (st.n, "n"),
            (st.m, "m"),
            (st.groups, "groups"),
            (st.blocks, "blocks"),
        ] {
            put_u16(out, v, what)?;
        }
    }
    Ok(())
}

impl IntModel {
    /// Encodes the model. Fails only if a size exceeds the format's fields.
    pub fn to_bytes(&self, packing: Packing) -> Result<Vec<u8>, FormatError> {
        let s = &self.spec;
        let q = s.levels() as usize;
        let mut out = Vec::new();
        write_header(&mut out, s, packing)?;
        for node in s.topology() {
            match node {
                Node::Stem { .. } => {
                    write_ternary(&mut out, &self.stem, packing);
                    write_requant(&mut out, &self.stem_out, q);
                }
                Node::Pool { .. } => {}
                Node::Block(b) => {
                    let block = &self.blocks[b.index];
                    write_cflog(&mut out, &block.cflog, q, packing);
                    if b.residual.is_some_and(|r| r.gate == GateMode::Tgap) {
                        write_gate(&mut out, &block.gate);
                    }
                }
                Node::Head { .. } => {
                    write_ternary(&mut out, &self.head.weights, packing);
                    out.push(self.head.shift);
                    for m in &self.head.multipliers {
                        out.extend(m.to_le_bytes());
                    }
                    for c in &self.head.offsets {
                        out.extend(c.to_le_bytes());
                    }
                }
            }
        }
        let crc = crc32fast::hash(&out);
        out.extend(crc.to_le_bytes());
        Ok(out)
    }

    /// Writes the model to `path` atomically (temporary file, then rename).
    pub fn save(&self, path: &Path, packing: Packing) -> Result<usize, LoadError> {
        let bytes = self.to_bytes(packing).map_err(|source| LoadError::Format {
            path: path.to_path_buf(),
            source,
        })?;
        let io = |source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        };
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            path.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id()
        ));
        std::fs::write(&tmp, &bytes).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(e)
        })?;
        Ok(bytes.len())
    }

    /// Reads and validates a model file.
    pub fn load(path: &Path) -> Result<(IntModel, FileInfo), LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        IntModel::from_bytes(&bytes).map_err(|source| LoadError::Format {
            path: path.to_path_buf(),
            source,
        })
    }
}

// ---------------------------------------------------------------- reading

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], FormatError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        match end {
            Some(end) => {
                let s = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(FormatError::Truncated {
                what: what.into(),
                offset: self.pos,
                needed: n,
                len: self.bytes.len() + 4,
            }),
        }
    }

    fn u8(&mut self, what: &str) -> Result<u8, FormatError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<usize, FormatError> {
        Ok(u16::from_le_bytes(self.take(2, what)?.try_into().expect("2 bytes")) as usize)
    }

    fn u32(&mut self, what: &str) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4 bytes"),
        ))
    }

    fn i32(&mut self, what: &str) -> Result<i32, FormatError> {
        Ok(i32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self, what: &str) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(
            self.take(8, what)?.try_into().expect("8 bytes"),
        ))
    }

    fn ternary(
        &mut self,
        what: &str,
        out: usize,
        inputs: usize,
        k: usize,
        groups: usize,
        packing: Packing,
    ) -> Result<TernaryWeights, FormatError> {
        let n = out
            .checked_mul(inputs / groups)
            .and_then(|v| v.checked_mul(k * k))
            .ok_or_else(|| invalid(what, "weight count overflows"))?;
        let bytes = self.take(packing.packed_len(n), what)?;
        let codes = unpack(bytes, n, packing)
            .map_err(|i| invalid(what, &format!("byte {i} is not a packed ternary code")))?;
        Ok(TernaryWeights {
            out,
            inputs,
            k,
            groups,
            codes,
        })
    }

    fn requant(
        &mut self,
        what: &str,
        channels: usize,
        q: usize,
        widths: &mut StorageWidths,
        layer: &str,
    ) -> Result<Vec<ChannelRequant>, FormatError> {
        let base_bits = self.u8(what)? as u32;
        let gap_bits = self.u8(what)? as u32;
        if !(1..=WIDE).contains(&base_bits) || gap_bits > WIDE {
            return Err(invalid(
                what,
                &format!("threshold widths {base_bits}/{gap_bits} bits"),
            ));
        }
        // The stream's length depends on the wide flags: read it from the remaining bytes and
        // check every field against the end.
        let rest = &self.bytes[self.pos..];
        let mut r = BitReader::new(rest);
        let mut out = Vec::with_capacity(channels.min(rest.len()));
        let mut wide = 0;
        for c in 0..channels {
            let (channel, is_wide) = read_channel_requant(&mut r, (base_bits, gap_bits), q)
                .map_err(|detail| invalid(what, &format!("channel {c}: {detail}")))?;
            wide += is_wide as u32;
            out.push(channel);
        }
        let used = r.bits_read().div_ceil(8);
        self.pos += used;
        widths.threshold_overrides.insert(
            layer.to_string(),
            ThresholdWidths {
                base: base_bits,
                gap: gap_bits,
                wide_channels: wide,
            },
        );
        Ok(out)
    }

    /// PW2 `layer` of a network whose PW2 layers are of `kind`: a generator and CRC (the rows
    /// are regenerated and checked against the CRC), or packed ternary weights.
    fn pw2(
        &mut self,
        layer: &str,
        kind: Pw2Kind,
        (rows, width): (usize, usize),
        packing: Packing,
    ) -> Result<Pw2Layer, FormatError> {
        let generator = match kind {
            Pw2Kind::Ca => FixedPw::Ca(self.ca_generator(layer)?),
            Pw2Kind::Prng => FixedPw::Prng(PrngRows {
                seed: self.u64(layer)?,
            }),
            Pw2Kind::Ternary => {
                let w = self.ternary(&format!("{layer} weights"), rows, width, 1, 1, packing)?;
                return Ok(Pw2Layer {
                    generator: None,
                    rows,
                    width,
                    weights: w.codes,
                });
            }
        };
        let crc = self.u32(layer)?;
        let weights = generator
            .weights(rows, width)
            .map_err(|e: CaError| FormatError::Ca {
                layer: layer.into(),
                detail: e.to_string(),
            })?;
        let found = ca_crc(&weights);
        if found != crc {
            return Err(FormatError::Ca {
                layer: layer.into(),
                detail: format!(
                    "regenerated PW2 weights have CRC {found:#010x}, the file records {crc:#010x}"
                ),
            });
        }
        Ok(Pw2Layer {
            generator: Some(generator),
            rows,
            width,
            weights,
        })
    }

    fn ca_generator(&mut self, layer: &str) -> Result<CaGenerator, FormatError> {
        let rule = self.u8(layer)?;
        let seed = self.u64(layer)?;
        let warmup = self.u32(layer)? as usize;
        // The CA steps warmup + rows times over width cells: bound the work a header can ask for.
        if warmup > 1 << 20 {
            return Err(invalid(
                layer,
                &format!("CA warmup {warmup} steps is absurd"),
            ));
        }
        Ok(CaGenerator {
            rule,
            seed,
            warmup: Some(warmup),
        })
    }
}

/// One channel's requantization from the bit stream, and whether it used the wide widths
/// instead of `(base, gap)`; the error says what is wrong (the caller names the channel).
fn read_channel_requant(
    r: &mut BitReader,
    (base_bits, gap_bits): (u32, u32),
    q: usize,
) -> Result<(ChannelRequant, bool), String> {
    let short = || "bit stream ends early".to_string();
    let dir = r.get(2).ok_or_else(short)?;
    let is_wide = r.get(1).ok_or_else(short)? == 1;
    let (b, g) = if is_wide {
        (WIDE, WIDE)
    } else {
        (base_bits, gap_bits)
    };
    let base = r.get_signed(b).ok_or_else(short)?;
    let gaps: Vec<u64> = (0..q - 1)
        .map(|_| r.get(g).ok_or_else(short))
        .collect::<Result<_, _>>()?;
    let walk = |sign: i64| -> Result<Vec<i32>, String> {
        let mut v = base;
        std::iter::once(base)
            .chain(gaps.iter().map(|&gap| {
                v += sign * gap as i64;
                v
            }))
            .map(|v| i32::try_from(v).map_err(|_| format!("threshold {v} outside i32")))
            .collect()
    };
    let channel = match dir {
        0 => ChannelRequant::Up(walk(1)?),
        1 => ChannelRequant::Down(walk(-1)?),
        2 if base < 0 || base > q as i64 || gaps.iter().any(|&g| g != 0) => {
            return Err(format!("constant code {base} outside 0..={q}"));
        }
        2 => ChannelRequant::Constant(base as u8),
        d => return Err(format!("direction code {d}")),
    };
    Ok((channel, is_wide))
}

fn invalid(what: &str, detail: &str) -> FormatError {
    FormatError::Invalid {
        what: what.into(),
        detail: detail.into(),
    }
}

/// Checks magic, version and checksum; returns the body (the bytes the checksum covers).
fn check_envelope(bytes: &[u8]) -> Result<&[u8], FormatError> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(FormatError::Magic);
    }
    if bytes.len() < 12 {
        return Err(FormatError::Truncated {
            what: "header".into(),
            offset: 8,
            needed: 4,
            len: bytes.len(),
        });
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != VERSION {
        return Err(FormatError::Version { found: version });
    }
    if bytes.len() < 16 {
        return Err(FormatError::Truncated {
            what: "checksum".into(),
            offset: bytes.len(),
            needed: 4,
            len: bytes.len(),
        });
    }
    let (body, tail) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes(tail.try_into().expect("4 bytes"));
    let computed = crc32fast::hash(body);
    if stored != computed {
        return Err(FormatError::Checksum { stored, computed });
    }
    Ok(body)
}

/// A one-byte code among `choices`.
fn enum_code<T: Copy>(c: &mut Cursor, what: &str, choices: &[T]) -> Result<T, FormatError> {
    let v = c.u8(what)?;
    choices
        .get(v as usize)
        .copied()
        .ok_or_else(|| invalid(what, &format!("code {v}")))
}

/// Refuses sizes the engine does not take: dimensions above [`MAX_DIM`], and networks whose
/// worst-case accumulator could overflow the engine's i32.
fn check_limits(spec: &NetSpec) -> Result<(), FormatError> {
    let [h, w] = spec.input_size;
    let dims = [
        spec.in_channels,
        spec.num_classes,
        h,
        w,
        spec.stem_width,
        spec.kernel_size,
    ]
    .into_iter()
    .chain(spec.stages.iter().flat_map(|s| [s.n, s.m, s.blocks]));
    if let Some(d) = dims.into_iter().find(|&d| d > MAX_DIM) {
        return Err(invalid(
            "shape",
            &format!("dimension {d} exceeds {MAX_DIM}"),
        ));
    }
    if let Some((layer, bound)) = spec
        .accumulator_bounds()
        .into_iter()
        .find(|(_, b)| *b >= i32::MAX as u64)
    {
        return Err(invalid(
            "shape",
            &format!("{layer}: worst-case accumulator {bound} does not fit i32"),
        ));
    }
    Ok(())
}

impl<'a> Cursor<'a> {
    /// The network description after the packing tag, validated against the engine's limits.
    fn spec(&mut self, pw2: Pw2Kind) -> Result<NetSpec, FormatError> {
        let in_channels = self.u16("in_channels")?;
        let num_classes = self.u16("num_classes")?;
        let h = self.u16("input height")?;
        let w = self.u16("input width")?;
        let bits = self.u8("bits")? as u32;
        let kernel_size = self.u8("kernel")? as usize;
        let stem_width = self.u16("stem width")?;
        let inner_norm = match self.u8("inner_norm")? {
            0 => false,
            1 => true,
            v => return Err(invalid("inner_norm", &format!("flag {v}"))),
        };
        let gate = enum_code(
            self,
            "gate mode",
            &[GateMode::Tgap, GateMode::Always, GateMode::Never],
        )?;
        let mux = enum_code(self, "mux", &[MuxInputs::Avg, MuxInputs::Skip])?;
        let n_stages = self.u8("stage count")? as usize;
        let mut stages = Vec::with_capacity(n_stages);
        for i in 0..n_stages {
            let what = format!("stage {i}");
            stages.push(StageSpec {
                n: self.u16(&what)?,
                m: self.u16(&what)?,
                groups: self.u16(&what)?,
                blocks: self.u16(&what)?,
            });
        }
        let spec = NetSpec {
            in_channels,
            num_classes,
            input_size: [h, w],
            bits,
            stem_width,
            kernel_size,
            stages,
            inner_norm,
            gate,
            mux,
            pw2,
        };
        spec.validate()?;
        check_limits(&spec)?;
        Ok(spec)
    }

    /// The MRB gate thresholds of block `name` (`n` channels, sums over a `plane`-pixel map of
    /// codes up to `q`).
    fn gate_thresholds(
        &mut self,
        name: &str,
        n: usize,
        q: usize,
        plane: usize,
        widths: &mut StorageWidths,
    ) -> Result<Vec<i32>, FormatError> {
        let what = format!("{name}.gate thresholds");
        let bits = self.u8(&what)? as u32;
        if !(1..=32).contains(&bits) {
            return Err(invalid(&what, &format!("width {bits} bits")));
        }
        let len = packed_len(n, bits).ok_or_else(|| invalid(&what, "size overflows"))?;
        let bytes = self.take(len, &what)?;
        let mut r = BitReader::new(bytes);
        let limit = (q * plane + 1) as u64;
        let values = (0..n)
            .map(|_| {
                let v = r
                    .get(bits)
                    .ok_or_else(|| invalid(&what, "bit stream ends early"))?;
                if v > limit {
                    return Err(invalid(
                        &what,
                        &format!("threshold {v} above the largest sum {limit}"),
                    ));
                }
                Ok(v as i32)
            })
            .collect::<Result<Vec<i32>, _>>()?;
        widths.gate_overrides.insert(format!("{name}.gate"), bits);
        Ok(values)
    }

    /// One CFLOG block `name` (`c_in -> st.n`): PW1, the grouped conv with its thresholds when
    /// the spec has `inner_norm`, the CA layer and the output thresholds.
    fn cflog(
        &mut self,
        name: &str,
        spec: &NetSpec,
        st: &StageSpec,
        c_in: usize,
        packing: Packing,
        widths: &mut StorageWidths,
    ) -> Result<CflogInt, FormatError> {
        let q = spec.levels() as usize;
        let pw1 = self.ternary(&format!("{name}.pw1 weights"), st.m, c_in, 1, 1, packing)?;
        let gconv_what = format!("{name}.gconv weights");
        let k = spec.kernel_size;
        let gconv = self.ternary(&gconv_what, st.m, st.m, k, st.groups, packing)?;
        let inner = if spec.inner_norm {
            let what = format!("{name}.gconv thresholds");
            Some(self.requant(&what, st.m, q, widths, &format!("{name}.gconv"))?)
        } else {
            None
        };
        let pw2 = self.pw2(&format!("{name}.pw2"), spec.pw2, (st.n, st.m), packing)?;
        let what = format!("{name}.pw2 thresholds");
        let out = self.requant(&what, st.n, q, widths, &format!("{name}.pw2"))?;
        Ok(CflogInt {
            pw1,
            gconv,
            inner,
            pw2,
            out,
        })
    }

    /// Block `b`: its CFLOG, then the gate thresholds of a `Tgap` MRB.
    fn block(
        &mut self,
        b: &BlockNode,
        spec: &NetSpec,
        packing: Packing,
        widths: &mut StorageWidths,
    ) -> Result<BlockInt, FormatError> {
        let name = b.id.to_string();
        let st = spec.stages[b.id.stage];
        let cflog = self.cflog(&name, spec, &st, b.c_in, packing, widths)?;
        let gate = if b.residual.is_some_and(|r| r.gate == GateMode::Tgap) {
            let q = spec.levels() as usize;
            self.gate_thresholds(&name, b.n, q, b.size[0] * b.size[1], widths)?
        } else {
            Vec::new()
        };
        Ok(BlockInt { cflog, gate })
    }

    /// The head: ternary weights, then the fixed-point affine.
    fn head(
        &mut self,
        spec: &NetSpec,
        c_in: usize,
        packing: Packing,
    ) -> Result<HeadInt, FormatError> {
        let classes = spec.num_classes;
        let weights = self.ternary("head weights", classes, c_in, 1, 1, packing)?;
        let shift = self.u8("head shift")?;
        if shift > 62 {
            return Err(invalid("head shift", &format!("{shift} bits")));
        }
        let multipliers = (0..classes)
            .map(|_| self.i32("head multipliers"))
            .collect::<Result<_, _>>()?;
        let offsets = (0..classes)
            .map(|_| self.i32("head offsets"))
            .collect::<Result<_, _>>()?;
        Ok(HeadInt {
            weights,
            shift,
            multipliers,
            offsets,
        })
    }
}

impl IntModel {
    /// Decodes and validates a model: magic, version, checksum, shapes, every field, and the
    /// CA (regenerated and checked against the stored CRC). Never panics on bad input, and
    /// allocates only after checking that the file holds the bytes a size implies.
    pub fn from_bytes(bytes: &[u8]) -> Result<(IntModel, FileInfo), FormatError> {
        let body = check_envelope(bytes)?;
        let mut c = Cursor {
            bytes: body,
            pos: 10,
        };
        let packing = Packing::from_tag(c.u8("packing")?)
            .ok_or_else(|| invalid("packing", "unknown packing tag"))?;
        let kinds = [Pw2Kind::Ca, Pw2Kind::Prng, Pw2Kind::Ternary];
        let pw2 = enum_code(&mut c, "PW2 kind", &kinds)?;
        let spec = c.spec(pw2)?;
        let q = spec.levels() as usize;
        let mut widths = StorageWidths::default();
        let (mut stem, mut head) = (None, None);
        let mut blocks = Vec::new();
        for node in spec.topology() {
            match node {
                Node::Stem { input, out, kernel } => {
                    let weights = c.ternary("stem weights", out, input[0], kernel, 1, packing)?;
                    let requant = c.requant("stem thresholds", out, q, &mut widths, "stem")?;
                    stem = Some((weights, requant));
                }
                Node::Pool { .. } => {}
                Node::Block(b) => blocks.push(c.block(&b, &spec, packing, &mut widths)?),
                Node::Head { input, .. } => head = Some(c.head(&spec, input[0], packing)?),
            }
        }
        let ((stem, stem_out), head) = stem.zip(head).expect("a topology has a stem and a head");
        if c.pos != body.len() {
            return Err(FormatError::Trailing(body.len() - c.pos));
        }
        let model = IntModel::new(spec, (stem, stem_out), blocks, head)?;
        let info = FileInfo {
            packing,
            bytes: bytes.len(),
            widths,
        };
        Ok((model, info))
    }
}
