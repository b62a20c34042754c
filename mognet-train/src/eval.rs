//! Float evaluation of a model on an image set: loss, accuracy and MRB gate-on rates.

use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::tensor::{Device, Int, Tensor};
use mognet_core::Mognet;

use crate::data::{ImageBatcher, ImageSet};
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
    let pass = EvalPass {
        model,
        set,
        batcher: ImageBatcher::for_set(set),
        ce: CrossEntropyLossConfig::new().init(device),
        device,
    };
    let mut loss_sum = 0.0;
    let mut correct = 0usize;
    let mut gate_sums: Vec<(String, f64)> = Vec::new();
    for range in set.batch_ranges(batch_size, set.len()) {
        let n = range.len();
        let batch = pass.batch(range);
        loss_sum += batch.loss_sum;
        correct += batch.correct;
        if gate_sums.is_empty() {
            gate_sums = batch
                .gate_on
                .iter()
                .map(|(name, _)| (name.clone(), 0.0))
                .collect();
        }
        for (slot, (_, rate)) in gate_sums.iter_mut().zip(&batch.gate_on) {
            slot.1 += rate * n as f64;
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

/// What one evaluation pass reads.
struct EvalPass<'a> {
    model: &'a Mognet,
    set: &'a ImageSet,
    batcher: ImageBatcher,
    ce: CrossEntropyLoss,
    device: &'a Device,
}

/// One batch's sums: loss times images, correct answers, and each MRB's gate-on rate.
struct BatchStats {
    loss_sum: f64,
    correct: usize,
    gate_on: Vec<(String, f64)>,
}

impl EvalPass<'_> {
    /// The statistics of images `range` of the set, read back from the device in one transfer.
    fn batch(&self, range: std::ops::Range<usize>) -> BatchStats {
        let n = range.len();
        let items = self.set.items(range);
        let (x, y) = self.batcher.host_data(&items);
        let x = Tensor::<4>::from_data(x, self.device);
        let y = Tensor::<1, Int>::from_data(y, self.device);
        let (logits, trace) = self.model.forward_trace(x);
        let loss = self.ce.forward(logits.clone(), y.clone());
        let hits = logits.argmax(1).reshape([n]).equal(y).int().sum();
        let mut stats = vec![loss.mul_scalar(n as f64), hits.float()];
        stats.extend(trace.gates.iter().map(|(_, g)| g.clone().mean()));
        let values = Tensor::cat(stats, 0)
            .into_data()
            .try_into_vec_as::<f64>()
            .expect("evaluation statistics are floats");
        BatchStats {
            loss_sum: values[0],
            correct: values[1].round() as usize,
            gate_on: trace
                .gates
                .iter()
                .map(|(name, _)| name.clone())
                .zip(values[2..].iter().copied())
                .collect(),
        }
    }
}
