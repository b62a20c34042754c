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

/// Times `steps` training steps (after `warmup` untimed ones) of `config` at `batch` on `device`
/// (without autodiff; it is added here), on random images, with the trainer's default SGD
/// (Nesterov momentum 0.9, weight decay 5e-4) and regularizer weight (0.01).
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
    let [h, w] = config.input_size;
    let c = config.in_channels;
    let mut rng = SplitMix64::new(7);
    let pixels: Vec<f32> = (0..batch * c * h * w).map(|_| rng.next_f32()).collect();
    let labels: Vec<i64> = (0..batch)
        .map(|i| (i % config.num_classes) as i64)
        .collect();
    let x = Tensor::<4>::from_data(TensorData::new(pixels, [batch, c, h, w]), &ad);
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [batch]), &ad);
    let sync = || device.sync().expect("device sync");
    let (mut fw, mut bw, mut op, mut all) = (vec![], vec![], vec![], vec![]);
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
        let _ = model
            .head
            .conv
            .weight
            .val()
            .slice([0..1, 0..1, 0..1, 0..1])
            .into_data();
        sync();
        let t3 = Instant::now();
        if i >= warmup {
            fw.push((t1 - t0).as_secs_f64());
            bw.push((t2 - t1).as_secs_f64());
            op.push((t3 - t2).as_secs_f64());
            all.push((t3 - t0).as_secs_f64());
        }
    }
    let step = median(all);
    StepTiming {
        forward: median(fw),
        backward: median(bw),
        optimizer: median(op),
        step,
        images_per_sec: batch as f64 / step,
    }
}

/// Float eval images/s of `config` (Burn, no autodiff) at `batch`.
pub fn eval_throughput(config: &MognetConfig, batch: usize, rounds: usize, device: &Device) -> f64 {
    let model = config.init(device).expect("a valid config").valid();
    let [h, w] = config.input_size;
    let c = config.in_channels;
    let mut rng = SplitMix64::new(9);
    let pixels: Vec<f32> = (0..batch * c * h * w).map(|_| rng.next_f32()).collect();
    let x = Tensor::<4>::from_data(TensorData::new(pixels, [batch, c, h, w]), device);
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
    let batcher = ImageBatcher {
        channels: 3,
        size: 32,
    };
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
