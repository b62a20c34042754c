//! Encoding a model as a `.mognet` file.

use std::path::Path;

use mognet_arch::{FixedPw, GateMode, MuxInputs, NetSpec, Node, Pw2Kind, ThresholdWidths};

use crate::bits::{BitWriter, signed_width, unsigned_width};
use crate::kernels::requant::ChannelRequant;
use crate::model::{CflogInt, IntModel, TernaryWeights, ca_crc};
use crate::ternary::{Packing, pack};

use super::{FileInfo, FormatError, LoadError, MAGIC, VERSION, WIDE};

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
