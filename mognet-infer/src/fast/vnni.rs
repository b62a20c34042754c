//! 1x1 ternary convolution on activation codes with AVX-512 VNNI (`vpdpbusd`).
//!
//! A PW1 layer reads 3-bit codes (0..=7) and ternary weights: both fit a byte, so `vpdpbusd`
//! does 64 multiply-accumulates per instruction (four u8 x i8 products into each of 16 i32
//! lanes), against 16 for the i32 additions of [`super::kernels::conv`]. For each chunk of
//! [`CHUNK`] pixels the codes of four consecutive channels are packed into the four bytes of one
//! i32 lane (a few KiB that stay in L1), then every output channel dots those words with its
//! weights, four bytes per broadcast word. The accumulators come out as i16 (they fit: see
//! [`super::half`]), one plane per output channel, the layout the grouped convolution reads.

use super::geom::{CHUNK, Geom, Span, with_width};

/// Output channels computed together (each with one accumulator register per 16 lanes).
pub const OUT_BLOCK: usize = 4;

/// A 1x1 ternary convolution's weights packed for `vpdpbusd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DotConv {
    /// Input channels.
    pub inputs: usize,
    /// Output channels.
    pub outputs: usize,
    /// `ceil(inputs / 4)`: packed words per pixel.
    pub words: usize,
    /// `weights[o * words + j]`: the i8 weights of output `o` for inputs `4j..4j+4`, byte `i`
    /// holding input `4j + i` (zero past `inputs`); rows padded with zeros to a multiple of
    /// [`OUT_BLOCK`].
    pub weights: Vec<i32>,
}

impl DotConv {
    /// Packs `[out][in]` ternary codes.
    pub fn new(codes: &[i8], outputs: usize, inputs: usize) -> DotConv {
        let words = inputs.div_ceil(4);
        let rows = outputs.div_ceil(OUT_BLOCK) * OUT_BLOCK;
        let mut weights = vec![0i32; rows * words];
        for o in 0..outputs {
            for i in 0..inputs {
                let byte = (codes[o * inputs + i] as u8 as u32) << (8 * (i % 4));
                weights[o * words + i / 4] |= byte as i32;
            }
        }
        DotConv {
            inputs,
            outputs,
            words,
            weights,
        }
    }

    /// i32 words of packing scratch this layer needs.
    pub fn scratch_len(&self) -> usize {
        self.words * CHUNK
    }
}

/// Packs the codes of pixels `f..f + N` of every input channel, four channels per word.
///
/// Codes are 0..=7 (the engine's invariant for activations), so each fits its byte.
#[inline(always)]
fn pack<const N: usize>(input: &[i32], geom: &Geom, d: &DotConv, f: usize, packed: &mut [i32]) {
    for j in 0..d.words {
        let mut word = [0i32; N];
        for i in 0..4.min(d.inputs - 4 * j) {
            let at = geom.front + (4 * j + i) * geom.plane + f;
            let src: &[i32; N] = input[at..at + N].try_into().expect("chunk in bounds");
            for l in 0..N {
                word[l] |= src[l] << (8 * i);
            }
        }
        packed[j * N..(j + 1) * N].copy_from_slice(&word);
    }
}

/// The 1x1 convolution of `input` codes into `output` accumulators over the interior rows of
/// `geom` (border columns included: their codes are zero, so are their sums).
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI. `packed` holds at least
/// [`DotConv::scratch_len`] words; `input` and `output` are laid out by `geom` with `d.inputs`
/// and `d.outputs` planes, and every output fits i16 (`7 x` nonzero weights per row <= 32767).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
pub unsafe fn dot_conv(
    input: &[i32],
    output: &mut [i16],
    geom: &Geom,
    d: &DotConv,
    packed: &mut [i32],
) {
    assert!(packed.len() >= d.scratch_len(), "packing scratch too small");
    assert!(
        output.len() >= geom.front + d.outputs * geom.plane,
        "output too small"
    );
    for span in geom.spans(CHUNK) {
        // SAFETY: the caller's contract, and the scratch and output sizes asserted above.
        with_width!(span, N => unsafe { dot_span::<N>(input, output, geom, d, packed, span) });
    }
}

/// [`dot_conv`] on one span, in a chunk of `N` lanes (a multiple of 16 up to [`CHUNK`]).
///
/// # Safety
/// As [`dot_conv`], whose assertions this relies on.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
#[inline]
unsafe fn dot_span<const N: usize>(
    input: &[i32],
    output: &mut [i16],
    geom: &Geom,
    d: &DotConv,
    packed: &mut [i32],
    Span { f, n, .. }: Span,
) {
    use std::arch::x86_64::*;
    let regs = N / 16;
    pack::<N>(input, geom, d, f, packed);
    for ob in (0..d.outputs).step_by(OUT_BLOCK) {
        let mut acc = [[_mm512_setzero_si512(); CHUNK / 16]; OUT_BLOCK];
        for j in 0..d.words {
            let mut a = [_mm512_setzero_si512(); CHUNK / 16];
            for (r, a) in a.iter_mut().enumerate().take(regs) {
                // SAFETY: `j * N + 16 r + 16 <= words * N <= packed.len()` (asserted by
                // `dot_conv`); unaligned loads are allowed.
                *a = unsafe { _mm512_loadu_si512(packed.as_ptr().add(j * N + 16 * r).cast()) };
            }
            for (o, acc) in acc.iter_mut().enumerate() {
                let w = _mm512_set1_epi32(d.weights[(ob + o) * d.words + j]);
                for r in 0..regs {
                    acc[r] = _mm512_dpbusd_epi32(acc[r], a[r], w);
                }
            }
        }
        for (o, acc) in acc.iter().enumerate().take(d.outputs - ob) {
            let base = geom.front + (ob + o) * geom.plane + f;
            for (r, v) in acc.iter().enumerate().take(regs) {
                let lanes = n.saturating_sub(16 * r).min(16);
                if lanes == 0 {
                    break;
                }
                // Only the chunk's `n` pixels are written: past `end` lie the next plane's
                // rows, which other channels' values occupy.
                let mask: __mmask16 = ((1u32 << lanes) - 1) as __mmask16;
                let dst = &mut output[base + 16 * r..base + 16 * r + lanes];
                // SAFETY: the mask selects `lanes` i16, all inside `dst` (bounds-checked by
                // the slice above); the values fit i16 (caller's contract), so the
                // truncating conversion is exact.
                unsafe { _mm512_mask_cvtepi32_storeu_epi16(dst.as_mut_ptr().cast(), mask, *v) };
            }
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::fast::kernels::{Post, Terms, conv};
    use mognet_arch::rng::SplitMix64;

    #[test]
    fn matches_the_addition_kernel_on_random_shapes() {
        if !crate::fast::isa::test_needs(
            crate::fast::Variant::Avx512Vnni,
            "matches_the_addition_kernel_on_random_shapes",
        ) {
            return;
        }
        let mut rng = SplitMix64::new(11);
        for case in 0..40 {
            let size = [1, 3, 5, 8, 13, 16, 32][case % 7];
            let inputs = 1 + (rng.next_u64() % 70) as usize;
            let outputs = 1 + (rng.next_u64() % 23) as usize;
            let geom = Geom::new(size, size + case % 3, 1);
            let mut input = vec![0i32; geom.buffer_len(inputs.max(outputs))];
            for c in 0..inputs {
                for y in 0..geom.h {
                    for x in 0..geom.w {
                        input[geom.at(c, y, x)] = (rng.next_u64() % 8) as i32;
                    }
                }
            }
            let codes: Vec<i8> = (0..outputs * inputs)
                .map(|_| (rng.next_u64() % 3) as i8 - 1)
                .collect();
            let terms = Terms::new(&codes, outputs, inputs, 1, 1, &geom);
            // Sentinels everywhere show that nothing outside the interior rows is written.
            let mut want = vec![i16::MIN; input.len()];
            conv(&input, &mut want, &geom, &terms, Post::Store);
            let d = DotConv::new(&codes, outputs, inputs);
            let mut got = vec![i16::MIN; input.len()];
            let mut packed = vec![0; d.scratch_len()];
            // SAFETY: VNNI checked above; buffers laid out by `geom`.
            unsafe { dot_conv(&input, &mut got, &geom, &d, &mut packed) };
            assert_eq!(got, want, "case {case}: {inputs} -> {outputs} at {size}");
        }
    }
}
