//! Benchmarks (programs, not tests): training-step throughput with a phase breakdown, and data
//! loading throughput.

use std::sync::Arc;
use std::time::Instant;

use burn::data::dataloader::DataLoaderBuilder;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use mognet_core::{MognetConfig, SplitMix64};

use crate::data::{Augment, AugmentedSet, ImageBatcher, ImageSet};
use crate::train::batches::spawn_batches;

/// Median of a sample (0 for an empty one).
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Median seconds per phase of one training step, and images per second.
#[derive(Debug, Clone, PartialEq)]
pub struct StepTiming {
    /// Forward pass and loss.
    pub forward: f64,
    /// Backward pass.
    pub backward: f64,
    /// Optimizer step.
    pub optimizer: f64,
    /// Whole step.
    pub step: f64,
    /// `batch / step`.
    pub images_per_sec: f64,
}

/// Seconds of each phase of the timed steps, one entry per step.
#[derive(Debug, Default)]
struct PhaseSamples {
    forward: Vec<f64>,
    backward: Vec<f64>,
    optimizer: Vec<f64>,
}

impl PhaseSamples {
    /// Records one step from the instants it started, finished its forward, its backward and
    /// its optimizer step.
    fn push(&mut self, [t0, t1, t2, t3]: [Instant; 4]) {
        self.forward.push((t1 - t0).as_secs_f64());
        self.backward.push((t2 - t1).as_secs_f64());
        self.optimizer.push((t3 - t2).as_secs_f64());
    }

    /// The medians; the whole step's is the median of the steps' sums.
    fn timing(self, batch: usize) -> StepTiming {
        let steps = (0..self.forward.len())
            .map(|i| self.forward[i] + self.backward[i] + self.optimizer[i])
            .collect();
        let step = median(steps);
        StepTiming {
            forward: median(self.forward),
            backward: median(self.backward),
            optimizer: median(self.optimizer),
            step,
            images_per_sec: batch as f64 / step,
        }
    }
}

/// `batch` seeded random images of `config`'s input shape, in [0, 1).
fn random_input(config: &MognetConfig, batch: usize, seed: u64, device: &Device) -> Tensor<4> {
    let [h, w] = config.input_size;
    let c = config.in_channels;
    let mut rng = SplitMix64::new(seed);
    let pixels: Vec<f32> = (0..batch * c * h * w).map(|_| rng.next_f32()).collect();
    Tensor::<4>::from_data(TensorData::new(pixels, [batch, c, h, w]), device)
}

/// Times `steps` training steps (after `warmup` untimed ones) of `config` at `batch` on `device`
/// (without autodiff; it is added here), on random images, with SGD as the trainer's default
/// (Nesterov momentum 0.9, weight decay 5e-4, here on every parameter) and regularizer weight
/// (0.01).
pub fn train_step(
    config: &MognetConfig,
    batch: usize,
    warmup: usize,
    steps: usize,
    device: &Device,
) -> StepTiming {
    let ad = device.clone().autodiff();
    let mut model = config.init(&ad).expect("a valid config");
    let momentum = MomentumConfig::new()
        .with_momentum(0.9)
        .with_dampening(0.0)
        .with_nesterov(true);
    let mut optim = SgdConfig::new()
        .with_momentum(Some(momentum))
        .with_weight_decay(Some(WeightDecayConfig::new(5e-4)))
        .init();
    let ce = CrossEntropyLossConfig::new().init(&ad);
    let x = random_input(config, batch, 7, &ad);
    let labels: Vec<i64> = (0..batch)
        .map(|i| (i % config.num_classes) as i64)
        .collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [batch]), &ad);
    let sync = || device.sync().expect("device sync");
    let mut samples = PhaseSamples::default();
    for i in 0..warmup + steps {
        let t0 = Instant::now();
        let loss =
            ce.forward(model.forward(x.clone()), y.clone()) + model.regularizer().mul_scalar(0.01);
        // Reading the loss forces the forward to completion on every backend.
        let _ = loss.clone().into_data();
        sync();
        let t1 = Instant::now();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        sync();
        let t2 = Instant::now();
        model = optim.step(0.01, model, grads);
        // Touch a weight so lazy backends finish the update before the clock stops.
        let weight = model.head.conv.weight.val();
        let _ = weight.slice([0..1, 0..1, 0..1, 0..1]).into_data();
        sync();
        if i >= warmup {
            samples.push([t0, t1, t2, Instant::now()]);
        }
    }
    samples.timing(batch)
}

/// Float eval images/s of `config` (Burn, no autodiff) at `batch`.
pub fn eval_throughput(config: &MognetConfig, batch: usize, rounds: usize, device: &Device) -> f64 {
    let model = config.init(device).expect("a valid config").valid();
    let x = random_input(config, batch, 9, device);
    let _ = model.forward(x.clone()).into_data();
    let times: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            let _ = model.forward(x.clone()).into_data();
            t.elapsed().as_secs_f64()
        })
        .collect();
    batch as f64 / median(times)
}

/// A CIFAR-shaped set of `n` random images.
pub fn random_cifar_like(n: usize) -> ImageSet {
    let mut rng = SplitMix64::new(3);
    ImageSet {
        channels: 3,
        size: 32,
        num_classes: 10,
        pixels: (0..n * 3072).map(|_| rng.next_u64() as u8).collect(),
        labels: (0..n).map(|i| (i % 10) as u16).collect(),
    }
}

/// Batches per second of Burn's data loader with `workers` threads, augmenting `set`, and of the
/// trainer's own in-order pipeline (one helper thread), over `batches` batches each.
pub fn data_loading(set: ImageSet, batch: usize, workers: usize, rounds: usize) -> (f64, f64) {
    let set = Arc::new(set);
    let device = Device::flex();
    let view = AugmentedSet {
        set: set.clone(),
        augment: Augment::default_for(crate::data::DatasetKind::Cifar10),
        seed: 1,
        epoch: 0,
    };
    let batcher = ImageBatcher::for_set(&set);
    let loader = DataLoaderBuilder::new(batcher)
        .batch_size(batch)
        .shuffle(1)
        .num_workers(workers)
        .set_device(device.clone())
        .build(view.clone());
    let mut burn_rates = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        let mut n = 0;
        for b in loader.iter() {
            let b = b.expect("in-memory items");
            n += 1;
            std::hint::black_box(b.images);
        }
        burn_rates.push(n as f64 / t.elapsed().as_secs_f64());
    }
    let mut own_rates = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        let order: Vec<usize> = (0..view.len()).collect();
        let (rx, producer) = spawn_batches(view.clone(), order, batch, batcher);
        let mut n = 0;
        for (x, _) in rx.iter() {
            std::hint::black_box(Tensor::<4>::from_data(x, &device));
            n += 1;
        }
        producer.join().expect("producer thread");
        own_rates.push(n as f64 / t.elapsed().as_secs_f64());
    }
    (median(burn_rates), median(own_rates))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty_samples() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }

    #[test]
    fn step_timing_takes_each_phase_median_and_the_median_step() {
        let samples = PhaseSamples {
            forward: vec![1.0, 3.0, 2.0],
            backward: vec![10.0, 30.0, 20.0],
            optimizer: vec![0.5, 0.5, 5.0],
        };
        let t = samples.timing(54);
        assert_eq!((t.forward, t.backward, t.optimizer), (2.0, 20.0, 0.5));
        // Steps of 11.5, 33.5 and 27 s: the median step is not the sum of the medians (22.5).
        assert_eq!(t.step, 27.0);
        assert_eq!(t.images_per_sec, 2.0);
    }
}
