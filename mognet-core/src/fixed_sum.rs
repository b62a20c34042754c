//! Sums that round the same on every backend and every CPU.
//!
//! A backend's own `sum` picks its order of additions by SIMD width and thread count: Flex keeps
//! 8 accumulators of SIMD width, 64 lanes on an AVX2 CPU and 128 on an AVX-512 one. Float
//! addition is not associative, so the same weights gave a BTQ scale `alpha` one ulp apart on
//! two machines, and with it folded thresholds one apart: the fold of a shipped `.bpk` depended
//! on the CPU it ran on. Here the order is fixed: a pairwise tree of element-wise additions,
//! each rounded once (IEEE 754 and WGSL both specify correctly rounded `+`), so every backend
//! gets the same bits.

use burn::tensor::Tensor;

/// The sum of `x` by a fixed pairwise tree: `x` is padded with zeros to the next power of two
/// `2^k`, then halved `k` times, `x[i] + x[i + half]`.
///
/// # Shapes
/// - `x`: `[n]`, `n >= 1`
/// - output: `[1]`
pub fn fixed_order_sum(x: Tensor<1>) -> Tensor<1> {
    let n = x.dims()[0];
    let device = x.device();
    let mut len = n.next_power_of_two();
    let mut x = if len > n {
        Tensor::cat(vec![x, Tensor::zeros([len - n], &device)], 0)
    } else {
        x
    };
    while len > 1 {
        len /= 2;
        x = x.clone().slice(0..len) + x.slice(len..2 * len);
    }
    x
}

/// The mean of `x` as [`fixed_order_sum`] divided by `n`.
///
/// # Shapes
/// - `x`: `[n]`, `n >= 1`
/// - output: `[1]`
pub fn fixed_order_mean(x: Tensor<1>) -> Tensor<1> {
    let n = x.dims()[0];
    fixed_order_sum(x).div_scalar(n as f64)
}

/// The scalar reference of [`fixed_order_sum`]: the same tree on the host.
pub fn fixed_order_sum_host(x: &[f32]) -> f32 {
    let mut v = x.to_vec();
    v.resize(x.len().next_power_of_two(), 0.0);
    while v.len() > 1 {
        let half = v.len() / 2;
        let (lo, hi) = v.split_at(half);
        v = lo.iter().zip(hi).map(|(a, b)| a + b).collect();
    }
    v.first().copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};
    use mognet_arch::ca::SplitMix64;

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = SplitMix64::new(seed);
        // Magnitudes over six binades, as trained weights have, so that order matters.
        (0..n)
            .map(|_| {
                let u = (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
                u * 2f32.powi((rng.next_u64() % 6) as i32 - 5)
            })
            .collect()
    }

    fn sum_on(device: &Device, v: &[f32]) -> f32 {
        let t = Tensor::<1>::from_data(TensorData::new(v.to_vec(), [v.len()]), device);
        fixed_order_sum(t).into_data().try_to_vec::<f32>().unwrap()[0]
    }

    #[test]
    fn flex_matches_the_host_tree_bit_for_bit() {
        let device = Device::flex();
        for (n, seed) in [(1, 1), (2, 2), (3, 3), (1000, 4), (4096, 5), (73_729, 6)] {
            let v = values(n, seed);
            let tree = fixed_order_sum_host(&v);
            assert_eq!(sum_on(&device, &v).to_bits(), tree.to_bits(), "n = {n}");
            // The exact sum (f64 is exact enough here) is within the tree's rounding.
            let exact: f64 = v.iter().map(|&x| x as f64).sum();
            assert!((tree as f64 - exact).abs() <= exact * 1e-5, "n = {n}");
        }
    }

    #[test]
    fn the_order_is_the_trees_not_left_to_right() {
        // Left to right, each 1 + 2^-24 is a tie that rounds back to 1; the tree adds the
        // small terms pairwise first and keeps them: 1 + 2^-23.
        let v = [1.0f32, 2f32.powi(-24), 2f32.powi(-24), 2f32.powi(-24)];
        let left_to_right = v.iter().fold(0.0f32, |a, b| a + b);
        let tree = (v[0] + v[2]) + (v[1] + v[3]);
        assert_ne!(left_to_right.to_bits(), tree.to_bits());
        assert_eq!(fixed_order_sum_host(&v).to_bits(), tree.to_bits());
        assert_eq!(sum_on(&Device::flex(), &v).to_bits(), tree.to_bits());
    }

    #[test]
    fn empty_and_mean() {
        assert_eq!(fixed_order_sum_host(&[]), 0.0);
        let device = Device::flex();
        let t = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, 2.0, 6.0], [3]), &device);
        assert_eq!(
            fixed_order_mean(t).into_data().try_to_vec::<f32>().unwrap(),
            vec![3.0]
        );
    }
}
