//! The head: 1x1 ternary conv -> BN -> global average pooling -> logits.

use burn::module::Module;
use burn::nn::BatchNorm;
use burn::tensor::Tensor;

use crate::bn_qrelu::{bn_affine, bn_is_training};
use crate::ternary_conv::TernaryConv2d;

/// The classifier head.
#[derive(Module, Debug)]
pub struct Head {
    /// 1x1 ternary convolution to the classes.
    pub conv: TernaryConv2d,
    /// Batch norm on the class maps.
    pub bn: BatchNorm,
    /// `Q` of the incoming codes.
    pub levels: u32,
}

impl Head {
    /// The eval-mode affine on the spatial sum of accumulators: `logits = S * A + B` with
    /// `S = sum_hw acc`, `A = alpha / Q * gamma / sqrt(var + eps) / (h * w)` and
    /// `B = beta - mean * gamma / sqrt(var + eps)`, each `[classes]`.
    pub fn folded(&self, alpha: Tensor<1>, hw: usize) -> (Tensor<1>, Tensor<1>) {
        let scale = alpha.div_scalar(self.levels as f64 * hw as f64);
        bn_affine(&self.bn, scale)
    }

    /// Logits and the spatial sums `S` of the accumulators.
    ///
    /// # Shapes
    /// - `x`: `[batch, c, h, w]` codes
    /// - logits: `[batch, classes]`; sums: `[batch, classes]`
    pub fn forward_sums(&self, x: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let [b, _, h, w] = x.dims();
        let (acc, alpha) = self.conv.accumulate(x);
        let classes = acc.dims()[1];
        let sums = acc
            .clone()
            .reshape([b, classes, h * w])
            .sum_dim(2)
            .reshape([b, classes]);
        if bn_is_training(&self.bn, &acc.device()) {
            let scale = alpha.div_scalar(self.levels as f64).reshape([1, 1, 1, 1]);
            let z = self.bn.forward(acc * scale);
            let logits = z
                .reshape([b, classes, h * w])
                .mean_dim(2)
                .reshape([b, classes]);
            (logits, sums)
        } else {
            let (a, bias) = self.folded(alpha, h * w);
            let logits = sums.clone() * a.reshape([1, classes]) + bias.reshape([1, classes]);
            (logits, sums)
        }
    }

    /// Logits.
    ///
    /// # Shapes
    /// - `x`: `[batch, c, h, w]` codes; output: `[batch, classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_sums(x).0
    }
}
