//! The training loss: cross-entropy, with label smoothing when the run asks for it.

use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::tensor::Device;

use crate::train::config::TrainConfig;

/// The cross-entropy the optimizer minimises for the run `t` (before the BTQ regularizer):
/// with `label_smoothing = a`, the target is `1 - a` on the label plus `a / C` on every class.
pub(super) fn training_loss(t: &TrainConfig, device: &Device) -> CrossEntropyLoss {
    let smoothing = t.label_smoothing.filter(|&a| a > 0.0).map(|a| a as f32);
    CrossEntropyLossConfig::new()
        .with_smoothing(smoothing)
        .init(device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::DatasetKind;
    use burn::tensor::{Int, Tensor, TensorData};

    /// The loss of logits `[2, 0, -1]` with label 0, computed by hand from the softmax.
    fn loss_by_hand(a: f64) -> f64 {
        let z = [2.0f64, 0.0, -1.0];
        let log_sum = z.iter().map(|v| v.exp()).sum::<f64>().ln();
        let target = |c: usize| (if c == 0 { 1.0 - a } else { 0.0 }) + a / 3.0;
        -(0..3).map(|c| target(c) * (z[c] - log_sum)).sum::<f64>()
    }

    fn loss_of(smoothing: Option<f64>) -> f64 {
        let device = Device::flex();
        let t = TrainConfig::new(DatasetKind::FashionMnist, "data".into())
            .with_label_smoothing(smoothing);
        let logits =
            Tensor::<2>::from_data(TensorData::new(vec![2.0f32, 0.0, -1.0], [1, 3]), &device);
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64], [1]), &device);
        training_loss(&t, &device)
            .forward(logits, labels)
            .into_scalar::<f32>() as f64
    }

    #[test]
    fn smoothing_moves_the_target_as_documented() {
        for (smoothing, a) in [
            (None, 0.0),
            (Some(0.0), 0.0),
            (Some(0.1), 0.1),
            (Some(0.3), 0.3),
        ] {
            let got = loss_of(smoothing);
            let want = loss_by_hand(a);
            assert!(
                (got - want).abs() < 1e-5,
                "smoothing {smoothing:?}: {got} vs {want}"
            );
        }
        // Smoothing costs a confident correct prediction: the loss grows with a.
        assert!(loss_of(Some(0.1)) > loss_of(None) + 0.05);
    }
}
