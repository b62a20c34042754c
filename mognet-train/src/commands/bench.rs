//! `bench-train` and `bench-data`: training-step and data-loading throughput.

use anyhow::{Context as _, Result, bail};
use clap::ValueEnum;
use mognet_train::{BackendChoice, bench};

/// The convolution kernels `bench-train` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kernels {
    /// mognet's own operations (`mognet_core::ops`): the default everywhere.
    Custom,
    /// Burn's `conv2d` and the gradients Burn derives for it.
    Reference,
}

/// Arguments of `bench-train`.
#[derive(Debug, clap::Args)]
pub struct BenchTrainArgs {
    /// Presets to measure.
    #[arg(long = "preset", default_values = ["mognet-s", "mognet-m", "mognet-l"])]
    presets: Vec<mognet_core::Preset>,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Timed steps (after 2 warm-up steps); the figures are their medians.
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Input channels.
    #[arg(long, default_value_t = 1)]
    in_channels: usize,
    /// Backend.
    #[arg(long, value_enum, default_value = "flex")]
    backend: BackendChoice,
    /// CPU threads for Flex and mognet's kernels. Default: one per core.
    #[arg(long)]
    threads: Option<usize>,
    /// Which convolution the layers run: mognet's own operations or the composed reference
    /// (Burn's `conv2d` and its derived gradients), to measure one against the other.
    #[arg(long, value_enum, default_value = "custom")]
    kernels: Kernels,
}

/// Arguments of `bench-data`.
#[derive(Debug, clap::Args)]
pub struct BenchDataArgs {
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Loader threads for Burn's loader.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Images in the synthetic set.
    #[arg(long, default_value_t = 10_000)]
    images: usize,
    /// Timed passes over the set.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

/// Measures one training step and the float eval forward of each preset; one line each.
pub fn train(args: BenchTrainArgs) -> Result<()> {
    let BenchTrainArgs {
        batch,
        steps,
        in_channels,
        ..
    } = args;
    if batch == 0 || steps == 0 || in_channels == 0 {
        bail!("--batch, --steps and --in-channels must be at least 1");
    }
    if let Some(threads) = args.threads {
        if threads == 0 {
            bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .context("setting up the thread pool")?;
    }
    mognet_core::ops::use_reference_kernels(args.kernels == Kernels::Reference);
    let selected = args.backend.select()?;
    println!(
        "backend: {}, {} threads, {:?} kernels",
        selected.description,
        rayon::current_num_threads(),
        args.kernels
    );
    for &preset in &args.presets {
        let config = mognet_core::MognetConfig::preset(preset, in_channels, 10);
        let t = bench::train_step(&config, batch, 2, steps, &selected.device);
        let eval = bench::eval_throughput(&config, batch, steps, &selected.device);
        println!(
            "{preset} batch {batch}: train {:.1} img/s (step {:.3} s = forward {:.3} + backward {:.3} + optimizer {:.3}), float eval {:.1} img/s",
            t.images_per_sec, t.step, t.forward, t.backward, t.optimizer, eval
        );
    }
    Ok(())
}

/// Measures batches/s through Burn's loader and through the trainer's pipeline.
pub fn data(args: BenchDataArgs) -> Result<()> {
    let BenchDataArgs {
        batch,
        workers,
        images,
        rounds,
    } = args;
    if [batch, workers, images, rounds].contains(&0) {
        bail!("--batch, --workers, --images and --rounds must be at least 1");
    }
    let (burn_rate, own_rate) =
        bench::data_loading(bench::random_cifar_like(images), batch, workers, rounds);
    println!(
        "CIFAR-shaped batches of {batch} with crop+flip: Burn DataLoader ({workers} workers) {burn_rate:.1} batches/s ({:.0} img/s); trainer pipeline (1 helper thread) {own_rate:.1} batches/s ({:.0} img/s)",
        burn_rate * batch as f64,
        own_rate * batch as f64
    );
    Ok(())
}
