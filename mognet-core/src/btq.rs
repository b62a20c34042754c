//! BTQ: balanced ternary quantization of a weight tensor (SPEC "Ternary weights (BTQ)").
//!
//! Real proxy weights `w` become codes `t = sign(w) * [|w| > D]` in `{-1, 0, +1}` with a per-layer
//! scale `alpha = mean(|w| where t != 0)`. Backward is the clipped straight-through estimator
//! (gradient passed where `|w| <= 1`, `alpha` and `D` held constant), and the level-balancing
//! regularizer pulls the soft occupancies of the three levels toward 1/3. `D` and `alpha` are
//! summed in a fixed order ([`crate::fixed_sum`]), so they are the same bits on every CPU and
//! backend, and so is the fold of a trained model.
//!
//! Nothing here reads a tensor back to the host, except [`occupancy`], which is a report.

use crate::fixed_sum::{fixed_order_mean, fixed_order_sum};
use burn::config::Config;
use burn::tensor::Tensor;
use burn::tensor::activation::sigmoid;
use serde::{Deserialize, Serialize};

/// How the ternarization threshold `D` is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdMode {
    /// `D = delta * mean|w|` (SPEC default, `delta = 0.7`).
    Delta,
    /// `D` = the lower 1/3 quantile of `|w|`: the element of rank `ceil(N/3)` (1-based) of the
    /// sorted `|w|`, so that about a third of the weights become 0.
    Quantile,
}

/// BTQ ternarizer configuration.
#[derive(Config, Debug, PartialEq)]
pub struct BtqConfig {
    /// Threshold mode. Default: `Delta`.
    #[config(default = "ThresholdMode::Delta")]
    pub mode: ThresholdMode,
    /// `delta` of the `Delta` mode. Default: 0.7.
    #[config(default = 0.7)]
    pub delta: f64,
    /// Regularizer temperature as a fraction of `mean|w|`. Default: 0.1.
    #[config(default = 0.1)]
    pub temperature: f64,
    /// STE clip: the gradient reaches `w` only where `|w| <= clip`. Default: 1.0.
    #[config(default = 1.0)]
    pub clip: f64,
}

/// The ternary codes of a weight tensor and its scale.
#[derive(Debug, Clone)]
pub struct Ternarized<const D: usize> {
    /// `t` in `{-1, 0, +1}`. Its backward is the clipped STE scaled by `1/alpha`, so that the
    /// product `alpha * t` (the float weight) has gradient exactly 1 w.r.t. `w` where `|w| <= clip`.
    pub codes: Tensor<D>,
    /// `alpha`, shape `[1]`, detached.
    pub alpha: Tensor<1>,
}

/// Real occupancy of the three ternary levels, as fractions summing to 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Occupancy {
    /// Fraction of -1 codes.
    pub minus: f64,
    /// Fraction of 0 codes.
    pub zero: f64,
    /// Fraction of +1 codes.
    pub plus: f64,
}

impl BtqConfig {
    /// The threshold `D`, shape `[1]`, detached.
    ///
    /// # Shapes
    /// - `w`: any shape with at least one element
    /// - output: `[1]`
    pub fn threshold<const D: usize>(&self, w: Tensor<D>) -> Tensor<1> {
        let a = w.detach().abs().flatten::<1>(0, D - 1);
        match self.mode {
            ThresholdMode::Delta => fixed_order_mean(a).mul_scalar(self.delta),
            ThresholdMode::Quantile => {
                let n = a.dims()[0];
                let rank = n.div_ceil(3).max(1) - 1;
                a.sort(0).slice(rank..rank + 1)
            }
        }
    }

    /// Ternarizes `w`.
    ///
    /// # Shapes
    /// - `w`: any shape
    /// - `codes`: same shape; `alpha`: `[1]`
    pub fn ternarize<const D: usize>(&self, w: Tensor<D>) -> Ternarized<D> {
        let threshold = self.threshold(w.clone()).reshape([1; D]);
        let wd = w.clone().detach();
        let nonzero = wd.clone().abs().greater(threshold).float();
        let codes = wd.clone().sign().mul(nonzero.clone());
        // The count is a sum of 0s and 1s, exact in any order; the scale's sum is not, so it
        // takes a fixed order (see `fixed_sum`): the fold must not depend on the CPU.
        let count = nonzero.clone().sum().clamp_min(1.0);
        let alpha =
            fixed_order_sum(wd.clone().abs().mul(nonzero).flatten::<1>(0, D - 1)).div(count);
        // Where every code is 0 the scale is 0; keep the STE's 1/alpha finite all the same.
        let inv_alpha = alpha.clone().clamp_min(1e-12).recip().reshape([1; D]);
        let inside = wd.abs().lower_equal_elem(self.clip).float();
        let surrogate = w.mul(inside).mul(inv_alpha);
        Ternarized {
            codes: crate::qrelu::straight_through(surrogate, codes),
            alpha,
        }
    }

    /// The level-balancing regularizer `R = sum_l (p_l - 1/3)^2` of one weight tensor, with soft
    /// occupancies `p+ = mean(sigmoid((w - D)/T))`, `p- = mean(sigmoid((-w - D)/T))`,
    /// `p0 = 1 - p+ - p-` and `T = temperature * mean|w|` (`D` and `T` held constant).
    ///
    /// # Shapes
    /// - `w`: any shape; output: `[1]`
    pub fn regularizer<const D: usize>(&self, w: Tensor<D>) -> Tensor<1> {
        let threshold = self.threshold(w.clone());
        let flat = w.flatten::<1>(0, D - 1);
        let temperature = flat
            .clone()
            .detach()
            .abs()
            .mean()
            .mul_scalar(self.temperature)
            .clamp_min(1e-12);
        let p_plus = sigmoid(
            (flat.clone() - threshold.clone())
                .div(temperature.clone())
                .clone(),
        )
        .mean();
        let p_minus = sigmoid((flat.neg() - threshold).div(temperature)).mean();
        let p_zero = (p_plus.clone() + p_minus.clone()).neg().add_scalar(1.0);
        let third = 1.0 / 3.0;
        p_plus.sub_scalar(third).powi_scalar(2)
            + p_minus.sub_scalar(third).powi_scalar(2)
            + p_zero.sub_scalar(third).powi_scalar(2)
    }

    /// Real occupancy of -1/0/+1 after ternarization (reads back to the host: a report, not a
    /// training step).
    pub fn occupancy<const D: usize>(&self, w: Tensor<D>) -> Occupancy {
        occupancy(self.ternarize(w).codes)
    }
}

/// Fractions of -1/0/+1 among ternary codes (reads back to the host).
pub fn occupancy<const D: usize>(codes: Tensor<D>) -> Occupancy {
    let n = codes.shape().num_elements().max(1) as f64;
    let flat = codes.detach().flatten::<1>(0, D - 1);
    let plus = flat.clone().equal_elem(1.0).int().sum();
    let minus = flat.equal_elem(-1.0).int().sum();
    let counts = Tensor::cat(vec![plus, minus], 0)
        .into_data()
        .try_into_vec_as::<i64>()
        .expect("occupancy counts are integers");
    let (plus, minus) = (counts[0] as f64, counts[1] as f64);
    Occupancy {
        minus: minus / n,
        zero: (n - plus - minus) / n,
        plus: plus / n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn vec1(t: Tensor<1>) -> Vec<f32> {
        t.into_data().try_into_vec_as::<f32>().unwrap()
    }

    fn tensor(v: &[f32], device: &Device) -> Tensor<1> {
        Tensor::<1>::from_data(TensorData::new(v.to_vec(), [v.len()]), device)
    }

    const W: [f32; 6] = [0.9, -0.05, 0.2, -0.6, 1.4, 0.1];

    #[test]
    fn delta_mode_forward_values() {
        let device = Device::flex();
        let btq = BtqConfig::new();
        // mean|w| = 3.25/6; D = 0.7 * that = 0.379166..
        let d = vec1(btq.threshold(tensor(&W, &device)))[0];
        assert!((d - 0.7 * 3.25 / 6.0).abs() < 1e-6, "{d}");
        let t = btq.ternarize(tensor(&W, &device));
        assert_eq!(vec1(t.codes), vec![1.0, 0.0, 0.0, -1.0, 1.0, 0.0]);
        // alpha = mean(0.9, 0.6, 1.4)
        assert!((vec1(t.alpha)[0] - 2.9 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn quantile_mode_zeroes_a_third() {
        let device = Device::flex();
        let btq = BtqConfig::new().with_mode(ThresholdMode::Quantile);
        // sorted |w|: 0.05 0.1 0.2 0.6 0.9 1.4; rank ceil(6/3) = 2 -> D = 0.1
        assert_eq!(vec1(btq.threshold(tensor(&W, &device))), vec![0.1]);
        let t = btq.ternarize(tensor(&W, &device));
        assert_eq!(vec1(t.codes), vec![1.0, 0.0, 1.0, -1.0, 1.0, 0.0]);
        let occ = occupancy(btq.ternarize(tensor(&W, &device)).codes);
        assert_eq!(
            occ,
            Occupancy {
                minus: 1.0 / 6.0,
                zero: 2.0 / 6.0,
                plus: 3.0 / 6.0
            }
        );
    }

    #[test]
    fn clipped_ste_gradient_mask() {
        let device = Device::flex().autodiff();
        let btq = BtqConfig::new();
        let w = tensor(&W, &device).require_grad();
        let t = btq.ternarize(w.clone());
        let alpha = t.alpha.clone();
        // Float weight alpha * t: its gradient w.r.t. w is 1 where |w| <= 1, 0 beyond (1.4).
        let loss = (t.codes * alpha).sum();
        let g = vec1(w.grad(&loss.backward()).unwrap());
        for (gi, wi) in g.iter().zip(W) {
            let expected = if wi.abs() <= 1.0 { 1.0 } else { 0.0 };
            assert!((gi - expected).abs() < 1e-5, "w={wi} grad={gi}");
        }
    }

    #[test]
    fn regularizer_matches_hand_computation() {
        let device = Device::flex();
        let btq = BtqConfig::new();
        let r = vec1(btq.regularizer(tensor(&W, &device)))[0] as f64;
        let mean_abs: f64 = W.iter().map(|w| (*w as f64).abs()).sum::<f64>() / 6.0;
        let d = 0.7 * mean_abs;
        let temp = 0.1 * mean_abs;
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        let pp: f64 = W.iter().map(|&w| sig((w as f64 - d) / temp)).sum::<f64>() / 6.0;
        let pm: f64 = W.iter().map(|&w| sig((-w as f64 - d) / temp)).sum::<f64>() / 6.0;
        let p0 = 1.0 - pp - pm;
        let expected =
            (pp - 1.0 / 3.0).powi(2) + (pm - 1.0 / 3.0).powi(2) + (p0 - 1.0 / 3.0).powi(2);
        assert!((r - expected).abs() < 1e-5, "{r} vs {expected}");
        assert!(r > 0.0);
    }

    #[test]
    fn regularizer_pushes_skewed_weights_toward_balance() {
        // A skewed tensor: mostly small positive weights, so p0 and p+ dominate and p- is ~0.
        let device = Device::flex().autodiff();
        let btq = BtqConfig::new();
        let mut rng = mognet_arch::ca::SplitMix64::new(11);
        let init: Vec<f32> = (0..600)
            .map(|_| {
                let u = rng.next_f32();
                if u < 0.9 { 0.02 + 0.3 * u } else { -0.5 * u }
            })
            .collect();
        let plain = Device::flex();
        let before = btq.occupancy(tensor(&init, &plain));
        let r_before = vec1(btq.regularizer(tensor(&init, &plain)))[0];
        let mut w = init.clone();
        for _ in 0..200 {
            let wa = tensor(&w, &device).require_grad();
            let g = vec1(wa.grad(&btq.regularizer(wa.clone()).backward()).unwrap());
            for (wi, gi) in w.iter_mut().zip(g) {
                *wi -= 20.0 * gi;
            }
        }
        let after = btq.occupancy(tensor(&w, &plain));
        let r_after = vec1(btq.regularizer(tensor(&w, &plain)))[0];
        let spread = |o: Occupancy| {
            (o.minus - 1.0 / 3.0).abs() + (o.zero - 1.0 / 3.0).abs() + (o.plus - 1.0 / 3.0).abs()
        };
        assert!(r_after < 0.5 * r_before, "R {r_before} -> {r_after}");
        assert!(
            spread(after) < 0.5 * spread(before),
            "{before:?} -> {after:?}"
        );
    }

    #[test]
    fn alpha_and_threshold_are_the_fixed_order_sums() {
        use crate::fixed_sum::fixed_order_sum_host;
        let device = Device::flex();
        let btq = BtqConfig::new();
        let mut rng = mognet_arch::ca::SplitMix64::new(7);
        // Eight weight tensors with magnitudes over four binades, so that the order of the
        // additions shows in the last bits.
        for _ in 0..8 {
            let w: Vec<f32> = (0..3 * 3 * 64 * 37)
                .map(|_| (rng.next_f32() - 0.5) * 2f32.powi((rng.next_u64() % 4) as i32))
                .collect();
            let abs: Vec<f32> = w.iter().map(|v| v.abs()).collect();
            let d = fixed_order_sum_host(&abs) / w.len() as f32 * 0.7f32;
            let d_model = vec1(btq.threshold(tensor(&w, &device)))[0];
            assert_eq!(d_model.to_bits(), d.to_bits());
            let kept: Vec<f32> = abs.iter().map(|&a| if a > d { a } else { 0.0 }).collect();
            let count = kept.iter().filter(|&&a| a > 0.0).count() as f32;
            let alpha = vec1(btq.ternarize(tensor(&w, &device)).alpha)[0];
            assert_eq!(
                alpha.to_bits(),
                (fixed_order_sum_host(&kept) / count).to_bits()
            );
        }
    }
}
