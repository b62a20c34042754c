//! Random integer models for tests and fuzzing: a valid network description and every weight,
//! threshold and head constant of a model for it, drawn from any source of choices (a seeded
//! generator in the tests, the fuzzer's bytes in the fuzz targets).
//!
//! Compiled for the crate's tests and with the `random` feature.

use mognet_arch::ca::CaGenerator;
use mognet_arch::rng::SplitMix64;
use mognet_arch::{BlockNode, FixedPw, GateMode, MuxInputs, NetSpec, PrngRows, Pw2Kind, StageSpec};

use crate::kernels::requant::ChannelRequant;
use crate::model::{BlockInt, CflogInt, HeadInt, IntModel, Pw2Layer, TernaryWeights};

/// Where the choices come from.
pub trait Choices {
    /// A number in `0..n`; `n` is at least 1.
    fn below(&mut self, n: u64) -> u64;

    /// A full 64-bit number (generator seeds).
    fn any_u64(&mut self) -> u64 {
        (self.below(1 << 32) << 32) | self.below(1 << 32)
    }

    /// One of `items`, which is not empty.
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

impl Choices for SplitMix64 {
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    fn any_u64(&mut self) -> u64 {
        self.next_u64()
    }
}

/// `n` ternary codes.
pub fn ternary(r: &mut impl Choices, n: usize) -> Vec<i8> {
    (0..n).map(|_| r.below(3) as i8 - 1).collect()
}

/// Ternary weights of a convolution.
pub fn weights(
    r: &mut impl Choices,
    out: usize,
    inputs: usize,
    k: usize,
    groups: usize,
) -> TernaryWeights {
    TernaryWeights {
        out,
        inputs,
        k,
        groups,
        codes: ternary(r, TernaryWeights::len_for(out, inputs, k, groups)),
    }
}

/// Requantizers with thresholds within `scale` of zero, in any of the three directions.
pub fn requant(r: &mut impl Choices, channels: usize, scale: i64) -> Vec<ChannelRequant> {
    (0..channels)
        .map(|_| {
            let mut t: Vec<i32> = (0..7)
                .map(|_| (r.below(2 * scale as u64 + 1) as i64 - scale) as i32)
                .collect();
            t.sort();
            match r.below(8) {
                0 => ChannelRequant::Constant(r.below(8) as u8),
                1 | 2 => {
                    t.reverse();
                    ChannelRequant::Down(t)
                }
                _ => ChannelRequant::Up(t),
            }
        })
        .collect()
}

/// A stage of 8 to 16 channels in 1, 2 or 4 groups.
fn stage(r: &mut impl Choices) -> StageSpec {
    let groups = r.pick(&[1, 2, 4]);
    let m = (groups * (1 + r.below(4) as usize)).max(8);
    StageSpec {
        n: 1 + r.below(m as u64) as usize,
        m,
        groups,
        blocks: 1 + r.below(3) as usize,
    }
}

/// A small valid network: 1 to 3 stages of 1 to 3 blocks, 8 to 16 channels wide, on 8x8 to
/// 16x16 images, with every option of the description drawn.
pub fn spec(r: &mut impl Choices) -> NetSpec {
    let size = r.pick(&[8, 12, 16]);
    let stages = (0..1 + r.below(3) as usize).map(|_| stage(r)).collect();
    NetSpec {
        in_channels: r.pick(&[1, 3]),
        num_classes: 2 + r.below(9) as usize,
        input_size: [size, size],
        bits: 3,
        stem_width: 1 + r.below(10) as usize,
        kernel_size: r.pick(&[1, 3, 5]),
        stages,
        inner_norm: r.below(3) == 0,
        gate: r.pick(&[
            GateMode::Tgap,
            GateMode::Tgap,
            GateMode::Always,
            GateMode::Never,
        ]),
        mux: r.pick(&[MuxInputs::Avg, MuxInputs::Skip]),
        pw2: r.pick(&[Pw2Kind::Ca, Pw2Kind::Prng, Pw2Kind::Ternary]),
    }
}

/// One CFLOG's weights and thresholds; `None` when no generator seed among the 64 drawn gives
/// valid fixed PW2 rows (the trainer searches seeds the same way).
fn cflog(r: &mut impl Choices, spec: &NetSpec, b: &BlockNode) -> Option<CflogInt> {
    let (generator, pw2) = (0..64).find_map(|_| {
        let seed = r.any_u64();
        let g = match spec.pw2 {
            Pw2Kind::Ca => FixedPw::Ca(CaGenerator {
                rule: 30,
                seed,
                warmup: None,
            }),
            Pw2Kind::Prng => FixedPw::Prng(PrngRows { seed }),
            Pw2Kind::Ternary => return Some((None, weights(r, b.n, b.m, 1, 1).codes)),
        };
        g.weights(b.n, b.m).ok().map(|w| (Some(g), w))
    })?;
    Some(CflogInt {
        pw1: weights(r, b.m, b.c_in, 1, 1),
        gconv: weights(r, b.m, b.m, spec.kernel_size, b.groups),
        inner: spec.inner_norm.then(|| requant(r, b.m, 60)),
        pw2: Pw2Layer {
            weights: pw2,
            generator,
            rows: b.n,
            width: b.m,
        },
        out: requant(r, b.n, 400),
    })
}

/// A model for `spec` with random weights, thresholds, gates and head; `None` only when no
/// valid fixed PW2 seed turns up for some block (practically never with a seeded generator).
pub fn model(r: &mut impl Choices, spec: NetSpec) -> Option<IntModel> {
    let mut blocks = Vec::new();
    for b in spec.blocks() {
        let cflog = cflog(r, &spec, &b)?;
        let plane = b.size[0] * b.size[1];
        let gate = match b.residual {
            Some(res) if res.gate == GateMode::Tgap => (0..b.n)
                .map(|_| r.below((7 * plane) as u64 + 2) as i32)
                .collect(),
            _ => Vec::new(),
        };
        blocks.push(BlockInt { cflog, gate });
    }
    let c = spec.stages.last().expect("a stage").n;
    let k = spec.kernel_size;
    let stem = weights(r, spec.stem_width, spec.in_channels, k, 1);
    let stem_out = requant(r, spec.stem_width, 300);
    let head = HeadInt {
        weights: weights(r, spec.num_classes, c, 1, 1),
        shift: 20,
        multipliers: (0..spec.num_classes)
            .map(|_| r.below(1 << 20) as i32 - (1 << 19))
            .collect(),
        offsets: (0..spec.num_classes)
            .map(|_| r.below(1 << 24) as i32 - (1 << 23))
            .collect(),
    };
    Some(IntModel::new(spec, (stem, stem_out), blocks, head).expect("a consistent random model"))
}

/// `len` random pixels.
pub fn pixels(r: &mut impl Choices, len: usize) -> Vec<u8> {
    (0..len).map(|_| r.below(256) as u8).collect()
}
