//! `BnQRelu`: batch norm followed by QReLU_k on integer accumulators, with the folded eval path.
//!
//! Training normalizes the real pre-activation `scale * acc` with batch statistics. Eval computes
//! `u = acc * A + B` and `codes = clamp(floor(u), 0, Q)` with the per-channel affine
//! `A = Q * scale * gamma / sqrt(var + eps)`, `B = Q * (beta - mean * gamma / sqrt(var + eps)) + 0.5`:
//! the same function as `QReLU(BN(scale * acc))` with running statistics, written as two f32
//! operations on an exact integer `acc`, so the exporter can turn it into integer thresholds that
//! reproduce it bit for bit.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::{Device, Tensor};

use crate::ops;
use crate::qrelu::{QRelu, QReluConfig};

/// [`BnQRelu`] configuration.
#[derive(Config, Debug)]
pub struct BnQReluConfig {
    /// Channels.
    pub channels: usize,
    /// Activation bits. Default: 3.
    #[config(default = 3)]
    pub bits: u32,
    /// Batch-norm running-statistics momentum. Default: 0.1.
    #[config(default = 0.1)]
    pub momentum: f64,
    /// Batch-norm epsilon. Default: 1e-5.
    #[config(default = 1e-5)]
    pub epsilon: f64,
}

impl BnQReluConfig {
    /// Builds the layer (gamma 1, beta 0, running mean 0, running variance 1).
    pub fn init(&self, device: &Device) -> BnQRelu {
        BnQRelu {
            bn: BatchNormConfig::new(self.channels)
                .with_momentum(self.momentum)
                .with_epsilon(self.epsilon)
                .init(device),
            qrelu: QReluConfig::new().with_bits(self.bits).init(),
        }
    }
}

/// Batch norm + QReLU_k over integer accumulators with a real scale.
#[derive(Module, Debug)]
pub struct BnQRelu {
    /// The batch norm.
    pub bn: BatchNorm,
    /// The quantizer.
    pub qrelu: QRelu,
}

/// Whether a batch norm takes its training path for input on `device` (Burn's own rule).
pub fn bn_is_training(bn: &BatchNorm, device: &Device) -> bool {
    device.is_autodiff() && bn.training.is_enabled()
}

/// Moves `bn`'s running statistics toward a batch's, as Burn's `BatchNorm` does in training:
/// `running = (1 - momentum) * running + momentum * batch` (biased batch variance).
pub fn update_running_stats(bn: &BatchNorm, mean: Tensor<1>, var: Tensor<1>) {
    let device = mean.device();
    let m = bn.momentum;
    let blend = |running: Tensor<1>, batch: Tensor<1>| {
        running
            .to_device(&device)
            .mul_scalar(1.0 - m)
            .add(batch.detach().mul_scalar(m))
            .detach()
    };
    bn.running_mean
        .update(blend(bn.running_mean.value_sync(), mean));
    bn.running_var
        .update(blend(bn.running_var.value_sync(), var));
}

/// The eval-mode affine of a batch norm applied to `scale * acc`: `(gamma', beta')` with
/// `BN(scale * acc) = acc * gamma' + beta'`, each `[channels]`.
pub fn bn_affine(bn: &BatchNorm, scale: Tensor<1>) -> (Tensor<1>, Tensor<1>) {
    let device = scale.device();
    let mean = bn.running_mean.value().to_device(&device);
    let var = bn.running_var.value().to_device(&device);
    let g = bn.gamma.val() * var.add_scalar(bn.epsilon).sqrt().recip();
    let shift = bn.beta.val() - mean * g.clone();
    (g * scale, shift)
}

impl BnQRelu {
    /// Channels.
    pub fn channels(&self) -> usize {
        self.bn.gamma.shape().dims::<1>()[0]
    }

    /// The folded eval affine `(A, B)`, each `[channels]`: codes are
    /// `clamp(floor(acc * A + B), 0, Q)`.
    pub fn folded(&self, scale: Tensor<1>) -> (Tensor<1>, Tensor<1>) {
        let q = self.qrelu.q();
        let (g, shift) = bn_affine(&self.bn, scale);
        (g.mul_scalar(q), shift.mul_scalar(q).add_scalar(0.5))
    }

    /// Codes from accumulators.
    ///
    /// # Shapes
    /// - `acc`: `[batch, channels, h, w]` integer-valued accumulators
    /// - `scale`: `[1]`, the real value of one accumulator unit
    /// - output: `[batch, channels, h, w]` codes in `0..=Q`
    pub fn forward(&self, acc: Tensor<4>, scale: Tensor<1>) -> Tensor<4> {
        if bn_is_training(&self.bn, &acc.device()) {
            if ops::reference_kernels() {
                return self.forward_reference(acc, scale);
            }
            let (codes, mean, var) = ops::bn_qrelu::bn_qrelu_train(
                acc,
                scale,
                self.bn.gamma.val(),
                self.bn.beta.val(),
                self.bn.epsilon,
                self.qrelu.levels,
            );
            update_running_stats(&self.bn, mean, var);
            codes
        } else {
            let c = self.channels();
            let (a, b) = self.folded(scale);
            let u = acc * a.reshape([1, c, 1, 1]) + b.reshape([1, c, 1, 1]);
            self.qrelu.codes_from_shifted(u)
        }
    }
}

impl BnQRelu {
    /// The training forward in composed Burn operations ([`ops::bn_qrelu::reference_train`]),
    /// which the fused operation reproduces; updates the running statistics too.
    ///
    /// # Shapes
    /// - `acc`: `[batch, channels, h, w]` integer-valued accumulators; `scale`: `[1]`
    /// - output: `[batch, channels, h, w]` codes in `0..=Q`
    pub fn forward_reference(&self, acc: Tensor<4>, scale: Tensor<1>) -> Tensor<4> {
        let (z, mean, var) = ops::bn_qrelu::reference_train(
            acc,
            scale,
            self.bn.gamma.val(),
            self.bn.beta.val(),
            self.bn.epsilon,
        );
        update_running_stats(&self.bn, mean, var);
        self.qrelu.forward(z)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    /// After a training step has moved the running statistics, the folded eval path gives the
    /// codes of QReLU(BN(scale * acc)) computed by hand in f64 (away from rounding ties).
    #[test]
    fn folded_eval_equals_qrelu_of_bn() {
        let ad = Device::flex().autodiff();
        let layer = BnQReluConfig::new(2).with_momentum(1.0).init(&ad);
        let acc_host: Vec<f32> = (0..2 * 2 * 3 * 3)
            .map(|i| ((i * 37) % 41) as f32 - 20.0)
            .collect();
        let acc = Tensor::<4>::from_data(TensorData::new(acc_host.clone(), [2, 2, 3, 3]), &ad);
        let scale = Tensor::<1>::from_data(TensorData::from([0.05f32]), &ad);
        let _ = layer.forward(acc, scale);
        let eval = layer.valid();
        let plain = Device::flex();
        let acc = Tensor::<4>::from_data(TensorData::new(acc_host.clone(), [2, 2, 3, 3]), &plain);
        let scale = Tensor::<1>::from_data(TensorData::from([0.05f32]), &plain);
        let codes: Vec<f32> = eval
            .forward(acc, scale)
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap();
        // Momentum 1: running stats are the batch's (biased variance).
        for c in 0..2 {
            let vals: Vec<f64> = (0..2)
                .flat_map(|b| (0..9).map(move |i| (b, i)))
                .map(|(b, i)| 0.05 * acc_host[(b * 2 + c) * 9 + i] as f64)
                .collect();
            let mean = vals.iter().sum::<f64>() / 18.0;
            let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 18.0;
            for b in 0..2 {
                for i in 0..9 {
                    let v = 0.05 * acc_host[(b * 2 + c) * 9 + i] as f64;
                    let z = (v - mean) / (var + 1e-5).sqrt();
                    let expected = (7.0 * z + 0.5).floor().clamp(0.0, 7.0) as f32;
                    assert_eq!(codes[(b * 2 + c) * 9 + i], expected, "c={c} b={b} i={i}");
                }
            }
        }
    }
}
