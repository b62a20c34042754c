//! QReLU_k: the k-bit activation quantizer of SPEC ("QReLU_k").
//!
//! The network carries activations as *codes* `a in 0..=Q` (float tensors holding small
//! integers), not as values `a/Q`: convolutions over codes and ternary weights are then exact
//! integer sums in f32, which is what lets the integer engine reproduce the float model bit for
//! bit. The straight-through backward is the SPEC's (gradient 1 of the value `a/Q` with respect to
//! `z` inside `[0, 1]`), which on codes is a gradient of `Q`.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::Tensor;

/// [`QRelu`] configuration.
#[derive(Config, Debug, PartialEq)]
pub struct QReluConfig {
    /// Activation bits `k`; codes are `0..=2^k - 1`. Default: 3 (the paper's).
    #[config(default = 3)]
    pub bits: u32,
}

impl QReluConfig {
    /// Builds the quantizer.
    ///
    /// # Panics
    /// If `bits` is 0 or above 8 (codes must fit a byte).
    pub fn init(&self) -> QRelu {
        assert!(
            (1..=8).contains(&self.bits),
            "QReLU bits must be in 1..=8, got {}",
            self.bits
        );
        QRelu {
            levels: (1u32 << self.bits) - 1,
        }
    }
}

/// k-bit activation quantizer: `a = clamp(floor(Q*z + 0.5), 0, Q)` (round half up).
#[derive(Module, Debug)]
pub struct QRelu {
    /// `Q = 2^k - 1`, the largest code.
    pub levels: u32,
}

impl QRelu {
    /// The largest code `Q` as a float.
    pub fn q(&self) -> f64 {
        self.levels as f64
    }

    /// Quantizes real pre-activations `z` to codes.
    ///
    /// Forward: `clamp(floor(Q*z + 0.5), 0, Q)`. Backward (straight-through): `Q` where
    /// `0 <= z <= 1`, else 0; i.e. gradient 1 of the value `a/Q`.
    ///
    /// # Shapes
    /// - `z`: any shape `[d1, ..., dD]`
    /// - output: same shape, values in `0..=Q`
    pub fn forward<const D: usize>(&self, z: Tensor<D>) -> Tensor<D> {
        let q = self.q();
        let codes = round_half_up(z.clone().mul_scalar(q).detach()).clamp(0.0, q);
        let inside = z
            .clone()
            .greater_equal_elem(0.0)
            .bool_and(z.clone().lower_equal_elem(1.0))
            .float();
        straight_through(z.mul(inside).mul_scalar(q), codes)
    }

    /// Quantizes already-scaled inputs `u = Q*z + 0.5`, as the folded eval path computes them:
    /// `clamp(floor(u), 0, Q)`. No gradient.
    ///
    /// # Shapes
    /// - `u`: any shape; output: same shape
    pub fn codes_from_shifted<const D: usize>(&self, u: Tensor<D>) -> Tensor<D> {
        u.floor().clamp(0.0, self.q())
    }
}

/// `floor(v + 0.5)`: round half up, as SPEC requires everywhere (Burn's `round` is half-even).
pub fn round_half_up<const D: usize>(v: Tensor<D>) -> Tensor<D> {
    v.add_scalar(0.5).floor()
}

/// Returns `forward` in value and `surrogate`'s gradient in backward: `s - detach(s) + detach(f)`.
/// The value is exactly `forward` (`s - s` is exactly 0 for finite `s`).
pub fn straight_through<const D: usize>(surrogate: Tensor<D>, forward: Tensor<D>) -> Tensor<D> {
    surrogate.clone() - surrogate.detach() + forward.detach()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn values(t: Tensor<1>) -> Vec<f32> {
        t.into_data().try_into_vec_as::<f32>().unwrap()
    }

    #[test]
    fn codes_round_half_up_and_clip() {
        let device = Device::flex();
        let q = QReluConfig::new().init();
        assert_eq!(q.levels, 7);
        // 0.5/7 and 1.5/7 are ties: half up gives 1 and 2 (half-even would give 0 and 2).
        let z = [
            -0.3f32,
            0.0,
            0.4 / 7.0,
            0.5 / 7.0,
            1.5 / 7.0,
            2.5 / 7.0,
            0.5,
            6.6 / 7.0,
            1.0,
            1.7,
        ];
        let out = values(q.forward(Tensor::<1>::from_data(TensorData::from(z), &device)));
        assert_eq!(out, vec![0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 7.0, 7.0, 7.0]);
    }

    #[test]
    fn burn_round_is_half_even_so_we_do_not_use_it() {
        let device = Device::flex();
        let v = Tensor::<1>::from_data(TensorData::from([0.5f32, 1.5, 2.5, -0.5]), &device);
        assert_eq!(values(v.clone().round()), vec![0.0, 2.0, 2.0, -0.0]);
        assert_eq!(values(round_half_up(v)), vec![1.0, 2.0, 3.0, 0.0]);
    }

    #[test]
    fn straight_through_gradient_is_one_inside_unit_interval() {
        let device = Device::flex().autodiff();
        let q = QReluConfig::new().with_bits(3).init();
        let z = Tensor::<1>::from_data(
            TensorData::from([-0.2f32, 0.0, 0.5 / 7.0, 0.5, 1.0, 1.3]),
            &device,
        )
        .require_grad();
        // Gradient of the *value* a/Q.
        let value = q.forward(z.clone()).div_scalar(7.0);
        let grads = value.sum().backward();
        let g = values(z.grad(&grads).unwrap());
        assert_eq!(g, vec![0.0, 1.0, 1.0, 1.0, 1.0, 0.0]);
    }

    #[test]
    fn other_widths() {
        let device = Device::flex();
        let q = QReluConfig::new().with_bits(2).init();
        let z = Tensor::<1>::from_data(TensorData::from([0.5f32 / 3.0, 0.49, 2.0]), &device);
        assert_eq!(values(q.forward(z)), vec![1.0, 1.0, 3.0]);
    }
}
