//! The fast engine's inner loops, on chunks of [`CHUNK`] i32.
//!
//! They are plain Rust on fixed-size arrays, all `#[inline(always)]`: each dispatch variant
//! (`fast::Variant`) inlines them into a function compiled with its own target features, where
//! LLVM keeps a chunk's accumulators in vector registers (four zmm with AVX-512, eight ymm with
//! AVX2). A ternary convolution adds the shifted input planes of its +1 weights and subtracts
//! those of its -1 weights: zeros cost nothing, and the CA layer's +-1 rows are the same loop.

use super::geom::{CHUNK, Geom, Span, row_pieces, with_width};

/// The nonzero weights of a ternary convolution, as plane offsets per output channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terms {
    /// Offsets `c * plane + tap` into the input buffer (relative to its first plane).
    pub offsets: Vec<isize>,
    /// Per output channel: `plus = offsets[a..b]`, `minus = offsets[b..c]`.
    pub ranges: Vec<(usize, usize, usize)>,
}

impl Terms {
    /// Terms of weights `[out, in/groups, k, k]` for input planes laid out by `geom`.
    pub fn new(
        codes: &[i8],
        out: usize,
        inputs: usize,
        k: usize,
        groups: usize,
        geom: &Geom,
    ) -> Terms {
        let mut offsets = Vec::new();
        let mut ranges = Vec::with_capacity(out);
        for o in 0..out {
            let a = offsets.len();
            offsets.extend(signed_taps(codes, o, out, inputs, k, groups, geom, 1).map(|t| t.1));
            let b = offsets.len();
            offsets.extend(signed_taps(codes, o, out, inputs, k, groups, geom, -1).map(|t| t.1));
            ranges.push((a, b, offsets.len()));
        }
        Terms { offsets, ranges }
    }

    /// Nonzero weights in all.
    pub fn count(&self) -> usize {
        self.offsets.len()
    }
}

/// The weights equal to `sign` of output `o` of a ternary convolution `[out, in/groups, k, k]`,
/// as `(input channel, plane offset)` for input planes laid out by `geom`.
pub fn signed_taps<'a>(
    codes: &'a [i8],
    o: usize,
    out: usize,
    inputs: usize,
    k: usize,
    groups: usize,
    geom: &'a Geom,
    sign: i8,
) -> impl Iterator<Item = (usize, isize)> + 'a {
    let ipg = inputs / groups;
    let g = o / (out / groups);
    (0..ipg * k * k).filter_map(move |j| {
        let (i, tap) = (j / (k * k), j % (k * k));
        (codes[o * ipg * k * k + j] == sign).then(|| {
            let c = g * ipg + i;
            (c, (c * geom.plane) as isize + geom.tap(k, tap / k, tap % k))
        })
    })
}

/// A 1x1 convolution with +-1 weights (the CA layer) as table lookups.
///
/// Input channels go in blocks of `width`. For each block and pixel chunk the kernel builds the
/// `2^width` subset sums of the block's planes (with `w = 2b - 1`, `out = 2 * sum(subsets) -
/// sum(all)`). An output is then one lookup per block instead of `width` additions. Blocks are
/// the outer loop, so each table stays in L1 while every output reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableConv {
    /// Input channels.
    pub inputs: usize,
    /// Output channels.
    pub outputs: usize,
    /// Input channels per block (1..=8).
    pub width: usize,
    /// `ceil(inputs / width)`.
    pub blocks: usize,
    /// `rows[o * blocks + b]`: the scratch row output `o` reads for block `b`: the entry
    /// `code` (bit `i` set where input `width * b + i` has weight +1) of the table of block
    /// `b`, whose place in its group is `b % group()`. Stored whole so that a lookup is a
    /// load and an add (entry, block and group arithmetic measured 3.3 cycles per lookup), in
    /// a byte: a group's tables fill at most [`TABLE_BYTES`] (256 rows of [`ROW_BYTES`]), or
    /// one table of at most 256 entries (bytes instead of u16 measured 2% faster on mognet-m).
    pub rows: Vec<u8>,
}

impl TableConv {
    /// The table form of `[out][in]` +-1 weights, `width` inputs per block.
    pub fn new(weights: &[i8], outputs: usize, inputs: usize, width: usize) -> TableConv {
        assert!(
            (1..=8).contains(&width),
            "table width {width} outside 1..=8"
        );
        let blocks = inputs.div_ceil(width);
        let mut t = TableConv {
            inputs,
            outputs,
            width,
            blocks,
            rows: Vec::with_capacity(blocks * outputs),
        };
        let (entries, group) = (t.entries(), t.group());
        for o in 0..outputs {
            for b in 0..blocks {
                let mut code = 0u32;
                for i in (0..width).rev() {
                    let j = width * b + i;
                    let plus = j < inputs && weights[o * inputs + j] > 0;
                    code = code * 2 + plus as u32;
                }
                let row = (b % group) * entries + code as usize;
                t.rows
                    .push(u8::try_from(row).expect("a group's tables have at most 256 rows"));
            }
        }
        t
    }

    /// Table entries per block.
    pub fn entries(&self) -> usize {
        1 << self.width
    }

    /// Whether [`table_conv`] may keep its sums in i16 for inputs within `0..=max`: table
    /// entries, partial sums and outputs `2 * sum(plus) - sum(all)` then lie within `±inputs *
    /// max` (`2 * sum(plus)` may wrap on the way; the difference does not).
    pub fn fits_i16(&self, max: i64) -> bool {
        max >= 0 && self.inputs as i64 * max <= i16::MAX as i64
    }
}

/// Input channels per table block in the engine. Fewer vector additions would be needed with 5
/// or 6 (the tables cost `2^w` per block, the lookups one per block and output), but their
/// tables crowd L1: mognet-m at batch 1 measured 657-670 img/s with 5 and 575-586 with 6,
/// against 680-695 with 4 (A/B, 2026-11-27).
pub const TABLE_WIDTH: usize = 4;

/// Bytes per table row: two 512-bit registers, so that each table lookup's scalar work (code
/// byte, address) serves two vector additions; one register measured slower.
pub const ROW_BYTES: usize = 128;

/// Builds block `b`'s table at `base` (planes `plane` apart) into `tab`; returns the block's
/// plain sum.
#[inline(always)]
fn build_table<const N: usize, E: Element>(
    input: &[E],
    base: usize,
    plane: usize,
    t: &TableConv,
    b: usize,
    tab: &mut [[E; N]],
) -> [E; N] {
    let zero = [E::default(); N];
    let mut sum = zero;
    tab[0] = zero;
    let mut size = 1;
    for i in 0..t.width {
        let j = t.width * b + i;
        let x: [E; N] = if j < t.inputs {
            let at = base + j * plane;
            input[at..at + N].try_into().expect("chunk in bounds")
        } else {
            zero
        };
        for l in 0..N {
            sum[l] = sum[l].wrapping_add(x[l]);
        }
        // Entry e + 2^i: subset e plus input i (bit i is the input's weight being +1).
        for e in 0..size {
            let mut v = tab[e];
            for l in 0..N {
                v[l] = v[l].wrapping_add(x[l]);
            }
            tab[e + size] = v;
        }
        size *= 2;
    }
    sum
}

/// Bytes of tables worked on at once: 256 rows, the most a row byte can name. Fewer groups
/// mean fewer partial-sum rows written and read back; mognet-m measured 998-1009 img/s at batch
/// 1 and 1953-1971 at batch 64 / 2 threads with 32 KiB, against 955-969 and 1870-1905 with 16
/// KiB and 943-989 and 1851-1892 with 24 KiB (A/B, 2026-11-27), though 32 KiB fills a 32 KiB L1.
pub const TABLE_BYTES: usize = 32 * 1024;

impl TableConv {
    /// Blocks whose tables are built and read together (all of them when they fit
    /// [`TABLE_BYTES`]).
    pub fn group(&self) -> usize {
        let per_block = self.entries() * ROW_BYTES;
        (TABLE_BYTES / per_block).clamp(1, self.blocks.max(1))
    }

    /// Rows of [`ROW_BYTES`] of scratch that [`table_conv`] needs: the tables of one group of
    /// blocks, and a partial sum per output when there are several groups.
    pub fn scratch_rows(&self) -> usize {
        let partial = if self.group() < self.blocks {
            self.outputs
        } else {
            0
        };
        self.group() * self.entries() + partial
    }
}

/// The table convolution of `input` (laid out by `from`) into `output` (laid out by `to`, the
/// same map); stores the accumulators, or (with `rq`) the codes with border columns zeroed.
/// `scratch` holds [`TableConv::scratch_rows`] rows of [`Element::TCHUNK`] elements. `SEARCH`
/// requantizes with [`super::search`] (only where inlined into a function compiled for
/// AVX-512; the thresholds must be sorted).
///
/// The tables and sums are kept in `E`: with i16 (where the caller has proved that every sum
/// of `t.inputs` values of `input` fits it, [`TableConv::fits_i16`]) a row holds twice the
/// pixels, which halves the loads and additions per pixel.
///
/// The kernel runs over `from`'s flat range. When `from` has no border (`p = 0`, the layout the
/// Winograd kernel writes) and `to` has one, no lane is spent on border columns: the codes go
/// to `to` row by row, and `to`'s border columns are left as they are (zero).
///
/// Blocks go in groups of [`TABLE_BYTES`] of tables (64 blocks of 2 KiB would not fit L1):
/// within a group each output's sum stays in registers; between groups it waits in a
/// partial-sum row, read and written in order.
#[inline(always)]
pub fn table_conv<'a, E: Element, const SEARCH: bool>(
    input: &[E],
    from: &Geom,
    output: &mut [i32],
    to: &Geom,
    t: &TableConv,
    rq: Option<&dyn Fn(usize) -> Rq<'a>>,
    scratch: &mut [E],
) {
    assert!(
        (from.h, from.w) == (to.h, to.w) && (from.p == to.p || from.p == 0),
        "table convolution between unrelated layouts"
    );
    for span in from.spans(E::TCHUNK) {
        with_width!(span, N => table_span::<N, E, SEARCH>(input, from, output, to, t, rq, scratch, span));
    }
}

/// [`table_conv`] on one span, in chunks of `N` lanes (the scratch's rows are `N` long here).
#[inline(always)]
fn table_span<'a, const N: usize, E: Element, const SEARCH: bool>(
    input: &[E],
    from: &Geom,
    output: &mut [i32],
    to: &Geom,
    t: &TableConv,
    rq: Option<&dyn Fn(usize) -> Rq<'a>>,
    scratch: &mut [E],
    Span { f, n, .. }: Span,
) {
    let entries = t.entries();
    let group = t.group();
    let rows = scratch.as_chunks_mut::<N>().0;
    let (tab, partial) = rows.split_at_mut(group * entries);
    let same = from.p == to.p;
    let mask = &from.mask[f - from.start..f - from.start + n];
    // From a borderless layout: (first lane, lanes, offset in `to`'s plane) per map row.
    let mut rows_of = [(0usize, 0usize, 0usize); N];
    let mut count = 0;
    if !same {
        for p in row_pieces(f - from.start, n, from.w) {
            rows_of[count] = (p.at, p.len, to.at(0, p.y, p.x) - to.front);
            count += 1;
        }
    }
    let pieces = &rows_of[..count];
    let zero = [E::default(); N];
    let mut total = zero;
    let mut first = 0;
    while first < t.blocks {
        let last = (first + group).min(t.blocks);
        for b in first..last {
            let at = (b - first) * entries;
            let sum = build_table(
                input,
                from.front + f,
                from.plane,
                t,
                b,
                &mut tab[at..at + entries],
            );
            for l in 0..N {
                total[l] = total[l].wrapping_add(sum[l]);
            }
        }
        for o in 0..t.outputs {
            let mut a = if first == 0 { zero } else { partial[o] };
            for &row in &t.rows[o * t.blocks + first..o * t.blocks + last] {
                let v = &tab[row as usize];
                for l in 0..N {
                    a[l] = a[l].wrapping_add(v[l]);
                }
            }
            if last < t.blocks {
                partial[o] = a;
                continue;
            }
            // 2a - total wraps in i16 on the way, but the result fits (`fits_i16`).
            let mut wide = [0i32; N];
            for l in 0..N {
                wide[l] = a[l].wrapping_add(a[l]).wrapping_sub(total[l]).to_i32();
            }
            let a = wide;
            if same {
                let dst = &mut output[to.front + o * to.plane + f..][..n];
                match rq {
                    None => dst.copy_from_slice(&a[..n]),
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: `SEARCH` is set only where this is inlined into a function
                    // compiled for AVX-512 F/BW/VL/DQ (`FastModel`'s VNNI variant) or after
                    // checking the CPU (tests); the engine's thresholds are sorted.
                    Some(rq) if SEARCH => unsafe {
                        super::search::store_codes(&a, rq(o), mask, dst)
                    },
                    Some(rq) => {
                        let codes = requant_chunk(&a, rq(o));
                        for l in 0..n {
                            dst[l] = codes[l] & mask[l];
                        }
                    }
                }
                continue;
            }
            // Borderless input: every lane is a pixel; scatter them row by row.
            let base = to.front + o * to.plane;
            match rq {
                None => {
                    for &(l, len, at) in pieces {
                        output[base + at..][..len].copy_from_slice(&a[l..l + len]);
                    }
                }
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above.
                Some(rq) if SEARCH => unsafe {
                    super::search::scatter_codes(&a, rq(o), pieces, &mut output[base..])
                },
                Some(rq) => {
                    let codes = requant_chunk(&a, rq(o));
                    for &(l, len, at) in pieces {
                        output[base + at..][..len].copy_from_slice(&codes[l..l + len]);
                    }
                }
            }
        }
        first = last;
    }
}

/// One output channel's requantization, flattened for the fast path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rq<'a> {
    /// `#{j : acc >= t[j]}`.
    Up(&'a [i32]),
    /// `#{j : acc <= t[j]}`.
    Down(&'a [i32]),
    /// A constant code.
    Constant(i32),
}

/// The accumulators of one chunk: `sum(plus planes) - sum(minus planes)` at `base`.
#[inline(always)]
pub fn conv_chunk<const N: usize>(
    input: &[i32],
    base: usize,
    plus: &[isize],
    minus: &[isize],
) -> [i32; N] {
    let mut acc = [0i32; N];
    for &off in plus {
        let at = (base as isize + off) as usize;
        let src: &[i32; N] = input[at..at + N].try_into().expect("chunk in bounds");
        for i in 0..N {
            acc[i] += src[i];
        }
    }
    for &off in minus {
        let at = (base as isize + off) as usize;
        let src: &[i32; N] = input[at..at + N].try_into().expect("chunk in bounds");
        for i in 0..N {
            acc[i] -= src[i];
        }
    }
    acc
}

/// Codes of a chunk of accumulators.
#[inline(always)]
pub fn requant_chunk<const N: usize>(acc: &[i32; N], rq: Rq) -> [i32; N] {
    let mut code = [0i32; N];
    match rq {
        Rq::Up(t) => {
            for &tj in t {
                for i in 0..N {
                    code[i] += (acc[i] >= tj) as i32;
                }
            }
        }
        Rq::Down(t) => {
            for &tj in t {
                for i in 0..N {
                    code[i] += (acc[i] <= tj) as i32;
                }
            }
        }
        Rq::Constant(c) => code = [c; N],
    }
    code
}

/// An element type of feature-map buffers: i32, or i16 where the values provably fit.
pub trait Element: Copy + Default {
    /// Elements per table row ([`ROW_BYTES`]).
    const TCHUNK: usize;
    /// `v`, which the caller has proved to fit.
    fn from_i32(v: i32) -> Self;
    /// The value, widened.
    fn to_i32(self) -> i32;
    /// Two's-complement addition (intermediate sums may wrap where the final one fits).
    fn wrapping_add(self, other: Self) -> Self;
    /// Two's-complement subtraction.
    fn wrapping_sub(self, other: Self) -> Self;
}

/// The two element types, whose operations are the primitive ones of the same names.
macro_rules! element {
    ($($t:ty),*) => {$(
        impl Element for $t {
            const TCHUNK: usize = ROW_BYTES / size_of::<$t>();
            #[inline(always)]
            fn from_i32(v: i32) -> $t {
                v as $t
            }
            #[inline(always)]
            fn to_i32(self) -> i32 {
                self as i32
            }
            #[inline(always)]
            fn wrapping_add(self, other: $t) -> $t {
                <$t>::wrapping_add(self, other)
            }
            #[inline(always)]
            fn wrapping_sub(self, other: $t) -> $t {
                <$t>::wrapping_sub(self, other)
            }
        }
    )*};
}
element!(i32, i16);

/// What a convolution does with its accumulators.
#[derive(Clone, Copy)]
pub enum Post<'a> {
    /// Store them (they feed another convolution).
    Store,
    /// Requantize each output channel to codes, border columns zeroed.
    Requant(&'a dyn Fn(usize) -> Rq<'a>),
}

/// A whole ternary (or +-1) convolution over the interior rows of `geom`, from `input` to
/// `output` (both laid out by `geom`; `output` may be i16 where the accumulators fit it).
///
/// The pixel chunk is the outer loop: all output channels of one chunk read the same few
/// kilobytes of every input plane, which stay in L1 while the chunk is worked on.
#[inline(always)]
pub fn conv<E: Element>(input: &[i32], output: &mut [E], geom: &Geom, terms: &Terms, post: Post) {
    for span in geom.spans(CHUNK) {
        with_width!(span, N => conv_span::<N, E>(input, output, geom, terms, post, span));
    }
}

/// [`conv`] on one span, in a chunk of `N` lanes.
#[inline(always)]
fn conv_span<const N: usize, E: Element>(
    input: &[i32],
    output: &mut [E],
    geom: &Geom,
    terms: &Terms,
    post: Post,
    Span { f, n, .. }: Span,
) {
    let mask = &geom.mask[f - geom.start..f - geom.start + n];
    for (o, &(a, b, c)) in terms.ranges.iter().enumerate() {
        let (plus, minus) = (&terms.offsets[a..b], &terms.offsets[b..c]);
        let acc = conv_chunk::<N>(input, geom.front + f, plus, minus);
        let out_base = geom.front + o * geom.plane;
        let dst = &mut output[out_base + f..out_base + f + n];
        store(dst, &acc, mask, post, o);
    }
}

/// Stores a chunk's accumulators (or their codes, border columns zeroed) into `dst`.
#[inline(always)]
pub fn store<const N: usize, E: Element>(
    dst: &mut [E],
    acc: &[i32; N],
    mask: &[i32],
    post: Post,
    o: usize,
) {
    match post {
        Post::Store => {
            for (d, &a) in dst.iter_mut().zip(acc) {
                *d = E::from_i32(a);
            }
        }
        Post::Requant(rq) => {
            let codes = requant_chunk(acc, rq(o));
            for ((d, &c), &m) in dst.iter_mut().zip(&codes).zip(mask) {
                *d = E::from_i32(c & m);
            }
        }
    }
}

/// Spatial sum of each of `channels` planes (borders are zero or masked).
#[inline(always)]
pub fn plane_sums(input: &[i32], geom: &Geom, channels: usize, masked: bool, out: &mut [i64]) {
    for (c, sum) in out.iter_mut().enumerate().take(channels) {
        let base = geom.front + c * geom.plane;
        let plane = &input[base + geom.start..base + geom.end];
        *sum = if masked {
            plane
                .iter()
                .zip(&geom.mask)
                .map(|(&v, &m)| (v & m) as i64)
                .sum()
        } else {
            plane.iter().map(|&v| v as i64).sum()
        };
    }
}

/// MRB mux in place on `f`: where the gate of a channel is on, `f = (x + f) >> 1` (avg) or `x`.
#[inline(always)]
pub fn mux(x: &[i32], f: &mut [i32], geom: &Geom, gate: &[bool], avg: bool) {
    for (c, &on) in gate.iter().enumerate() {
        if !on {
            continue;
        }
        let base = geom.front + c * geom.plane;
        let (xs, fs) = (
            &x[base + geom.start..base + geom.end],
            &mut f[base + geom.start..base + geom.end],
        );
        if avg {
            for (fv, &xv) in fs.iter_mut().zip(xs) {
                *fv = (*fv + xv) >> 1;
            }
        } else {
            fs.copy_from_slice(xs);
        }
    }
}

/// 2x2 max pooling from `inp` (layout `g`) to `out` (layout `h`, half the size).
#[inline(always)]
pub fn pool(input: &[i32], g: &Geom, output: &mut [i32], h: &Geom, channels: usize) {
    for c in 0..channels {
        for y in 0..h.h {
            // Whole rows as slices, so the loops below have no index arithmetic or bounds
            // checks and vectorize: the larger of the two rows, then of each pair.
            let top = &input[g.at(c, 2 * y, 0)..][..2 * h.w];
            let bottom = &input[g.at(c, 2 * y + 1, 0)..][..2 * h.w];
            let out = &mut output[h.at(c, y, 0)..][..h.w];
            for ((o, t), b) in out
                .iter_mut()
                .zip(top.as_chunks::<2>().0)
                .zip(bottom.as_chunks::<2>().0)
            {
                *o = t[0].max(b[0]).max(t[1].max(b[1]));
            }
        }
    }
}
