//! Knowledge distillation: the student also learns the softened class probabilities of trained
//! teachers (the mean of their softmaxes at temperature `T`), which carry more about how classes
//! resemble each other than one-hot labels do.
//!
//! Loss: `(1 - w) * CE(logits, labels) + w * T^2 * H(p_teachers, softmax(logits / T))`, where `H`
//! is the cross-entropy against the soft targets (the KL divergence plus the teachers' entropy,
//! a constant, so the same gradient). `T^2` keeps the soft term's gradients at the scale of the
//! hard term's as `T` grows.

use std::path::PathBuf;

use burn::config::Config;
use burn::module::Module;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Device, Tensor, TensorData};
use mognet_core::Mognet;
use mognet_core::persist::load_weights_file;

use crate::data::{ImageBatcher, ImageSet};
use crate::train::config::InvalidConfig;
use crate::train::run::TrainError;

/// Distillation settings of a run.
#[derive(Config, Debug, PartialEq)]
pub struct DistillConfig {
    /// Teacher weights (`.bpk` files with their configs beside them, as for `init`), any
    /// architecture with the run's classes; their softmaxes are averaged.
    pub teachers: Vec<PathBuf>,
    /// Softmax temperature `T` of teachers and student in the soft term. Default: 4.
    #[config(default = 4.0)]
    pub temperature: f64,
    /// Weight `w` of the soft term; the label cross-entropy gets `1 - w`. Default: 0.5.
    #[config(default = 0.5)]
    pub weight: f64,
}

impl DistillConfig {
    /// Checks the settings: at least one teacher, `T > 0`, `w` in [0, 1].
    pub fn check(&self) -> Result<(), InvalidConfig> {
        let bad = |field: &'static str, detail: String| Err(InvalidConfig { field, detail });
        if self.teachers.is_empty() {
            return bad("teacher", "must name at least one weights file".into());
        }
        let t = self.temperature;
        if !(t.is_finite() && t > 0.0) {
            return bad(
                "distill_temperature",
                format!("must be a finite number above 0, got {t}"),
            );
        }
        let w = self.weight;
        if !(w.is_finite() && (0.0..=1.0).contains(&w)) {
            return bad("distill_weight", format!("must be in [0, 1], got {w}"));
        }
        Ok(())
    }
}

/// The teachers, in eval mode on the device without autodiff.
pub(crate) struct Teachers {
    models: Vec<Mognet>,
    device: Device,
}

impl Teachers {
    /// Loads every teacher of `config` on `device` (without autodiff) and checks that it
    /// predicts `num_classes` classes from `in_channels` channels.
    pub(crate) fn load(
        config: &DistillConfig,
        in_channels: usize,
        num_classes: usize,
        device: &Device,
    ) -> Result<Self, TrainError> {
        let mut models = Vec::with_capacity(config.teachers.len());
        for path in &config.teachers {
            let (model_config, model) = load_weights_file(path, device)?;
            if (model_config.in_channels, model_config.num_classes) != (in_channels, num_classes) {
                return Err(TrainError::RunDir {
                    path: path.clone(),
                    detail: format!(
                        "a teacher of {} channels and {} classes cannot teach a model of {} and {}",
                        model_config.in_channels,
                        model_config.num_classes,
                        in_channels,
                        num_classes
                    ),
                });
            }
            models.push(model.valid());
        }
        Ok(Teachers {
            models,
            device: device.clone(),
        })
    }

    /// The mean of the teachers' softmaxes at temperature `t`, `[batch, classes]`.
    ///
    /// # Shapes
    /// - `x`: host pixels `[batch, channels, h, w]`, `p / 255`
    /// - output: `[batch, classes]`, rows summing to 1
    pub(crate) fn soft_targets(&self, x: TensorData, t: f64) -> Tensor<2> {
        let x = Tensor::<4>::from_data(x, &self.device);
        let n = self.models.len() as f64;
        let probs = self
            .models
            .iter()
            .map(|m| softmax(m.forward(x.clone()).div_scalar(t), 1));
        probs
            .reduce(|a, b| a + b)
            .expect("at least one teacher")
            .div_scalar(n)
    }

    /// Top-1 accuracy of the teachers' ensemble (the argmax of their mean softmax) on `set`.
    pub(crate) fn accuracy(&self, set: &ImageSet, batch_size: usize) -> f64 {
        let batcher = ImageBatcher::for_set(set);
        let mut correct = 0usize;
        for range in set.batch_ranges(batch_size, set.len()) {
            let items = set.items(range);
            let (x, _) = batcher.host_data(&items);
            let predicted = self.soft_targets(x, 1.0).argmax(1);
            let predicted = predicted.into_data().try_into_vec_as::<i64>();
            let predicted = predicted.expect("class indices are integers");
            correct += items
                .iter()
                .zip(predicted)
                .filter(|(item, p)| item.label as i64 == *p)
                .count();
        }
        correct as f64 / set.len().max(1) as f64
    }
}

/// The soft term `T^2 * H(targets, softmax(logits / T))`, averaged over the batch, `[1]`.
///
/// # Shapes
/// - `logits`: `[batch, classes]` (the student's, with autodiff)
/// - `targets`: `[batch, classes]`, rows summing to 1, on `logits`' device
pub(crate) fn soft_loss(logits: Tensor<2>, targets: Tensor<2>, t: f64) -> Tensor<1> {
    let log_probs = log_softmax(logits.div_scalar(t), 1);
    (targets * log_probs).sum_dim(1).mean().mul_scalar(-t * t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits(values: &[f32], device: &Device) -> Tensor<2> {
        Tensor::<2>::from_data(TensorData::new(values.to_vec(), [1, values.len()]), device)
    }

    /// The soft term of logits `[2, 0, -1]` against targets `[0.5, 0.3, 0.2]` at T = 2, by
    /// hand: `-T^2 * sum_c p_c * log softmax(z / T)_c`.
    #[test]
    fn soft_loss_is_the_scaled_cross_entropy_against_the_targets() {
        let device = Device::flex();
        let z = [2.0f64, 0.0, -1.0];
        let p = [0.5f64, 0.3, 0.2];
        let t = 2.0;
        let log_sum = z.iter().map(|v| (v / t).exp()).sum::<f64>().ln();
        let expected = -t * t * (0..3).map(|c| p[c] * (z[c] / t - log_sum)).sum::<f64>();
        let targets = logits(&[0.5, 0.3, 0.2], &device);
        let got = soft_loss(logits(&[2.0, 0.0, -1.0], &device), targets, t);
        let got = got.into_scalar::<f32>() as f64;
        assert!((got - expected).abs() < 1e-5, "{got} vs {expected}");
        // Against its own softened softmax the soft term is its entropy, its minimum.
        let own = softmax(logits(&[1.0, 0.0, -1.0], &device).div_scalar(t), 1);
        let at_min = soft_loss(logits(&[1.0, 0.0, -1.0], &device), own.clone(), t);
        let moved = soft_loss(logits(&[1.5, 0.0, -1.0], &device), own, t);
        assert!(moved.into_scalar::<f32>() > at_min.into_scalar::<f32>());
    }

    #[test]
    fn absurd_settings_are_named() {
        let ok = DistillConfig::new(vec![PathBuf::from("t.bpk")]);
        assert!(ok.check().is_ok());
        let cases = [
            (DistillConfig::new(Vec::new()), "teacher"),
            (ok.clone().with_temperature(0.0), "distill_temperature"),
            (ok.clone().with_temperature(f64::NAN), "distill_temperature"),
            (ok.clone().with_weight(1.5), "distill_weight"),
            (ok.clone().with_weight(-0.1), "distill_weight"),
        ];
        for (config, field) in cases {
            assert_eq!(config.check().unwrap_err().field, field);
        }
    }
}
