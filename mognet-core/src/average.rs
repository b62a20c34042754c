//! Weight averaging: one model whose every float tensor (weights, thresholds, batch-norm affine
//! and running statistics) is the element-wise mean of several models of one architecture.
//!
//! Models fine-tuned from the same weights usually lie in one basin of the loss, where the mean
//! of their latent weights can generalize better than either. The running statistics of the
//! mean are not the statistics of the averaged network, so callers re-estimate them
//! ([`Mognet::recalibrate_batch_norms`]) before evaluating or exporting the result.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::Tensor;

use crate::Mognet;
use mognet_arch::Node;

/// Why models cannot be averaged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AverageError {
    /// Fewer than one model.
    #[error("no model to average")]
    Empty,
    /// The models are not the same architecture.
    #[error("model {index} differs from model 0: {detail}")]
    Mismatch {
        /// The model (0-based) that differs.
        index: usize,
        /// What differs.
        detail: String,
    },
}

/// Every float tensor of a module, flattened, with its shape, in visiting order.
#[derive(Default)]
struct FloatTensors(Vec<(Vec<usize>, Tensor<1>)>);

impl ModuleVisitor for FloatTensors {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        let shape = value.shape().dims::<D>().to_vec();
        let n: usize = shape.iter().product();
        self.0.push((shape, value.reshape([n])));
    }
}

/// Replaces the k-th float tensor visited by the k-th sum, divided by the count.
struct MeanMapper {
    sums: std::vec::IntoIter<(Vec<usize>, Tensor<1>)>,
    count: f64,
}

impl ModuleMapper for MeanMapper {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (shape, sum) = self
            .sums
            .next()
            .expect("the sums follow the visiting order");
        let dims: [usize; D] = shape.try_into().expect("the shapes were checked");
        let mean = sum.div_scalar(self.count).reshape(dims);
        param.map(|value| mean.to_device(&value.device()))
    }
}

/// The generated PW2 layers' `(rule, seed, warmup)`: their weights are constants, not
/// parameters, so models that differ there cannot be averaged.
fn generated_pw2(model: &Mognet) -> Vec<(u8, u64, usize)> {
    let blocks = model
        .spec
        .topology()
        .into_iter()
        .filter_map(|node| match node {
            Node::Block(b) => Some(b.id),
            _ => None,
        });
    blocks
        .filter_map(|id| model.block(id).0.pw2.fixed())
        .map(|ca| (ca.rule, ca.seed, ca.warmup))
        .collect()
}

fn float_tensors(model: &Mognet) -> FloatTensors {
    let mut tensors = FloatTensors::default();
    model.visit(&mut tensors);
    tensors
}

/// The element-wise mean of `models` (all of one architecture, on one device): the first
/// model's structure and parameter ids, with every float tensor averaged.
pub fn average_models(models: Vec<Mognet>) -> Result<Mognet, AverageError> {
    let mut models = models.into_iter();
    let first = models.next().ok_or(AverageError::Empty)?;
    let mut sums = float_tensors(&first).0;
    let mut count = 1usize;
    for (index, model) in models.enumerate().map(|(i, m)| (i + 1, m)) {
        let mismatch = |detail: String| AverageError::Mismatch { index, detail };
        if model.spec != first.spec {
            return Err(mismatch("another network description".into()));
        }
        if generated_pw2(&model) != generated_pw2(&first) {
            return Err(mismatch(
                "other generated PW2 weights (another CA rule or seed)".into(),
            ));
        }
        let tensors = float_tensors(&model).0;
        if tensors.len() != sums.len() {
            return Err(mismatch(format!(
                "{} float tensors, not {}",
                tensors.len(),
                sums.len()
            )));
        }
        for (k, ((shape, sum), (other_shape, value))) in sums.iter_mut().zip(tensors).enumerate() {
            if *shape != other_shape {
                return Err(mismatch(format!(
                    "float tensor {k} has shape {other_shape:?}, not {shape:?}"
                )));
            }
            *sum = sum.clone() + value.to_device(&sum.device());
        }
        count += 1;
    }
    let mut mapper = MeanMapper {
        sums: sums.into_iter(),
        count: count as f64,
    };
    Ok(first.map(&mut mapper))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::tiny_config;
    use burn::tensor::Device;

    /// Adds `0.01 * k * sin(i)` to the i-th value of every parameter.
    struct Shift(f32);

    impl ModuleMapper for Shift {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let k = self.0;
            param.map(|t| {
                let shape = t.shape();
                let n = shape.num_elements();
                let noise: Vec<f32> = (0..n).map(|i| 0.01 * k * (i as f32).sin()).collect();
                let noise = Tensor::<1>::from_data(noise.as_slice(), &t.device());
                t + noise.reshape(shape)
            })
        }
    }

    fn values(model: &Mognet) -> Vec<Vec<f32>> {
        float_tensors(model)
            .0
            .into_iter()
            .map(|(_, t)| t.into_data().try_into_vec::<f32>().unwrap())
            .collect()
    }

    /// Every float tensor of the average, running statistics included, is the mean of the
    /// inputs' (three models with different weights).
    #[test]
    fn every_float_tensor_is_the_mean() {
        let device = Device::flex();
        let models: Vec<Mognet> = (1..=3)
            .map(|k| {
                // Other latent weights and running statistics, the same generated PW2 weights.
                let m = tiny_config().init(&device).unwrap();
                m.map(&mut Shift(k as f32))
            })
            .collect();
        let stem_running_mean = |m: &Mognet| -> Vec<f32> {
            let mean = m.stem.out.bn.running_mean.value_sync();
            mean.into_data().try_into_vec::<f32>().unwrap()
        };
        let input_stem_means: Vec<Vec<f32>> = models.iter().map(stem_running_mean).collect();
        let inputs: Vec<Vec<Vec<f32>>> = models.iter().map(values).collect();
        let average = average_models(models).unwrap();
        let mean = values(&average);
        assert_eq!(mean.len(), inputs[0].len());
        let mut differing = 0;
        for (k, tensor) in mean.iter().enumerate() {
            for (i, v) in tensor.iter().enumerate() {
                let expected = (inputs[0][k][i] + inputs[1][k][i] + inputs[2][k][i]) / 3.0;
                assert!(
                    (v - expected).abs() <= 1e-6 * expected.abs().max(1.0),
                    "{k}/{i}"
                );
                differing += usize::from(inputs[0][k][i] != inputs[1][k][i]);
            }
        }
        assert!(differing > 1000, "the inputs differ ({differing} values)");
        // Running statistics are averaged too: the stem's running mean, read directly.
        let averaged = stem_running_mean(&average);
        assert!(
            averaged.iter().any(|&v| v != 0.0),
            "shifted from the initial 0"
        );
        for (i, v) in averaged.iter().enumerate() {
            let expected: f32 = input_stem_means.iter().map(|m| m[i]).sum::<f32>() / 3.0;
            assert!(
                (v - expected).abs() <= 1e-6,
                "running mean {i}: {v} vs {expected}"
            );
        }
    }

    #[test]
    fn mismatched_architectures_and_no_model_are_errors() {
        let device = Device::flex();
        let a = tiny_config().init(&device).unwrap();
        let mut wider = tiny_config();
        wider.stem_width = 16;
        let b = wider.init(&device).unwrap();
        match average_models(vec![a, b]) {
            Err(AverageError::Mismatch { index: 1, .. }) => {}
            other => panic!("expected a mismatch, got {:?}", other.err()),
        }
        // Same shapes, other CA seeds for the generated PW2 weights.
        let a = tiny_config().init(&device).unwrap();
        let c = tiny_config().with_seed(2).init(&device).unwrap();
        match average_models(vec![a, c]) {
            Err(AverageError::Mismatch { index: 1, detail }) => {
                assert!(detail.contains("PW2"), "{detail}")
            }
            other => panic!("expected a PW2 mismatch, got {:?}", other.err()),
        }
        assert_eq!(average_models(Vec::new()).err(), Some(AverageError::Empty));
    }
}
