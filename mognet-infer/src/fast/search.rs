//! Requantization of 16 accumulators at once by binary search over a channel's thresholds
//! (AVX-512).
//!
//! A code is `#{j : acc >= t[j]}` (or `<=` for a negative folded scale); counting compares every
//! threshold, 7 for 3-bit codes. The fast engine sorts each channel's thresholds at load (the
//! count does not depend on their order), so the code is also the position where `acc` falls
//! among them: with `Q = 2^k - 1` thresholds, `k` probes find it, the first against a
//! broadcast threshold and the others against thresholds picked per lane (`vpermd` of the
//! channel's thresholds, which fit one register for `Q <= 15`).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::kernels::Rq;

/// Whether `q` thresholds can be searched (`q + 1` a power of two, all in one register).
pub fn searchable(q: usize) -> bool {
    (q + 1).is_power_of_two() && q < 16
}

/// The codes of 16 accumulators for one channel. Thresholds must be sorted (non-decreasing
/// for [`Rq::Up`], non-increasing for [`Rq::Down`]) when [`searchable`]; other counts are
/// counted one threshold at a time.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and DQ.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
#[inline]
pub unsafe fn codes16(acc: __m512i, rq: Rq) -> __m512i {
    let (t, up) = match rq {
        Rq::Up(t) => (t, true),
        Rq::Down(t) => (t, false),
        Rq::Constant(c) => return _mm512_set1_epi32(c),
    };
    // `acc` is past threshold `tj` (counts towards the code).
    let past = |tj: __m512i| -> __mmask16 {
        if up {
            _mm512_cmpge_epi32_mask(acc, tj)
        } else {
            _mm512_cmple_epi32_mask(acc, tj)
        }
    };
    let q = t.len();
    if !searchable(q) || q == 0 {
        let mut code = _mm512_setzero_si512();
        for &tj in t {
            code = _mm512_mask_add_epi32(
                code,
                past(_mm512_set1_epi32(tj)),
                code,
                _mm512_set1_epi32(1),
            );
        }
        return code;
    }
    // SAFETY: the mask selects `t[..q]`, in bounds; masked-off lanes are not read.
    let all = unsafe { _mm512_maskz_loadu_epi32(((1u32 << q) - 1) as __mmask16, t.as_ptr()) };
    let mut step = q.div_ceil(2);
    // Code c so far: the thresholds below c are passed; probe threshold c + step - 1.
    let mut code = _mm512_maskz_mov_epi32(
        past(_mm512_set1_epi32(t[step - 1])),
        _mm512_set1_epi32(step as i32),
    );
    while step > 1 {
        step /= 2;
        let probe = _mm512_permutexvar_epi32(
            _mm512_add_epi32(code, _mm512_set1_epi32(step as i32 - 1)),
            all,
        );
        code = _mm512_mask_add_epi32(code, past(probe), code, _mm512_set1_epi32(step as i32));
    }
    code
}

/// Requantizes the first `dst.len()` of a chunk's accumulators into `dst`, zeroing border
/// columns (`mask` is -1 at pixels, 0 at border columns).
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and DQ.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
#[inline]
pub unsafe fn store_codes<const N: usize>(acc: &[i32; N], rq: Rq, mask: &[i32], dst: &mut [i32]) {
    const { assert!(N.is_multiple_of(16), "whole registers") };
    let n = dst.len();
    assert!(n <= N && mask.len() >= n, "chunk of {n} pixels");
    for r in 0..N / 16 {
        let lanes = n.saturating_sub(16 * r).min(16);
        if lanes == 0 {
            break;
        }
        let keep = lanes_mask(lanes);
        // SAFETY: `16 r + 16 <= N` for the accumulators; the masks select `16 r + lanes <= n`
        // elements of `mask` and `dst` (asserted above).
        unsafe {
            let v = _mm512_loadu_si512(acc.as_ptr().add(16 * r).cast());
            let m = _mm512_maskz_loadu_epi32(keep, mask.as_ptr().add(16 * r));
            let c = _mm512_and_si512(codes16(v, rq), m);
            _mm512_mask_storeu_epi32(dst.as_mut_ptr().add(16 * r), keep, c);
        }
    }
}

/// Requantizes a chunk of accumulators into `dst`, in pieces: `(l, len, at)` puts lanes
/// `l..l + len` at `dst[at..at + len]`.
///
/// # Safety
/// As [`codes16`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
#[inline]
pub unsafe fn scatter_codes<const N: usize>(
    acc: &[i32; N],
    rq: Rq,
    pieces: &[(usize, usize, usize)],
    dst: &mut [i32],
) {
    const { assert!(N.is_multiple_of(16) && N <= 64, "one to four registers") };
    let mut codes = [_mm512_setzero_si512(); 4];
    for (r, c) in codes.iter_mut().enumerate().take(N / 16) {
        // SAFETY: `16 r + 16 <= N`.
        *c = unsafe { codes16(_mm512_loadu_si512(acc.as_ptr().add(16 * r).cast()), rq) };
    }
    for &(l, len, at) in pieces {
        assert!(l + len <= N && at + len <= dst.len(), "piece out of bounds");
        for (r, &c) in codes.iter().enumerate().take(N / 16) {
            let Some(keep) = run_lanes(r, l, l + len) else {
                continue;
            };
            // SAFETY: lane i of register r lands on `at + 16 r + i - l`; the mask keeps lanes
            // with `l <= 16 r + i < l + len`, which land in `dst[at..at + len]` (asserted in
            // bounds). The base address may lie outside `dst`, hence `wrapping_add`; only
            // selected lanes are written.
            unsafe {
                _mm512_mask_storeu_epi32(
                    dst.as_mut_ptr().wrapping_add(at + 16 * r).wrapping_sub(l),
                    keep,
                    c,
                )
            };
        }
    }
}

/// The mask of i32 lanes `0..n` of a 512-bit register (all 16 for `n >= 16`).
#[inline(always)]
pub fn lanes_mask(n: usize) -> u16 {
    if n >= 16 { !0 } else { (1u16 << n) - 1 }
}

/// The lanes of register `r` that hold elements `start..end` of values laid out 16 i32 lanes
/// per register, register after register, as a store mask; `None` where none of them is in `r`.
#[inline(always)]
pub fn run_lanes(r: usize, start: usize, end: usize) -> Option<u16> {
    let (from, until) = (start.max(16 * r), end.min(16 * r + 16));
    (from < until).then(|| lanes_mask(until - 16 * r) & !lanes_mask(from - 16 * r))
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::kernels::requant::ChannelRequant;
    use mognet_arch::rng::SplitMix64;

    #[test]
    fn run_lanes_clip_a_run_to_each_register() {
        // Elements 10..20 span lanes 10..16 of register 0 and 0..4 of register 1.
        assert_eq!(run_lanes(0, 10, 20), Some(0xFC00));
        assert_eq!(run_lanes(1, 10, 20), Some(0x000F));
        assert_eq!(run_lanes(2, 10, 20), None);
        assert_eq!(run_lanes(1, 16, 32), Some(0xFFFF));
        assert_eq!(run_lanes(0, 3, 3), None);
    }

    #[test]
    fn search_and_count_give_the_reference_codes() {
        if !crate::fast::isa::test_needs(
            crate::fast::Variant::Avx512,
            "search_and_count_give_the_reference_codes",
        ) {
            return;
        }
        let mut rng = SplitMix64::new(3);
        for case in 0..300 {
            // 1, 3, 7 and 15 thresholds are searched; 2, 5 and 9 counted.
            let q = [1, 3, 7, 15, 2, 5, 9][case % 7];
            // Narrow ranges so that ties and repeated thresholds are common.
            let mut t: Vec<i32> = (0..q).map(|_| (rng.next_u64() % 41) as i32 - 20).collect();
            t.sort_unstable();
            let channel = if case % 2 == 0 {
                ChannelRequant::Up(t.clone())
            } else {
                t.reverse();
                ChannelRequant::Down(t.clone())
            };
            let rq = if case % 2 == 0 {
                Rq::Up(&t)
            } else {
                Rq::Down(&t)
            };
            let acc: Vec<i32> = (0..16).map(|_| (rng.next_u64() % 51) as i32 - 25).collect();
            let mut got = [0i32; 16];
            // SAFETY: AVX-512 checked above; 16 i32 in and out.
            unsafe {
                let v = _mm512_loadu_si512(acc.as_ptr().cast());
                _mm512_storeu_si512(got.as_mut_ptr().cast(), codes16(v, rq));
            }
            let want: Vec<i32> = acc.iter().map(|&a| channel.code(a) as i32).collect();
            assert_eq!(got.to_vec(), want, "case {case}: {t:?}");
        }
        // SAFETY: as above.
        let c = unsafe { codes16(_mm512_set1_epi32(9), Rq::Constant(4)) };
        let mut got = [0i32; 16];
        // SAFETY: 16 i32.
        unsafe { _mm512_storeu_si512(got.as_mut_ptr().cast(), c) };
        assert_eq!(got, [4; 16]);
    }
}
