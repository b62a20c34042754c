//! From the float model's folded affine to integers, exactly.
//!
//! The float model in eval mode computes a code as `clamp(floor(fl(fl(acc * A) + B)), 0, Q)` in
//! f32 (`fl` = round to nearest f32), with `A`, `B` per channel. Both f32 operations are
//! monotonic, so the code is a monotonic step function of the integer `acc`, and the thresholds
//! where it steps are found by binary search evaluating *the same f32 expression*: the integer
//! engine then gives the float model's code for every `acc` in the searched range, ties included.

use crate::kernels::requant::ChannelRequant;

/// The float model's code for an accumulator (the f32 expression of `BnQRelu`'s eval path).
#[inline]
pub fn float_code(acc: i64, a: f32, b: f32, q: u8) -> u8 {
    let u = (acc as f32 * a) + b;
    let v = u.floor();
    if v.is_nan() || v <= 0.0 {
        0
    } else if v >= q as f32 {
        q
    } else {
        v as u8
    }
}

/// Thresholds of one channel for accumulators in `lo..=hi`: `Up` when `a > 0`, `Down` when
/// `a < 0`, `Constant` when `a == 0` (or `a` is not finite, which no trained model produces, and
/// which is then treated as the constant code at `acc = 0`).
pub fn channel_thresholds(a: f32, b: f32, q: u8, lo: i64, hi: i64) -> ChannelRequant {
    debug_assert!(lo <= hi);
    if a == 0.0 || !a.is_finite() {
        return ChannelRequant::Constant(float_code(0, a, b, q));
    }
    let up = a > 0.0;
    // First acc in lo..=hi+1 where `pred` holds (pred is monotone false..true over the range).
    let first = |pred: &dyn Fn(i64) -> bool| {
        let (mut l, mut r) = (lo, hi + 1);
        while l < r {
            let mid = l + (r - l) / 2;
            if pred(mid) {
                r = mid;
            } else {
                l = mid + 1;
            }
        }
        l
    };
    let thresholds: Vec<i32> = (1..=q)
        .map(|j| {
            let t = if up {
                first(&|acc| float_code(acc, a, b, q) >= j)
            } else {
                // Largest acc with code >= j: one below the first acc whose code is < j.
                first(&|acc| float_code(acc, a, b, q) < j) - 1
            };
            t.clamp(i32::MIN as i64, i32::MAX as i64) as i32
        })
        .collect();
    if up {
        ChannelRequant::Up(thresholds)
    } else {
        ChannelRequant::Down(thresholds)
    }
}

/// The head's fixed point: the largest shift `s <= 40` with every `round(A_k 2^s)` and
/// `round(B_k 2^s)` inside i32. Returns `(s, multipliers, offsets)`.
pub fn head_fixed_point(a: &[f32], b: &[f32]) -> (u8, Vec<i32>, Vec<i32>) {
    let largest = a
        .iter()
        .chain(b)
        .map(|v| (*v as f64).abs())
        .fold(0.0f64, f64::max);
    let limit = i32::MAX as f64;
    let mut shift = 0u8;
    while shift < 40 && (largest * ((shift + 1) as f64).exp2()).round() <= limit {
        shift += 1;
    }
    let scale = (shift as f64).exp2();
    // Round half away from zero, then clamp (only reached when |A| or |B| >= 2^31).
    let fix = |v: &f32| ((*v as f64) * scale).round().clamp(-limit, limit) as i32;
    (
        shift,
        a.iter().map(fix).collect(),
        b.iter().map(fix).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exhaustive over a range, including exact ties of round-half-up.
    #[test]
    fn thresholds_reproduce_the_float_expression_everywhere() {
        let cases: &[(f32, f32)] = &[
            (0.25, 0.5), // u = acc/4 + 0.5: exact ties at acc = 2, 6, ...
            (0.013, -1.7),
            (-0.5, 3.5),
            (-0.0071, -0.2),
            (1.0 / 3.0, 0.5),
            (7.0, -20.0),
        ];
        for &(a, b) in cases {
            let rq = channel_thresholds(a, b, 7, -3000, 3000);
            for acc in -3000..=3000 {
                assert_eq!(
                    rq.code(acc as i32),
                    float_code(acc, a, b, 7),
                    "a={a} b={b} acc={acc} {rq:?}"
                );
            }
        }
        assert_eq!(
            channel_thresholds(0.0, 2.7, 7, -10, 10),
            ChannelRequant::Constant(2)
        );
        assert_eq!(
            channel_thresholds(0.0, -2.7, 7, -10, 10),
            ChannelRequant::Constant(0)
        );
    }

    #[test]
    fn round_half_up_tie_gives_the_upper_code() {
        // acc * 0.25 + 0.5 at acc = 2 is exactly 1.0: code 1 (floor), i.e. 0.5 rounds up.
        let rq = channel_thresholds(0.25, 0.5, 7, -100, 100);
        assert_eq!(rq.code(2), 1);
        assert_eq!(rq.code(1), 0);
        assert_eq!(rq, ChannelRequant::Up(vec![2, 6, 10, 14, 18, 22, 26]));
    }

    #[test]
    fn head_fixed_point_fits_i32_and_keeps_precision() {
        let (s, m, c) = head_fixed_point(&[0.001, -0.25], &[3.5, -1.0]);
        assert!(
            m.iter()
                .chain(&c)
                .all(|v| v.unsigned_abs() <= i32::MAX as u32)
        );
        assert_eq!(s, 29); // 3.5 * 2^29 < 2^31 <= 3.5 * 2^30
        assert_eq!(c[0], (3.5 * (1u64 << 29) as f64) as i32);
        assert!(((m[0] as f64) / (s as f64).exp2() - 0.001).abs() < 1e-8);
    }
}
