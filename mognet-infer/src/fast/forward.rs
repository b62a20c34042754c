//! The forward pass of the fast engine: the CFLOG blocks, the steps between them, and the
//! whole image, compiled once per instruction set.

use super::geom::Geom;
use super::half::conv_half;
use super::kernels::{Post, conv, mux, plane_sums, pool, table_conv};
use super::{Clock, FastCflog, FastModel, Profile, Pw2Fast, Scratch, Step, vnni, winograd};
use crate::engine::Prediction;
use crate::kernels::head::{argmax, logits};

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
pub(super) unsafe fn run_avx512_vnni(
    m: &FastModel,
    pixels: &[u8],
    s: &mut Scratch,
    p: Option<&mut Profile>,
) -> Prediction {
    run::<true>(m, pixels, s, p)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
pub(super) unsafe fn run_avx512(
    m: &FastModel,
    pixels: &[u8],
    s: &mut Scratch,
    p: Option<&mut Profile>,
) -> Prediction {
    run::<false>(m, pixels, s, p)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,bmi1,bmi2")]
pub(super) unsafe fn run_avx2(
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
pub(super) fn run<const VNNI: bool>(
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
