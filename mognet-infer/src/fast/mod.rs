//! The fast integer engine: the same function as the scalar reference ([`crate::engine`]), bit
//! for bit, with the layouts chosen once at load (padded planes, ternary weights as lists of
//! plane offsets, CA rows as table lookups, sorted threshold tables, the grouped 3x3
//! convolution in Winograd form where it is exact) and vectorized inner loops compiled per
//! instruction set and picked at run time.

pub mod aligned;
pub mod geom;
pub mod half;
pub mod kernels;
pub mod peak;
pub mod runner;
pub mod search;
pub mod vnni;
pub mod winograd;

use mognet_arch::{NetSpec, Node};

use crate::engine::Prediction;
use crate::input::{InputError, check_image};
use crate::kernels::head::{argmax, logits};
use crate::kernels::requant::ChannelRequant;
use crate::model::{CflogInt, IntModel};
use aligned::Aligned;
use geom::Geom;
use half::{Segments, conv_half, pointwise_bounds};
use kernels::{Element, Post, Rq, TableConv, Terms, conv, mux, plane_sums, pool, table_conv};
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

/// PW2's fast form: the lookup-table kernel for CA weights (+-1, never zero), the terms kernel
/// for stored ternary or PRNG weights.
fn pw2_fast(c: &CflogInt, geom: &Geom) -> Pw2Fast {
    let pw2 = &c.pw2;
    match pw2.generator {
        Some(_) => Pw2Fast::Table(TableConv::new(
            &pw2.weights,
            pw2.rows,
            pw2.width,
            kernels::TABLE_WIDTH,
        )),
        None => Pw2Fast::Terms(Terms::new(&pw2.weights, pw2.rows, pw2.width, 1, 1, geom)),
    }
}

/// The largest code the grouped convolution's requantization `inner` gives (none without one).
fn inner_max(inner: Option<&[ChannelRequant]>, q: usize) -> Option<i64> {
    let code_max = |ch: &ChannelRequant| match ch {
        ChannelRequant::Constant(v) => *v as i64,
        _ => q as i64,
    };
    inner.map(|t| t.iter().map(code_max).max().unwrap_or(0))
}

/// A CFLOG block's fast form on geometry `g` (`geom`).
fn fast_cflog(
    c: &CflogInt,
    g: usize,
    geom: &Geom,
    q: usize,
    gate: &[i32],
    residual: bool,
) -> FastCflog {
    let bounds = pointwise_bounds(&c.pw1.codes, c.pw1.out, c.pw1.inputs, q as i64);
    let pw2 = pw2_fast(c, geom);
    // The Winograd kernel writes a layout without borders, which only the table kernel reads;
    // the table keeps its sums in i16 behind it when the largest inner code allows.
    let (gconv_wino, ca16) = match &pw2 {
        Pw2Fast::Table(table) => {
            let wino = Winograd::new(&c.gconv, geom, &bounds);
            let fits = inner_max(c.inner.as_deref(), q).is_some_and(|m| table.fits_i16(m));
            let ca16 = wino.is_some() && fits;
            (wino, ca16)
        }
        Pw2Fast::Terms(_) => (None, false),
    };
    let gc = &c.gconv;
    FastCflog {
        geom: g,
        pw1: Terms::new(&c.pw1.codes, c.pw1.out, c.pw1.inputs, 1, 1, geom),
        pw1_dot: DotConv::new(&c.pw1.codes, c.pw1.out, c.pw1.inputs),
        gconv: Terms::new(&gc.codes, gc.out, gc.inputs, gc.k, gc.groups, geom),
        gconv_half: Segments::new(gc, geom, &bounds),
        ca16,
        gconv_wino,
        inner: c.inner.as_ref().map(|t| Table::new(t, q)),
        pw2,
        out: Table::new(&c.out, q),
        gate: gate.to_vec(),
        residual,
    }
}

/// The map of each stage, with borders for a `kernel_size` convolution: the input size, halved
/// by each stage's pooling.
fn stage_geoms(spec: &NetSpec) -> Vec<Geom> {
    let p = spec.kernel_size / 2;
    let [mut h, mut w] = spec.input_size;
    let mut geoms = vec![Geom::new(h, w, p)];
    for _ in 1..spec.stages.len() {
        (h, w) = (h / 2, w / 2);
        geoms.push(Geom::new(h, w, p));
    }
    geoms
}

/// The buffer length of each geometry, sized by its widest map (`widest` channels).
fn buffer_lens(geoms: &[Geom], widest: &[usize]) -> Vec<usize> {
    geoms
        .iter()
        .zip(widest)
        .map(|(g, &c)| g.buffer_len(c))
        .collect()
}

impl FastModel {
    /// Lays the model out for the fast kernels.
    pub fn new(model: &IntModel) -> FastModel {
        let spec = &model.spec;
        let q = spec.levels() as usize;
        let geoms = stage_geoms(spec);
        // The widest map of each geometry sizes its buffers.
        let mut widest = vec![0; geoms.len()];
        let (mut steps, mut stem, mut head) = (Vec::new(), None, None);
        for node in spec.topology() {
            match node {
                Node::Stem { input, out, kernel } => {
                    let codes = &model.stem.codes;
                    stem = Some(Terms::new(codes, out, input[0], kernel, 1, &geoms[0]));
                }
                Node::Pool { stage, input } => steps.push(Step::Pool {
                    stage,
                    channels: input[0],
                }),
                Node::Block(b) => {
                    let g = b.id.stage;
                    widest[g] = widest[g].max(b.c_in).max(b.m).max(b.n);
                    let block = &model.blocks[b.index];
                    let residual = b.residual.is_some();
                    steps.push(Step::Block(Box::new(fast_cflog(
                        &block.cflog,
                        g,
                        &geoms[g],
                        q,
                        &block.gate,
                        residual,
                    ))));
                }
                Node::Head { input, classes } => {
                    let g = geoms.len() - 1;
                    widest[g] = widest[g].max(classes);
                    let codes = &model.head.weights.codes;
                    head = Some(Terms::new(codes, classes, input[0], 1, 1, &geoms[g]));
                }
            }
        }
        let compact: Vec<Geom> = geoms.iter().map(|g| Geom::new(g.h, g.w, 0)).collect();
        FastModel {
            in_channels: spec.in_channels,
            stem: stem.expect("a topology starts with its stem"),
            stem_out: Table::new(&model.stem_out, q),
            steps,
            head: head.expect("a topology ends with its head"),
            multipliers: model.head.multipliers.clone(),
            offsets: model.head.offsets.clone(),
            fixed_gate: model.fixed_gate(),
            avg: model.mux() == crate::kernels::mrb::Mux::Avg,
            buffers: buffer_lens(&geoms, &widest),
            compact_buffers: buffer_lens(&compact, &widest),
            classes: spec.num_classes,
            macs: mognet_arch::Summary::new(spec, &mognet_arch::StorageWidths::default()).macs,
            compact,
            geoms,
        }
    }

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

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
unsafe fn run_avx512_vnni(
    m: &FastModel,
    pixels: &[u8],
    s: &mut Scratch,
    p: Option<&mut Profile>,
) -> Prediction {
    run::<true>(m, pixels, s, p)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn run_avx512(
    m: &FastModel,
    pixels: &[u8],
    s: &mut Scratch,
    p: Option<&mut Profile>,
) -> Prediction {
    run::<false>(m, pixels, s, p)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,bmi1,bmi2")]
unsafe fn run_avx2(
    m: &FastModel,
    pixels: &[u8],
    s: &mut Scratch,
    p: Option<&mut Profile>,
) -> Prediction {
    run::<false>(m, pixels, s, p)
}

/// A CFLOG's share of the [`Scratch`]: the i16 PW1 sums of its geometry and the kernels'
/// working memory.
struct Work<'a> {
    half: &'a mut [i16],
    codes: &'a mut [i16],
    table16: &'a mut [i16],
    table: &'a mut [i32],
    packed: &'a mut [i32],
    wino: &'a mut [i32],
}

/// One CFLOG from `x` into `f`, using `a1` and `a2` for the accumulators; `VNNI` picks the
/// `vpdpbusd` PW1 (only inlined into a function compiled with AVX-512 VNNI).
#[inline(always)]
fn cflog<const VNNI: bool>(
    c: &FastCflog,
    [g, compact]: [&Geom; 2],
    x: &[i32],
    [a1, a2, f]: [&mut [i32]; 3],
    s: Work,
    clock: &mut Clock,
) {
    let post = match &c.inner {
        Some(t) => Post::Requant(&|o| t.get(o)),
        None => Post::Store,
    };
    // The layout of the grouped convolution's output.
    let mut a2_geom = g;
    match &c.gconv_half {
        Some(segments) => {
            #[cfg(target_arch = "x86_64")]
            if VNNI {
                // SAFETY: `VNNI` is true only in `run_avx512_vnni`, entered after checking the
                // CPU's AVX-512 F/BW/VL/VNNI; the scratch was sized by `FastModel::scratch` for
                // every PW1 and Winograd layer; the sums fit i16 (`gconv_half` exists only
                // then) and are within the bounds `gconv_wino` was built with; with `ca16` the
                // grouped convolution requantizes (so its i16 output holds codes) and the CA
                // sums of those codes fit i16 (both checked at load).
                unsafe {
                    vnni::dot_conv(x, s.half, g, &c.pw1_dot, s.packed);
                    clock.lap(1);
                    match &c.gconv_wino {
                        Some(wn) if c.ca16 => {
                            winograd::winograd_conv(s.half, s.codes, g, compact, wn, post, s.wino);
                            clock.lap(2);
                            let rq = |o| c.out.get(o);
                            let Pw2Fast::Table(table) = &c.pw2 else {
                                unreachable!("ca16 holds for the table kernel only")
                            };
                            table_conv::<i16, true>(
                                s.codes,
                                compact,
                                f,
                                g,
                                table,
                                Some(&rq),
                                s.table16,
                            );
                            clock.lap(3);
                            return;
                        }
                        Some(wn) => {
                            winograd::winograd_conv(s.half, a2, g, compact, wn, post, s.wino);
                            a2_geom = compact;
                        }
                        None => conv_half(s.half, a2, g, segments, post),
                    }
                }
            } else {
                conv(x, s.half, g, &c.pw1, Post::Store);
                clock.lap(1);
                conv_half(s.half, a2, g, segments, post);
            }
            #[cfg(not(target_arch = "x86_64"))]
            {
                conv(x, s.half, g, &c.pw1, Post::Store);
                clock.lap(1);
                conv_half(s.half, a2, g, segments, post);
            }
        }
        None => {
            conv(x, a1, g, &c.pw1, Post::Store);
            clock.lap(1);
            conv(a1, a2, g, &c.gconv, post);
        }
    }
    clock.lap(2);
    let rq = |o| c.out.get(o);
    match &c.pw2 {
        Pw2Fast::Table(table) => {
            table_conv::<i32, VNNI>(a2, a2_geom, f, g, table, Some(&rq), s.table)
        }
        Pw2Fast::Terms(terms) => conv(a2, f, g, terms, Post::Requant(&rq)),
    }
    clock.lap(3);
}

/// One block on the buffers of geometry `current`: the CFLOG, then an MRB's gate and
/// multiplexer; its output ends in the first buffer.
#[inline(always)]
fn run_block<const VNNI: bool>(
    m: &FastModel,
    block: &FastCflog,
    current: usize,
    s: &mut Scratch,
    clock: &mut Clock,
) {
    let [x, a1, a2, f] = &mut s.bufs[current];
    let g = &m.geoms[block.geom];
    let work = Work {
        half: &mut s.half[current],
        codes: &mut s.codes[current],
        table16: &mut s.table16,
        table: &mut s.table,
        packed: &mut s.packed,
        wino: &mut s.wino,
    };
    cflog::<VNNI>(
        block,
        [g, &m.compact[block.geom]],
        x,
        [a1, a2, f],
        work,
        clock,
    );
    if block.residual {
        let n = block.out.kinds.len();
        let gate = &mut s.gate[..n];
        match m.fixed_gate {
            Some(on) => gate.fill(on),
            None => {
                plane_sums(x, g, n, false, &mut s.sums[..n]);
                for (bit, (&sum, &t)) in gate.iter_mut().zip(s.sums.iter().zip(&block.gate)) {
                    *bit = sum >= t as i64;
                }
            }
        }
        mux(x, f, g, gate, m.avg);
        clock.lap(4);
    }
    std::mem::swap(x, f);
}

/// The network on one image (generic over the instruction set it is inlined into).
#[inline(always)]
fn run<const VNNI: bool>(
    m: &FastModel,
    pixels: &[u8],
    s: &mut Scratch,
    profile: Option<&mut Profile>,
) -> Prediction {
    let mut clock = Clock {
        profile,
        last: None,
    };
    clock.lap(0);
    let g0 = &m.geoms[0];
    for c in 0..m.in_channels {
        for y in 0..g0.h {
            for xx in 0..g0.w {
                s.input[g0.at(c, y, xx)] = pixels[(c * g0.h + y) * g0.w + xx] as i32;
            }
        }
    }
    conv(
        &s.input,
        &mut s.bufs[0][0],
        g0,
        &m.stem,
        Post::Requant(&|o| m.stem_out.get(o)),
    );
    clock.lap(0);
    let mut current = 0;
    for step in &m.steps {
        match step {
            Step::Pool { stage, channels } => {
                let si = *stage;
                let (before, after) = s.bufs.split_at_mut(si);
                let (from, to) = (&m.geoms[si - 1], &m.geoms[si]);
                pool(&before[si - 1][0], from, &mut after[0][0], to, *channels);
                current = si;
                clock.lap(5);
            }
            Step::Block(block) => run_block::<VNNI>(m, block, current, s, &mut clock),
        }
    }
    let g = m.geoms.last().expect("one stage at least");
    let [x, a1, _, _] = &mut s.bufs[current];
    conv(x, a1, g, &m.head, Post::Store);
    let sums = &mut s.sums[..m.classes];
    plane_sums(a1, g, m.classes, true, sums);
    let logits = logits(sums, &m.multipliers, &m.offsets);
    clock.lap(6);
    Prediction {
        class: argmax(&logits),
        logits,
    }
}

#[cfg(test)]
pub(crate) mod isa;
#[cfg(test)]
pub(crate) mod tests;
