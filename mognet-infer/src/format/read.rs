//! Decoding and validating a `.mognet` file.

use mognet_arch::ca::{CaError, CaGenerator};
use mognet_arch::{
    BlockNode, FixedPw, GateMode, MuxInputs, NetSpec, Node, PrngRows, Pw2Kind, StageSpec,
    StorageWidths, ThresholdWidths,
};

use crate::bits::{BitReader, packed_len};
use crate::kernels::requant::ChannelRequant;
use crate::model::{BlockInt, CflogInt, HeadInt, IntModel, Pw2Layer, TernaryWeights, ca_crc};
use crate::ternary::{Packing, unpack};

use super::{FileInfo, FormatError, MAGIC, MAX_DIM, VERSION, WIDE};

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
