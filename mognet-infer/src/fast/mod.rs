//! The fast integer engine: the same function as the scalar reference ([`crate::engine`]), bit
//! for bit, with the layouts chosen once at load (padded planes, ternary weights as lists of
//! plane offsets, CA rows as table lookups, sorted threshold tables, the grouped 3x3
//! convolution in Winograd form where it is exact) and vectorized inner loops compiled per
//! instruction set and picked at run time.

pub mod aligned;
mod build;
mod forward;
pub mod geom;
pub mod half;
pub mod kernels;
pub mod peak;
pub mod runner;
pub mod search;
pub mod vnni;
pub mod winograd;

use crate::engine::Prediction;
use crate::input::{InputError, check_image};
use crate::kernels::requant::ChannelRequant;
use aligned::Aligned;
use forward::run;
#[cfg(target_arch = "x86_64")]
use forward::{run_avx2, run_avx512, run_avx512_vnni};
use geom::Geom;
use half::Segments;
use kernels::{Element, Rq, TableConv, Terms};
use vnni::DotConv;
use winograd::Winograd;

/// A compiled variant of the kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// AVX-512 with VNNI: as [`Variant::Avx512`], PW1 layers with `vpdpbusd` on packed codes.
    Avx512Vnni,
    /// AVX-512 (F, BW, VL, DQ): 512-bit vectors.
    Avx512,
    /// AVX2 (with FMA, BMI): 256-bit vectors.
    Avx2,
    /// Whatever the build's baseline target offers (SSE2 on x86-64).
    Portable,
}

impl Variant {
    /// Every variant, fastest first.
    pub const ALL: [Variant; 4] = [
        Variant::Avx512Vnni,
        Variant::Avx512,
        Variant::Avx2,
        Variant::Portable,
    ];

    /// Whether this CPU can run the variant (no allocation: checked on every prediction).
    pub fn is_available(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let avx512 =
                || has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("avx512dq");
            match self {
                Variant::Avx512Vnni => avx512() && has!("avx512vnni"),
                Variant::Avx512 => avx512(),
                Variant::Avx2 => has!("avx2") && has!("fma") && has!("bmi1") && has!("bmi2"),
                Variant::Portable => true,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == Variant::Portable
        }
    }

    /// Variants this CPU can run, fastest first.
    pub fn available() -> Vec<Variant> {
        Variant::ALL
            .into_iter()
            .filter(|v| v.is_available())
            .collect()
    }

    /// The fastest variant this CPU can run.
    pub fn detect() -> Variant {
        Variant::available()[0]
    }

    /// Name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Avx512Vnni => "avx512-vnni",
            Variant::Avx512 => "avx512",
            Variant::Avx2 => "avx2",
            Variant::Portable => "portable",
        }
    }
}

/// A requantization table: per channel a kind (0 up, 1 down, 2 constant) and `Q` thresholds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Table {
    kinds: Vec<u8>,
    values: Vec<i32>,
    q: usize,
}

impl Table {
    fn new(channels: &[ChannelRequant], q: usize) -> Table {
        let mut kinds = Vec::with_capacity(channels.len());
        let mut values = Vec::with_capacity(channels.len() * q);
        for ch in channels {
            match ch {
                // Sorted (a count does not depend on the order), so that the thresholds can
                // be searched.
                ChannelRequant::Up(t) => {
                    kinds.push(0);
                    let mut t = t.clone();
                    t.sort_unstable();
                    values.extend(t);
                }
                ChannelRequant::Down(t) => {
                    kinds.push(1);
                    let mut t = t.clone();
                    t.sort_unstable_by(|a, b| b.cmp(a));
                    values.extend(t);
                }
                ChannelRequant::Constant(c) => {
                    kinds.push(2);
                    values.push(*c as i32);
                    values.extend(std::iter::repeat_n(0, q - 1));
                }
            }
        }
        Table { kinds, values, q }
    }

    #[inline(always)]
    fn get(&self, c: usize) -> Rq<'_> {
        let t = &self.values[c * self.q..(c + 1) * self.q];
        match self.kinds[c] {
            0 => Rq::Up(t),
            1 => Rq::Down(t),
            _ => Rq::Constant(t[0]),
        }
    }
}

#[derive(Debug, Clone)]
struct FastCflog {
    geom: usize,
    pw1: Terms,
    pw1_dot: DotConv,
    gconv: Terms,
    /// The grouped convolution on i16 PW1 sums; `None` when they may not fit i16.
    gconv_half: Option<Segments>,
    /// The grouped convolution in Winograd form (AVX-512 VNNI), where it is exact.
    gconv_wino: Option<Winograd>,
    inner: Option<Table>,
    /// Whether the Winograd kernel writes i16 codes and the CA layer sums them in i16 (its
    /// sums provably fit).
    ca16: bool,
    pw2: Pw2Fast,
    out: Table,
    /// Gate thresholds (MRB with gate tgap), empty otherwise.
    gate: Vec<i32>,
    residual: bool,
}

/// PW2's fast form: the table kernel for +-1 rows (CA or PRNG), the ternary kernel for stored
/// ternary weights.
#[derive(Debug, Clone)]
enum Pw2Fast {
    /// +-1 rows.
    Table(TableConv),
    /// Ternary weights, on the grouped convolution's accumulators in the block's geometry.
    Terms(Terms),
}

impl Pw2Fast {
    fn scratch_rows(&self) -> usize {
        match self {
            Pw2Fast::Table(t) => t.scratch_rows(),
            Pw2Fast::Terms(_) => 0,
        }
    }
}

/// A step of the fast engine between stem and head.
#[derive(Debug, Clone)]
enum Step {
    /// 2x2 max pooling of `channels` channels from geometry `stage - 1` into `stage`'s.
    Pool { stage: usize, channels: usize },
    /// A CFLOG block (with its MRB gate and multiplexer when `residual`).
    Block(Box<FastCflog>),
}

/// The fast engine's form of a model.
#[derive(Debug, Clone)]
pub struct FastModel {
    geoms: Vec<Geom>,
    /// The same maps without borders: the Winograd kernel's output layout, so that the CA
    /// layer after it spends no lanes on border columns.
    compact: Vec<Geom>,
    in_channels: usize,
    stem: Terms,
    stem_out: Table,
    /// The steps between stem and head, in execution order.
    steps: Vec<Step>,
    head: Terms,
    multipliers: Vec<i32>,
    offsets: Vec<i32>,
    fixed_gate: Option<bool>,
    avg: bool,
    /// Buffer length per geometry.
    buffers: Vec<usize>,
    /// Buffer length per geometry without borders.
    compact_buffers: Vec<usize>,
    classes: usize,
    macs: u64,
}

/// Layer kinds whose time the benchmark reports.
pub const KINDS: [&str; 7] = [
    "stem",
    "pw1",
    "gconv",
    "ca-pw+requant",
    "mrb gate+mux",
    "maxpool",
    "head",
];

/// Seconds spent per layer kind (indexed like [`KINDS`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile(pub [f64; 7]);

/// A stopwatch that costs nothing when profiling is off.
struct Clock<'a> {
    profile: Option<&'a mut Profile>,
    last: Option<std::time::Instant>,
}

impl Clock<'_> {
    #[inline(always)]
    fn lap(&mut self, kind: usize) {
        if let Some(p) = self.profile.as_deref_mut() {
            let now = std::time::Instant::now();
            if let Some(last) = self.last {
                p.0[kind] += (now - last).as_secs_f64();
            }
            self.last = Some(now);
        }
    }
}

/// Per-thread working memory, allocated once and reused for every image.
///
/// Each feature-map size has its own four buffers, so that positions that are border in one
/// layout are never written by another: a buffer read by a kxk convolution keeps its zero border
/// from allocation on.
#[derive(Debug, Clone)]
pub struct Scratch {
    input: Aligned<i32>,
    bufs: Vec<[Aligned<i32>; 4]>,
    sums: Vec<i64>,
    gate: Vec<bool>,
    /// Table rows of [`kernels::ROW_BYTES`] (each starts a cache line), as i32 or as i16.
    table: Aligned<i32>,
    table16: Aligned<i16>,
    packed: Aligned<i32>,
    /// Per geometry: the i16 PW1 sums.
    half: Vec<Aligned<i16>>,
    /// Per geometry: the grouped convolution's i16 codes, without borders.
    codes: Vec<Aligned<i16>>,
    /// Winograd transforms and products.
    wino: Aligned<i32>,
}

impl FastModel {
    /// The CFLOG blocks in execution order.
    fn cflogs(&self) -> impl Iterator<Item = &FastCflog> {
        self.steps.iter().filter_map(|step| match step {
            Step::Block(c) => Some(&**c),
            Step::Pool { .. } => None,
        })
    }

    /// Multiply-accumulates per image (the summary's count).
    pub fn macs(&self) -> u64 {
        self.macs
    }

    /// Bytes per input image.
    pub fn image_len(&self) -> usize {
        self.in_channels * self.geoms[0].h * self.geoms[0].w
    }

    /// Working memory for one thread.
    pub fn scratch(&self) -> Scratch {
        let max_c = self.cflogs().map(|c| c.out.kinds.len()).max().unwrap_or(0);
        let max_table = self
            .cflogs()
            .map(|c| c.pw2.scratch_rows())
            .max()
            .unwrap_or(0);
        let max_packed = self
            .cflogs()
            .map(|c| c.pw1_dot.scratch_len())
            .max()
            .unwrap_or(0);
        let wino = |f: fn(&Winograd) -> usize| {
            self.cflogs()
                .filter_map(|c| c.gconv_wino.as_ref().map(f))
                .max()
                .unwrap_or(0)
        };
        Scratch {
            wino: Aligned::zeroed(wino(Winograd::scratch_len)),
            packed: Aligned::zeroed(max_packed),
            half: self.buffers.iter().map(|&n| Aligned::zeroed(n)).collect(),
            codes: self
                .compact_buffers
                .iter()
                .map(|&n| Aligned::zeroed(n))
                .collect(),
            input: Aligned::zeroed(self.geoms[0].buffer_len(self.in_channels)),
            bufs: self
                .buffers
                .iter()
                .map(|&n| std::array::from_fn(|_| Aligned::zeroed(n)))
                .collect(),
            sums: vec![0; max_c.max(self.classes)],
            gate: vec![false; max_c],
            table: Aligned::zeroed(max_table * i32::TCHUNK),
            table16: Aligned::zeroed(max_table * i16::TCHUNK),
        }
    }

    /// Classifies one image with `variant`; an image of the wrong size is an error.
    ///
    /// # Panics
    /// If `variant` is not [`Variant::is_available`] (a programming error).
    pub fn predict(
        &self,
        pixels: &[u8],
        scratch: &mut Scratch,
        variant: Variant,
    ) -> Result<Prediction, InputError> {
        self.predict_profiled(pixels, scratch, variant, None)
    }

    /// [`FastModel::predict`], adding the time of each layer kind to `profile` when given.
    pub fn predict_profiled(
        &self,
        pixels: &[u8],
        scratch: &mut Scratch,
        variant: Variant,
        profile: Option<&mut Profile>,
    ) -> Result<Prediction, InputError> {
        let g = &self.geoms[0];
        check_image([self.in_channels, g.h, g.w], pixels)?;
        Ok(self.classify(pixels, scratch, variant, profile))
    }

    /// One image of the right size (checked by the caller).
    fn classify(
        &self,
        pixels: &[u8],
        scratch: &mut Scratch,
        variant: Variant,
        profile: Option<&mut Profile>,
    ) -> Prediction {
        debug_assert_eq!(pixels.len(), self.image_len());
        assert!(
            variant.is_available(),
            "kernel variant {} not available on this CPU",
            variant.name()
        );
        match variant {
            // SAFETY (all three): the variant is available (asserted above), so the CPU has the
            // features its target-feature function is compiled for, its only requirement.
            #[cfg(target_arch = "x86_64")]
            Variant::Avx512Vnni => unsafe { run_avx512_vnni(self, pixels, scratch, profile) },
            #[cfg(target_arch = "x86_64")]
            Variant::Avx512 => unsafe { run_avx512(self, pixels, scratch, profile) },
            #[cfg(target_arch = "x86_64")]
            Variant::Avx2 => unsafe { run_avx2(self, pixels, scratch, profile) },
            _ => run::<false>(self, pixels, scratch, profile),
        }
    }

    /// Classifies `images` (concatenated) on `threads` threads (rayon), in order. Starts the
    /// threads and allocates their working memory for this call: for repeated calls keep a
    /// [`runner::Runner`].
    pub fn predict_batch(
        &self,
        images: &[u8],
        threads: usize,
        variant: Variant,
    ) -> Result<Vec<Prediction>, InputError> {
        runner::Runner::new(self, threads, variant).predict_batch(images)
    }
}

#[cfg(test)]
pub(crate) mod isa;
#[cfg(test)]
pub(crate) mod tests;
