//! Float evaluation of a model on an image set: loss, accuracy and MRB gate-on rates.

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Device, Int, Tensor};
use mognet_core::Mognet;

use crate::data::{ImageBatcher, ImageItem, ImageSet};
use crate::progress::Progress;

/// What an evaluation measured.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalReport {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Correct top-1 predictions.
    pub correct: usize,
    /// Images evaluated.
    pub total: usize,
    /// Fraction of (image, channel) pairs whose gate selected the residual, per MRB.
    pub gate_on: Vec<(String, f64)>,
}

impl EvalReport {
    /// Top-1 accuracy.
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.total.max(1) as f64
    }
}

/// Evaluates `model` (in eval mode, on a device without autodiff) on `set`.
pub fn evaluate(
    model: &Mognet,
    set: &ImageSet,
    batch_size: usize,
    device: &Device,
    progress: Option<&Progress>,
) -> EvalReport {
    let batcher = ImageBatcher {
        channels: set.channels,
        size: set.size,
    };
    let ce = CrossEntropyLossConfig::new().init(device);
    let mut loss_sum = 0.0;
    let mut correct = 0usize;
    let mut gate_sums: Vec<(String, f64)> = Vec::new();
    let batch_size = batch_size.max(1);
    for start in (0..set.len()).step_by(batch_size) {
        let end = (start + batch_size).min(set.len());
        let items: Vec<ImageItem> = (start..end)
            .map(|i| ImageItem {
                pixels: set.image(i).to_vec(),
                label: set.labels[i] as usize,
            })
            .collect();
        let (x, y) = batcher.host_data(&items);
        let x = Tensor::<4>::from_data(x, device);
        let y = Tensor::<1, Int>::from_data(y, device);
        let (logits, trace) = model.forward_trace(x);
        let n = end - start;
        let loss = ce.forward(logits.clone(), y.clone());
        let hits = logits.argmax(1).reshape([n]).equal(y).int().sum();
        let mut stats = vec![loss.mul_scalar(n as f64), hits.float()];
        for (_, g) in &trace.gates {
            stats.push(g.clone().mean());
        }
        let values = Tensor::cat(stats, 0)
            .into_data()
            .try_into_vec_as::<f64>()
            .expect("evaluation statistics are floats");
        loss_sum += values[0];
        correct += values[1].round() as usize;
        if gate_sums.is_empty() {
            gate_sums = trace
                .gates
                .iter()
                .map(|(name, _)| (name.clone(), 0.0))
                .collect();
        }
        for (slot, v) in gate_sums.iter_mut().zip(&values[2..]) {
            slot.1 += v * n as f64;
        }
        if let Some(p) = progress {
            p.inc(n as u64);
        }
    }
    let total = set.len();
    EvalReport {
        loss: loss_sum / total.max(1) as f64,
        correct,
        total,
        gate_on: gate_sums
            .into_iter()
            .map(|(name, s)| (name, s / total.max(1) as f64))
            .collect(),
    }
}
