//! The grouped convolution on i16 inputs.
//!
//! PW1's accumulators are bounded by `7 x` the nonzero weights of their row (a few thousand), so
//! they are stored as i16 and a 512-bit register holds 32 of them instead of 16: the grouped
//! convolution's additions and loads halve. Its own sums can exceed i16, so each output's terms
//! are cut at load time into *segments* whose summed input bounds stay within `i16::MAX`: a
//! segment adds in i16 without overflow, then widens once into the i32 accumulator.

use super::geom::{CHUNK, Geom, Span, with_width};
use super::kernels::{Element, Post, signed_taps, store};
use crate::model::TernaryWeights;

/// A ternary convolution's nonzero weights, cut into segments that cannot overflow i16.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segments {
    /// Plane offsets, as in [`super::kernels::Terms::offsets`].
    pub offsets: Vec<isize>,
    /// Per segment: `plus = offsets[a..b]`, `minus = offsets[b..c]`.
    pub segments: Vec<(usize, usize, usize)>,
    /// Per output channel: its segments `segments[s..e]`.
    pub outputs: Vec<(usize, usize)>,
    /// Smallest and largest offset (`(0, 0)` when there are none).
    pub span: (isize, isize),
}

impl Segments {
    /// Cuts ternary weights `w` given `bounds[c]`, the largest `|value|` of input channel `c`;
    /// `None` when one input alone can exceed i16.
    pub fn new(w: &TernaryWeights, geom: &Geom, bounds: &[i64]) -> Option<Segments> {
        let TernaryWeights {
            out,
            inputs,
            k,
            groups,
            ref codes,
        } = *w;
        if bounds.iter().any(|&b| b > i16::MAX as i64) {
            return None;
        }
        let mut offsets = Vec::new();
        let mut segments = Vec::new();
        let mut outputs = Vec::with_capacity(out);
        for o in 0..out {
            let first = segments.len();
            // (is +1, offset, bound) of the nonzero weights, in the order of `Terms`.
            let terms: Vec<(bool, isize, i64)> = [1i8, -1]
                .into_iter()
                .flat_map(|sign| {
                    signed_taps(codes, o, out, inputs, k, groups, geom, sign)
                        .map(move |(c, off)| (sign == 1, off, bounds[c]))
                })
                .collect();
            let mut start = 0;
            while start < terms.len() {
                let mut total = 0;
                let mut end = start;
                while end < terms.len() && total + terms[end].2 <= i16::MAX as i64 {
                    total += terms[end].2;
                    end += 1;
                }
                let part = &terms[start..end];
                let a = offsets.len();
                offsets.extend(part.iter().filter(|t| t.0).map(|t| t.1));
                let b = offsets.len();
                offsets.extend(part.iter().filter(|t| !t.0).map(|t| t.1));
                segments.push((a, b, offsets.len()));
                start = end;
            }
            outputs.push((first, segments.len()));
        }
        let span = (
            offsets.iter().copied().min().unwrap_or(0),
            offsets.iter().copied().max().unwrap_or(0),
        );
        Some(Segments {
            span,
            offsets,
            segments,
            outputs,
        })
    }

    /// Segments in all (one widening each per pixel chunk).
    pub fn count(&self) -> usize {
        self.segments.len()
    }
}

/// The largest `|acc|` of each output of a 1x1 ternary layer `[out][in]` on codes `0..=q`.
pub fn pointwise_bounds(codes: &[i8], out: usize, inputs: usize, q: i64) -> Vec<i64> {
    (0..out)
        .map(|o| {
            let nonzero = codes[o * inputs..(o + 1) * inputs]
                .iter()
                .filter(|&&w| w != 0)
                .count() as i64;
            q * nonzero
        })
        .collect()
}

/// The convolution of i16 planes `input` into `output`, over the interior rows of `geom`.
#[inline(always)]
pub fn conv_half<E: Element>(
    input: &[i16],
    output: &mut [E],
    geom: &Geom,
    s: &Segments,
    post: Post,
) {
    // Every chunk read below starts at `base + off` with `base` in `front + start..front + end`
    // and `off` in `span`: checking the two extremes once bounds them all.
    let (lo, hi) = s.span;
    if geom.end > geom.start && !s.offsets.is_empty() {
        assert!(
            (geom.front + geom.start) as isize + lo >= 0
                && (geom.front + geom.end - 1) as isize + hi + CHUNK as isize
                    <= input.len() as isize,
            "input buffer too small for the convolution's taps"
        );
    }
    for span in geom.spans(CHUNK) {
        with_width!(span, N => half_span::<N, E>(input, output, geom, s, post, span));
    }
}

/// [`conv_half`] on one span, in a chunk of `N <= CHUNK` lanes.
#[inline(always)]
fn half_span<const N: usize, E: Element>(
    input: &[i16],
    output: &mut [E],
    geom: &Geom,
    s: &Segments,
    post: Post,
    Span { f, n, .. }: Span,
) {
    let chunk = |at: isize| -> &[i16; N] {
        // SAFETY: `at` is `base + off` for a chunk base and an offset of `s`, inside
        // `0..=input.len() - CHUNK` by `conv_half`'s assertion, and `N <= CHUNK`;
        // [i16; N] has i16's alignment.
        unsafe { &*input.as_ptr().offset(at).cast::<[i16; N]>() }
    };
    let mask = &geom.mask[f - geom.start..f - geom.start + n];
    let base = (geom.front + f) as isize;
    for (o, &(first, last)) in s.outputs.iter().enumerate() {
        let mut acc = [0i32; N];
        for &(a, b, c) in &s.segments[first..last] {
            let mut part = [0i16; N];
            for &off in &s.offsets[a..b] {
                let src = chunk(base + off);
                for i in 0..N {
                    part[i] = part[i].wrapping_add(src[i]);
                }
            }
            for &off in &s.offsets[b..c] {
                let src = chunk(base + off);
                for i in 0..N {
                    part[i] = part[i].wrapping_sub(src[i]);
                }
            }
            for i in 0..N {
                acc[i] += part[i] as i32;
            }
        }
        let out_base = geom.front + o * geom.plane;
        store(
            &mut output[out_base + f..out_base + f + n],
            &acc,
            mask,
            post,
            o,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fast::kernels::{Terms, conv};
    use mognet_arch::rng::SplitMix64;

    #[test]
    fn matches_the_i32_kernel_and_cuts_segments_at_the_bound() {
        let mut rng = SplitMix64::new(5);
        for case in 0..30 {
            let k = [1, 3, 5][case % 3];
            let groups = [1, 2, 4][case % 3];
            let ipg = 1 + (rng.next_u64() % 12) as usize;
            let opg = 1 + (rng.next_u64() % 5) as usize;
            let (inputs, out) = (ipg * groups, opg * groups);
            let geom = Geom::new(3 + case % 9, 4 + case % 5, k / 2);
            // Values up to each channel's bound, extremes included, so the segments must cut.
            let bounds: Vec<i64> = (0..inputs)
                .map(|_| 1 + (rng.next_u64() % 9000) as i64)
                .collect();
            let mut wide = vec![0i32; geom.buffer_len(inputs.max(out))];
            for c in 0..inputs {
                for y in 0..geom.h {
                    for x in 0..geom.w {
                        let b = bounds[c];
                        wide[geom.at(c, y, x)] = match rng.next_u64() % 4 {
                            0 => b as i32,
                            1 => -b as i32,
                            _ => (rng.next_u64() % (2 * b as u64 + 1)) as i32 - b as i32,
                        };
                    }
                }
            }
            let half: Vec<i16> = wide.iter().map(|&v| v as i16).collect();
            let codes: Vec<i8> = (0..out * ipg * k * k)
                .map(|_| (rng.next_u64() % 3) as i8 - 1)
                .collect();
            let terms = Terms::new(&codes, out, inputs, k, groups, &geom);
            let weights = TernaryWeights {
                out,
                inputs,
                k,
                groups,
                codes,
            };
            let segs = Segments::new(&weights, &geom, &bounds).unwrap();
            assert_eq!(segs.offsets.len(), terms.count());
            for &(a, b, c) in &segs.segments {
                let sum: i64 = segs.offsets[a..c]
                    .iter()
                    .map(|&off| {
                        bounds[(off + geom.plane as isize * 5 / 2) as usize / geom.plane - 2]
                    })
                    .sum();
                assert!(sum <= i16::MAX as i64 && a <= b && b <= c);
            }
            let mut want = vec![i32::MIN; wide.len()];
            conv(&wide, &mut want, &geom, &terms, Post::Store);
            let mut got = vec![i32::MIN; wide.len()];
            conv_half(&half, &mut got, &geom, &segs, Post::Store);
            assert_eq!(got, want, "case {case}");
        }
        let one = TernaryWeights {
            out: 1,
            inputs: 1,
            k: 1,
            groups: 1,
            codes: vec![1],
        };
        assert!(Segments::new(&one, &Geom::new(2, 2, 0), &[40_000]).is_none());
    }

    #[test]
    fn pointwise_bounds_count_nonzero_weights() {
        assert_eq!(pointwise_bounds(&[1, 0, -1, 0, 0, 0], 2, 3, 7), vec![14, 0]);
    }
}
