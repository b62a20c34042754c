//! The grouped 3x3 convolution as Winograd F(2x2, 3x3), on i16 PW1 sums with AVX-512 VNNI
//! (`vpdpwssd`).
//!
//! Directly, a 2x2 block of outputs (a *tile*) costs 36 multiply-adds per input channel; F(2x2,
//! 3x3) needs 16. The tile's 4x4 input patch `d` and the 3x3 kernel `g` are transformed
//! (`V = Bᵀ d B`, `U = G g Gᵀ`), multiplied position by position and summed over the group's
//! input channels (`M`), and `M` is transformed back (`Y = Aᵀ M A`). `G` has halves in it; with
//! `2G` every factor is an integer and `Y` comes out exactly 4 times the convolution, so the
//! result is bit-exact after a shift. Ternary weights keep `U` within -9..=9 and PW1 sums keep
//! `V` within i16, so two input channels share each i32 lane of `vpdpwssd` (32 products per
//! instruction, against 32 i16 additions per instruction of [`super::half`] for 9/4 as many
//! products). [`Winograd::new`] checks the bounds that make this exact and declines otherwise.
//!
//! Per group: the input transform writes `V` for every chunk of 16 tiles, position and channel
//! pair; the products run chunk by chunk, all outputs of the group on one chunk while its `V`
//! (8 KiB for 16 channels) is in L1; the output transform's results go straight to the output
//! planes, two pixels per tile and row. The engine has them written without borders (the CA
//! layer after them is 1x1 and then spends no lanes on border columns).

use super::geom::Geom;
#[cfg(target_arch = "x86_64")]
use super::geom::{RowPiece, row_pieces};
use super::kernels::{Element, Post};
#[cfg(target_arch = "x86_64")]
use super::search::{codes16, lanes_mask, run_lanes};
use crate::model::TernaryWeights;

/// Positions of the 4x4 transformed tile.
pub const POSITIONS: usize = 16;

/// Tiles per vector (i32 lanes of a 512-bit register).
pub const TILE_LANES: usize = 16;

/// `2G` of F(2x2, 3x3): `U = (2G) g (2G)ᵀ = 4 G g Gᵀ`, all integers.
const G2: [[i32; 3]; 4] = [[2, 0, 0], [1, 1, 1], [1, -1, 1], [0, 0, 2]];

/// A grouped 3x3 ternary convolution in Winograd form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Winograd {
    /// Groups.
    pub groups: usize,
    /// Input channels per group.
    pub inputs: usize,
    /// Output channels per group.
    pub outputs: usize,
    /// `ceil(inputs / 2)`: channel pairs per group.
    pub pairs: usize,
    /// `weights[(o * pairs + p) * 16 + pos]`: `U` of output `o` at `pos` for the group's input
    /// channels `2p` (low i16) and `2p + 1` (high i16, zero past `inputs`).
    pub weights: Vec<i32>,
    /// Tile rows (`h / 2`).
    pub th: usize,
    /// Tiles per row (`w / 2`).
    pub tw: usize,
    /// Tiles rounded up to [`TILE_LANES`].
    pub lanes: usize,
    /// How the input transform reads each chunk of 16 tiles.
    pub gather: Vec<Gather>,
}

impl Winograd {
    /// The Winograd form of ternary weights `wt` on input planes laid out by `geom` whose values
    /// are bounded by `bounds[c]` (largest `|value|` of input channel `c`). `None` unless the
    /// kernel is 3x3, the map's sides are even, and every intermediate provably fits (`V` in
    /// i16, `M` and `Y` in i32).
    pub fn new(wt: &TernaryWeights, geom: &Geom, bounds: &[i64]) -> Option<Winograd> {
        let TernaryWeights {
            out,
            inputs,
            k,
            groups,
            ref codes,
        } = *wt;
        let (h, w) = (geom.h, geom.w);
        if k != 3 || geom.p != 1 || h == 0 || w == 0 || h % 2 != 0 || w % 2 != 0 {
            return None;
        }
        // A V entry adds four inputs.
        if bounds.iter().any(|&b| 4 * b > i16::MAX as i64) {
            return None;
        }
        let (ipg, opg) = (inputs / groups, out / groups);
        let pairs = ipg.div_ceil(2);
        let mut weights = vec![0i32; out * POSITIONS * pairs];
        for o in 0..out {
            let group = o / opg;
            let mut bound = 0i64;
            for j in 0..ipg {
                let g = &codes[(o * ipg + j) * 9..][..9];
                let u = transform_kernel(g);
                for (pos, &v) in u.iter().enumerate() {
                    bound += v.unsigned_abs() as i64 * 4 * bounds[group * ipg + j];
                    let half = (v as i16 as u16 as u32) << (16 * (j % 2));
                    weights[(o * pairs + j / 2) * POSITIONS + pos] |= half as i32;
                }
            }
            // Every sum the kernel forms (the products' accumulators and the output
            // transform's combinations of them) is bounded by this.
            if bound > i32::MAX as i64 {
                return None;
            }
        }
        let tiles = (h / 2) * (w / 2);
        Some(Winograd {
            groups,
            inputs: ipg,
            outputs: opg,
            pairs,
            weights,
            th: h / 2,
            tw: w / 2,
            lanes: tiles.div_ceil(TILE_LANES) * TILE_LANES,
            gather: (0..tiles.div_ceil(TILE_LANES))
                .map(|c| Gather::new(c * TILE_LANES, h / 2, w / 2, geom.s))
                .collect(),
        })
    }

    /// Tiles in chunk `chunk` (16 but in the last one).
    pub fn chunk_tiles(&self, chunk: usize) -> usize {
        (self.th * self.tw - chunk * TILE_LANES).min(TILE_LANES)
    }

    /// The tiles of chunk `chunk`, tile row by tile row: how the input transform reads them
    /// (maps too wide for a window) and how the output transform stores them.
    #[cfg(target_arch = "x86_64")]
    fn chunk_row_pieces(&self, chunk: usize) -> impl Iterator<Item = RowPiece> {
        row_pieces(chunk * TILE_LANES, self.chunk_tiles(chunk), self.tw)
    }

    /// i32 scratch: `V` of one group, `v[((chunk * pairs + p) * 16 + pos) * 16 + lane]` for
    /// tile `16 chunk + lane`.
    pub fn scratch_len(&self) -> usize {
        POSITIONS * self.pairs * self.lanes
    }
}

/// `U = (2G) g (2G)ᵀ` of a 3x3 kernel, row-major over the 4x4 positions.
fn transform_kernel(g: &[i8]) -> [i32; POSITIONS] {
    let mut u = [0i32; POSITIONS];
    for r in 0..4 {
        for c in 0..4 {
            let mut sum = 0;
            for a in 0..3 {
                for b in 0..3 {
                    sum += G2[r][a] * g[a * 3 + b] as i32 * G2[c][b];
                }
            }
            u[r * 4 + c] = sum;
        }
    }
    u
}

/// How the input transform reads a chunk's 16 tiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gather {
    /// All the tiles' patch columns lie in a window of 64 i16 of each patch row: two loads and
    /// one permutation per row give lanes of `(c0, c1)` (and, shifted by 2, `(c2, c3)`). `start`
    /// is the window's offset from one before the plane's first layout row; `index[2l]` and
    /// `index[2l + 1]` locate tile `l`'s first two columns in it.
    Window {
        /// First i16 of the window.
        start: usize,
        /// Length of the window (at most 64).
        len: usize,
        /// Permutation of the window for column pair `(c0, c1)`.
        index: [i16; 32],
    },
    /// The tiles, row piece by row piece (maps too wide for a window).
    Rows,
}

impl Gather {
    /// The plan for tiles `t0..t0 + 16` (those below `th * tw`) of a map with row stride `s`.
    fn new(t0: usize, th: usize, tw: usize, s: usize) -> Gather {
        let col = |t: usize| 2 * (t / tw) * s + 2 * (t % tw);
        let tiles: Vec<usize> = (t0..(t0 + TILE_LANES).min(th * tw)).collect();
        let start = col(t0);
        let len = tiles.iter().map(|&t| col(t) - start + 4).max().unwrap_or(4);
        if len > 64 {
            return Gather::Rows;
        }
        let mut index = [0i16; 32];
        for (l, &t) in tiles.iter().enumerate() {
            index[2 * l] = (col(t) - start) as i16;
            index[2 * l + 1] = (col(t) - start + 1) as i16;
        }
        Gather::Window { start, len, index }
    }
}

/// The rows of `Bᵀ d` for the pairs `(c0, c1)` and `(c2, c3)` of the group's channel `j`, for
/// the tiles of chunk `chunk` that `piece` covers (`(first lane, tiles, column offset)`; the
/// whole chunk for a [`Gather::Window`]). Zero for a channel past the group's inputs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
#[inline]
fn patch_rows(
    input: &[i16],
    geom: &Geom,
    wn: &Winograd,
    group: usize,
    chunk: usize,
    j: usize,
    (lane, n, at): (usize, usize, usize),
) -> [[std::arch::x86_64::__m512i; 4]; 2] {
    use std::arch::x86_64::*;
    let zero = _mm512_setzero_si512();
    if j >= wn.inputs {
        return [[zero; 4]; 2];
    }
    // Patch row r of tile row ty is interior row 2ty + r - 1 (layout row 2ty + r); its column
    // c of tile tx is interior column 2tx + c - 1, read from one before the row's first pixel
    // (the border column that ends the row above).
    let origin = geom.front + (group * wn.inputs + j) * geom.plane - 1;
    let mut x = [[zero; 4]; 2];
    for r in 0..4 {
        let row = origin + r * geom.s;
        [x[0][r], x[1][r]] = match &wn.gather[chunk] {
            Gather::Window { start, len, index } => window_row(input, row + start, *len, index),
            Gather::Rows => piece_row(input, row + at, lane, n),
        };
    }
    x.map(|x| {
        [
            _mm512_sub_epi16(x[0], x[2]),
            _mm512_add_epi16(x[1], x[2]),
            _mm512_sub_epi16(x[2], x[1]),
            _mm512_sub_epi16(x[1], x[3]),
        ]
    })
}

/// Column pairs `(c0, c1)` and `(c2, c3)` of a chunk's 16 tiles in one patch row, read from
/// the window `input[at..at + len]` and placed by `index` (see [`Gather::Window`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
#[inline]
fn window_row(
    input: &[i16],
    at: usize,
    len: usize,
    index: &[i16; 32],
) -> [std::arch::x86_64::__m512i; 2] {
    use std::arch::x86_64::*;
    assert!(at + len <= input.len(), "input plane out of bounds");
    let m = |from: usize| -> __mmask32 {
        let n = len.saturating_sub(from).min(32);
        if n == 32 { !0 } else { (1 << n) - 1 }
    };
    // SAFETY: the masks select `input[at..at + len]`, in bounds (asserted); masked-off lanes
    // are not accessed, and the second load's address is formed with `wrapping_add` (its mask
    // is empty when `len <= 32`).
    let (lo, hi) = unsafe {
        let base = input.as_ptr().wrapping_add(at);
        (
            _mm512_maskz_loadu_epi16(m(0), base),
            _mm512_maskz_loadu_epi16(m(32), base.wrapping_add(32)),
        )
    };
    // SAFETY: `index` is 32 i16, 64 bytes.
    let idx = unsafe { _mm512_loadu_si512(index.as_ptr().cast()) };
    let idx2 = _mm512_add_epi16(idx, _mm512_set1_epi16(2));
    [
        _mm512_permutex2var_epi16(lo, idx, hi),
        _mm512_permutex2var_epi16(lo, idx2, hi),
    ]
}

/// Column pairs `(c0, c1)` and `(c2, c3)` of tiles `lane..lane + n` of a chunk in one patch
/// row, one row piece read from `input[at..]`; the other lanes zero.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
#[inline]
fn piece_row(input: &[i16], at: usize, lane: usize, n: usize) -> [std::arch::x86_64::__m512i; 2] {
    use std::arch::x86_64::*;
    assert!(at + 2 + 2 * n <= input.len(), "input plane out of bounds");
    let m: __mmask32 = if n == 16 { !0 } else { (1 << (2 * n)) - 1 };
    // SAFETY: the masks select `input[at..at + 2n]` and `input[at + 2..at + 2 + 2n]`, in
    // bounds (asserted).
    let (a, b) = unsafe {
        (
            _mm512_maskz_loadu_epi16(m, input.as_ptr().add(at)),
            _mm512_maskz_loadu_epi16(m, input.as_ptr().add(at + 2)),
        )
    };
    // Into lanes `lane..`: whole i32 lanes, so shift by `lane` dwords.
    let shift = _mm512_sub_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(lane as i32),
    );
    let keep = lanes_mask(lane + n) & !lanes_mask(lane);
    [
        _mm512_maskz_permutexvar_epi32(keep, shift, a),
        _mm512_maskz_permutexvar_epi32(keep, shift, b),
    ]
}

/// The input transform of chunk `chunk` (tiles `16 chunk..`) of the group's channel pair `p`
/// into `v`.
///
/// Each tile's four patch columns come as two i32 lanes of i16 pairs, `(c0, c1)` and
/// `(c2, c3)`; the rows of `Bᵀ d` are additions of those, and its columns come out of one
/// subtraction (`c0 - c2` low, `c1 - c3` high) and, with the first pair's halves swapped, one
/// addition (`c1 + c2`) and one subtraction (`c2 - c1`).
///
/// # Safety
/// The CPU must support AVX-512 F and BW; `input` is laid out by `geom` with the group's
/// channels.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
unsafe fn transform_inputs(
    input: &[i16],
    geom: &Geom,
    wn: &Winograd,
    group: usize,
    p: usize,
    chunk: usize,
    v: &mut [i32],
) {
    use std::arch::x86_64::*;
    let zero = _mm512_setzero_si512();
    // The columns of (Bᵀ d) B for patch row r: positions 4r..4r + 4, each in the low i16 of
    // its lanes except position 4r + 3 (high).
    let cols = |a: __m512i, b: __m512i| {
        let swapped = _mm512_rol_epi32::<16>(a);
        let diff = _mm512_sub_epi16(a, b);
        [
            diff,
            _mm512_add_epi16(swapped, b),
            _mm512_sub_epi16(b, swapped),
            diff,
        ]
    };
    let pieces = ReadPieces::new(wn, geom, chunk);
    let mut x = [[[zero; 4]; 2]; 2];
    for &(lane, n, at) in pieces.as_slice() {
        for (half, x) in x.iter_mut().enumerate() {
            let part = patch_rows(input, geom, wn, group, chunk, 2 * p + half, (lane, n, at));
            for k in 0..2 {
                for r in 0..4 {
                    x[k][r] = _mm512_or_si512(x[k][r], part[k][r]);
                }
            }
        }
    }
    let block = (chunk * wn.pairs + p) * POSITIONS * TILE_LANES;
    for r in 0..4 {
        let c0 = cols(x[0][0][r], x[0][1][r]);
        let c1 = cols(x[1][0][r], x[1][1][r]);
        store_pairs(
            c0,
            c1,
            &mut v[block + 4 * r * TILE_LANES..][..4 * TILE_LANES],
        );
    }
}

/// Stores the four positions of one patch row of `V` (`c0` of channel `2p`, `c1` of `2p + 1`)
/// into `v`, 16 lanes per position: channel `2p`'s value in the low i16 of each lane, `2p +
/// 1`'s in the high one. Position 3 comes in the high i16 of its lanes, the others in the low.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
#[inline]
fn store_pairs(
    c0: [std::arch::x86_64::__m512i; 4],
    c1: [std::arch::x86_64::__m512i; 4],
    v: &mut [i32],
) {
    use std::arch::x86_64::*;
    assert!(v.len() >= 4 * TILE_LANES, "transform scratch too small");
    for c in 0..4 {
        let pair = if c == 3 {
            _mm512_mask_blend_epi16(0xAAAA_AAAA, _mm512_srli_epi32::<16>(c0[c]), c1[c])
        } else {
            _mm512_mask_blend_epi16(0xAAAA_AAAA, c0[c], _mm512_slli_epi32::<16>(c1[c]))
        };
        // SAFETY: `16 c + 16 <= v.len()` (asserted above).
        unsafe { _mm512_storeu_si512(v.as_mut_ptr().add(c * TILE_LANES).cast(), pair) };
    }
}

/// The pieces the input transform reads a chunk's tiles in: `(first lane, tiles, column
/// offset)`, one per tile row the chunk touches for [`Gather::Rows`], the whole chunk at once
/// for a [`Gather::Window`].
#[cfg(target_arch = "x86_64")]
struct ReadPieces {
    pieces: [(usize, usize, usize); TILE_LANES],
    count: usize,
}

#[cfg(target_arch = "x86_64")]
impl ReadPieces {
    /// The pieces of chunk `chunk` of `wn`, on planes laid out by `geom`.
    fn new(wn: &Winograd, geom: &Geom, chunk: usize) -> ReadPieces {
        let mut plan = ReadPieces {
            pieces: [(0, 0, 0); TILE_LANES],
            count: 0,
        };
        match &wn.gather[chunk] {
            Gather::Window { .. } => {
                plan.pieces[0] = (0, TILE_LANES, 0);
                plan.count = 1;
            }
            Gather::Rows => {
                for p in wn.chunk_row_pieces(chunk) {
                    plan.pieces[plan.count] = (p.at, p.len, 2 * p.y * geom.s + 2 * p.x);
                    plan.count += 1;
                }
            }
        }
        plan
    }

    fn as_slice(&self) -> &[(usize, usize, usize)] {
        &self.pieces[..self.count]
    }
}

/// `acc + (a.lo * b.lo + a.hi * b.hi)` per i32 lane (i16 halves): `vpdpwssd`, written out
/// because LLVM otherwise splits it into `vpmaddwd` and `vpaddd` for a generic x86-64 target.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
#[inline]
fn dpwssd(
    acc: std::arch::x86_64::__m512i,
    a: std::arch::x86_64::__m512i,
    b: std::arch::x86_64::__m512i,
) -> std::arch::x86_64::__m512i {
    let mut acc = acc;
    // SAFETY: register-only arithmetic; the function is compiled for AVX-512 VNNI.
    unsafe {
        std::arch::asm!(
            "vpdpwssd {acc}, {a}, {b}",
            acc = inout(zmm_reg) acc,
            a = in(zmm_reg) a,
            b = in(zmm_reg) b,
            options(pure, nomem, nostack, preserves_flags),
        )
    };
    acc
}

/// The products, the output transform and the stores of one group.
///
/// # Safety
/// The CPU must support AVX-512 F, BW and VNNI.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
unsafe fn multiply<O: Output>(
    wn: &Winograd,
    group: usize,
    v: &[i32],
    output: &mut [O],
    to: &Geom,
    post: Post,
) {
    use std::arch::x86_64::*;
    let weights = wn.pairs * POSITIONS;
    let block = weights * TILE_LANES;
    let first = group * wn.outputs;
    // Lane i of `lo` / `hi`: output column 2x + b of tile i / 2 (+ 8), b = i % 2.
    let lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    let hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    for chunk in 0..wn.lanes / TILE_LANES {
        let vc = &v[chunk * block..][..block];
        let stores = ChunkStores::new(wn, chunk, to);
        for o in first..first + wn.outputs {
            let m = products(vc, &wn.weights[o * weights..][..weights]);
            let rq = match post {
                Post::Store => None,
                Post::Requant(rq) => Some(rq(o)),
            };
            for (a, mut y) in output_rows(&m).into_iter().enumerate() {
                if let Some(rq) = rq {
                    // SAFETY: compiled for AVX-512; the engine's thresholds are sorted.
                    y = unsafe { [codes16(y[0], rq), codes16(y[1], rq)] };
                }
                // Output row 2ty + a of each tile, its two columns side by side.
                let pixels = [
                    _mm512_permutex2var_epi32(y[0], lo, y[1]),
                    _mm512_permutex2var_epi32(y[0], hi, y[1]),
                ];
                // SAFETY: the caller's contract on the CPU.
                unsafe { stores.write(output, to.at(o, a, 0), pixels) };
            }
        }
    }
}

/// Where one chunk's output rows go, worked out once for all its outputs: register `r` of a
/// row's `pixels` is stored at `base + at` (`base` the row's start in the output plane), lanes
/// `keep` only.
#[cfg(target_arch = "x86_64")]
struct ChunkStores {
    /// `(r, at, keep)`: one per row piece, or two for the one piece that may straddle both
    /// registers: at most 17. The first `count` are used.
    stores: [(usize, usize, u16); TILE_LANES + 1],
    count: usize,
    /// Bounds every selected lane's destination, from `base`.
    end: usize,
}

#[cfg(target_arch = "x86_64")]
impl ChunkStores {
    /// The stores of chunk `chunk` of `wn` into planes laid out by `to`.
    fn new(wn: &Winograd, chunk: usize, to: &Geom) -> ChunkStores {
        let mut plan = ChunkStores {
            stores: [(0, 0, 0); TILE_LANES + 1],
            count: 0,
            end: 0,
        };
        for piece in wn.chunk_row_pieces(chunk) {
            let (i, n) = (piece.at, piece.len);
            let at = to.at(0, 2 * piece.y, 2 * piece.x) - to.at(0, 0, 0);
            plan.end = plan.end.max(at + 2 * n);
            // Values 2i..2i + 2n of `pixels` (16 per register) go to `at..at + 2n`.
            for r in 0..2 {
                if let Some(keep) = run_lanes(r, 2 * i, 2 * (i + n)) {
                    plan.stores[plan.count] = (r, (at + 16 * r).wrapping_sub(2 * i), keep);
                    plan.count += 1;
                }
            }
        }
        plan
    }

    /// Stores one output row of the chunk's tiles (`pixels`, two registers of 16 i32) into the
    /// row starting at `output[base]`.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F, BW and VL; the values fit `O`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
    #[inline]
    unsafe fn write<O: Output>(
        &self,
        output: &mut [O],
        base: usize,
        pixels: [std::arch::x86_64::__m512i; 2],
    ) {
        assert!(
            base + self.end <= output.len(),
            "output plane out of bounds"
        );
        for &(r, at, keep) in &self.stores[..self.count] {
            // SAFETY: lane l of the store lands on `base + at + l`; `keep` selects the lanes of
            // one row piece, whose destinations lie in `base..base + end` (asserted in bounds).
            // The base pointer may lie outside the slice, hence `wrapping_add`; only selected
            // lanes are written. The caller vouches for the CPU and the values.
            unsafe {
                O::store(
                    output.as_mut_ptr().wrapping_add(base.wrapping_add(at)),
                    keep,
                    pixels[r],
                )
            };
        }
    }
}

/// `M` of one output on one chunk: its `U` (`w`, 16 positions per channel pair) times the
/// chunk's `V` (`v`, 16 tiles per position and pair), summed over the group's channel pairs;
/// one register of 16 tiles per position.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
#[inline]
fn products(v: &[i32], w: &[i32]) -> [std::arch::x86_64::__m512i; POSITIONS] {
    use std::arch::x86_64::*;
    assert!(w.len().is_multiple_of(POSITIONS) && v.len() >= w.len() * TILE_LANES);
    let (vb, wb) = (v.as_ptr(), w.as_ptr());
    let mut m = [_mm512_setzero_si512(); POSITIONS];
    // Channel pairs outside, positions inside: 16 independent accumulation chains.
    for p in 0..w.len() / POSITIONS {
        for (pos, m) in m.iter_mut().enumerate() {
            let i = p * POSITIONS + pos;
            // SAFETY: `i < w.len()`, so `wb + i` lies in `w` and the 16 lanes at `vb + 16 i`
            // in `v` (both asserted above); unaligned loads are allowed.
            let (x, wv) = unsafe {
                (
                    _mm512_loadu_si512(vb.add(i * TILE_LANES).cast()),
                    _mm512_set1_epi32(*wb.add(i)),
                )
            };
            *m = dpwssd(*m, x, wv);
        }
    }
    m
}

/// `Y = Aᵀ M A` with `Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]]`, divided by the factor 4 of `2G`:
/// `[a][b]` holds output row `a`, column `b` of each tile.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
#[inline]
fn output_rows(
    m: &[std::arch::x86_64::__m512i; POSITIONS],
) -> [[std::arch::x86_64::__m512i; 2]; 2] {
    use std::arch::x86_64::*;
    let mut rows = [[_mm512_setzero_si512(); 4]; 2];
    for c in 0..4 {
        let (m0, m1, m2, m3) = (m[c], m[4 + c], m[8 + c], m[12 + c]);
        rows[0][c] = _mm512_add_epi32(_mm512_add_epi32(m0, m1), m2);
        rows[1][c] = _mm512_sub_epi32(_mm512_sub_epi32(m1, m2), m3);
    }
    let mut y = [[_mm512_setzero_si512(); 2]; 2];
    for (y, &[t0, t1, t2, t3]) in y.iter_mut().zip(&rows) {
        y[0] = _mm512_srai_epi32::<2>(_mm512_add_epi32(_mm512_add_epi32(t0, t1), t2));
        y[1] = _mm512_srai_epi32::<2>(_mm512_sub_epi32(_mm512_sub_epi32(t1, t2), t3));
    }
    y
}

/// An output element of the Winograd kernel: i32, or i16 for codes.
pub trait Output: Element {
    /// Stores the i32 lanes of `px` selected by `keep` at `dst` (lane `l` at `dst + l`),
    /// narrowed to `Self`.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F, BW and VL; every selected lane's destination is valid
    /// for writes (the others are not accessed); the values fit `Self`.
    #[cfg(target_arch = "x86_64")]
    unsafe fn store(dst: *mut Self, keep: u16, px: std::arch::x86_64::__m512i);
}

impl Output for i32 {
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn store(dst: *mut i32, keep: u16, px: std::arch::x86_64::__m512i) {
        // SAFETY: the caller's contract.
        unsafe { std::arch::x86_64::_mm512_mask_storeu_epi32(dst, keep, px) }
    }
}

impl Output for i16 {
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn store(dst: *mut i16, keep: u16, px: std::arch::x86_64::__m512i) {
        use std::arch::x86_64::*;
        // SAFETY: the caller's contract (the values fit i16, so `vpmovdw` keeps them).
        unsafe { _mm256_mask_storeu_epi16(dst, keep, _mm512_cvtepi32_epi16(px)) }
    }
}

/// The grouped 3x3 convolution of i16 planes `input` (laid out by `geom`) into `output` (laid
/// out by `to`, the same map with any border), writing its pixels only. `scratch` holds
/// [`Winograd::scratch_len`] i32. An i16 `output` takes codes only (`post` requantizes).
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL, DQ and VNNI; `input` values are within the bounds
/// `wn` was built with.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
pub unsafe fn winograd_conv<O: Output>(
    input: &[i16],
    output: &mut [O],
    geom: &Geom,
    to: &Geom,
    wn: &Winograd,
    post: Post,
    scratch: &mut [i32],
) {
    assert_eq!((geom.h, geom.w), (to.h, to.w), "output map of another size");
    assert!(
        size_of::<O>() == 4 || matches!(post, Post::Requant(_)),
        "an i16 output holds codes, not sums"
    );
    for group in 0..wn.groups {
        for chunk in 0..wn.gather.len() {
            for p in 0..wn.pairs {
                // SAFETY: the caller's contract on the CPU and the layout.
                unsafe { transform_inputs(input, geom, wn, group, p, chunk, scratch) };
            }
        }
        // SAFETY: the caller's contract on the CPU.
        unsafe { multiply(wn, group, scratch, output, to, post) };
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::fast::half::{Segments, conv_half};
    use crate::fast::tests::Alternating;
    use mognet_arch::rng::SplitMix64;

    #[test]
    fn transformed_kernels_are_four_times_the_tile_products() {
        // A single 1 at (1, 1): U = (2G)[:, 1] (2G)[:, 1]ᵀ.
        let mut g = [0i8; 9];
        g[4] = 1;
        let col = [0, 1, -1, 0];
        let want: Vec<i32> = (0..16).map(|i| col[i / 4] * col[i % 4]).collect();
        assert_eq!(transform_kernel(&g).to_vec(), want);
        // All ones: the centre position sums all nine.
        assert_eq!(transform_kernel(&[1; 9])[5], 9);
        assert_eq!(transform_kernel(&[1; 9])[0], 4);
    }

    #[test]
    fn matches_the_i16_kernel_on_random_shapes_and_extreme_values() {
        if !crate::fast::isa::test_needs(
            crate::fast::Variant::Avx512Vnni,
            "matches_the_i16_kernel_on_random_shapes_and_extreme_values",
        ) {
            return;
        }
        let mut rng = SplitMix64::new(21);
        let mut gathers = [0usize; 2];
        for case in 0..40 {
            let groups = [1, 2, 4][case % 3];
            let ipg = 1 + (rng.next_u64() % 17) as usize;
            let opg = 1 + (rng.next_u64() % 6) as usize;
            let (inputs, out) = (ipg * groups, opg * groups);
            let h = 2 * (1 + (rng.next_u64() % 9) as usize);
            let w = 2 * (1 + (rng.next_u64() % 18) as usize);
            let geom = Geom::new(h, w, 1);
            let bounds: Vec<i64> = (0..inputs)
                .map(|_| 1 + (rng.next_u64() % 8191) as i64)
                .collect();
            let mut input = vec![0i16; geom.buffer_len(inputs.max(out))];
            for c in 0..inputs {
                for y in 0..h {
                    for x in 0..w {
                        let b = bounds[c];
                        input[geom.at(c, y, x)] = match rng.next_u64() % 4 {
                            0 => b as i16,
                            1 => -b as i16,
                            _ => ((rng.next_u64() % (2 * b as u64 + 1)) as i64 - b) as i16,
                        };
                    }
                }
            }
            let codes: Vec<i8> = (0..out * ipg * 9)
                .map(|_| (rng.next_u64() % 3) as i8 - 1)
                .collect();
            let weights = TernaryWeights {
                out,
                inputs,
                k: 3,
                groups,
                codes,
            };
            let wn = Winograd::new(&weights, &geom, &bounds).expect("bounds within i16 / 4");
            for g in &wn.gather {
                gathers[matches!(g, Gather::Rows) as usize] += 1;
            }
            let segs = Segments::new(&weights, &geom, &bounds).unwrap();
            let thresholds = Alternating::new(-3000, 1000);
            let rq = |o: usize| thresholds.rq(o);
            // Into the same layout and into one without borders.
            let compact = Geom::new(h, w, 0);
            for (post, to) in [
                (Post::Store, &geom),
                (Post::Requant(&rq), &geom),
                (Post::Store, &compact),
            ] {
                let mut want = vec![i32::MIN; input.len()];
                conv_half(&input, &mut want, &geom, &segs, post);
                let mut got = vec![i32::MIN; input.len()];
                let mut scratch = vec![0; wn.scratch_len()];
                // SAFETY: VNNI checked above; inputs within the bounds.
                unsafe { winograd_conv(&input, &mut got, &geom, to, &wn, post, &mut scratch) };
                for o in 0..out {
                    for y in 0..h {
                        for x in 0..w {
                            let (at, want) = (to.at(o, y, x), want[geom.at(o, y, x)]);
                            assert_eq!(got[at], want, "case {case}: ({o}, {y}, {x})");
                        }
                    }
                }
            }
            // Codes as i16, without borders.
            let mut want = vec![i32::MIN; input.len()];
            conv_half(&input, &mut want, &geom, &segs, Post::Requant(&rq));
            let mut got = vec![i16::MIN; compact.buffer_len(out)];
            let mut scratch = vec![0; wn.scratch_len()];
            // SAFETY: VNNI checked above; inputs within the bounds; codes fit i16.
            unsafe {
                winograd_conv(
                    &input,
                    &mut got,
                    &geom,
                    &compact,
                    &wn,
                    Post::Requant(&rq),
                    &mut scratch,
                )
            };
            for o in 0..out {
                for y in 0..h {
                    for x in 0..w {
                        let (at, want) = (compact.at(o, y, x), want[geom.at(o, y, x)]);
                        assert_eq!(got[at] as i32, want, "case {case}: i16 ({o}, {y}, {x})");
                    }
                }
            }
        }
        assert!(
            gathers[0] > 0 && gathers[1] > 0,
            "both gathers must be tested: {gathers:?}"
        );
    }

    #[test]
    fn declines_what_it_cannot_compute_exactly() {
        let ones = |k: usize| TernaryWeights {
            out: 1,
            inputs: 1,
            k,
            groups: 1,
            codes: vec![1; k * k],
        };
        let even = Geom::new(4, 4, 1);
        assert!(Winograd::new(&ones(3), &even, &[8191]).is_some());
        // V would overflow i16.
        assert!(Winograd::new(&ones(3), &even, &[8192]).is_none());
        // Odd sides, other kernel sizes.
        assert!(Winograd::new(&ones(3), &Geom::new(5, 4, 1), &[1]).is_none());
        assert!(Winograd::new(&ones(1), &Geom::new(4, 4, 0), &[1]).is_none());
    }
}
