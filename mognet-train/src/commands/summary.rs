//! `summary`: the model's size in bits, and optionally the activations of a fresh model.

use anyhow::{Result, bail};
use burn::tensor::{Tensor, TensorData};
use mognet_core::MognetConfig;
use mognet_train::BackendChoice;

use super::model_args::ModelArgs;

/// The most synthetic images `summary --forward` runs (they are one batch).
const MAX_FORWARD: usize = 4096;

/// Arguments of `summary`.
#[derive(Debug, clap::Args)]
pub struct SummaryArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Also run a freshly initialised model on this many synthetic images and print the
    /// activation-code histogram of every layer and the logits of the first image.
    #[arg(long, default_value_t = 0)]
    forward: usize,
    /// Backend for --forward.
    #[arg(long, value_enum, default_value = "flex")]
    backend: BackendChoice,
}

/// Prints the bit summary, after the activation histograms when `--forward` asks for them.
pub fn run(args: SummaryArgs) -> Result<()> {
    if args.forward > MAX_FORWARD {
        bail!(
            "--forward must be at most {MAX_FORWARD}, got {}",
            args.forward
        );
    }
    let config = args.model.config()?;
    if args.forward > 0 {
        forward_histograms(&config, args.forward, args.backend)?;
    }
    println!("{}", config.summary().render());
    Ok(())
}

/// Runs a fresh model on `images` seeded random images; prints each layer's activation-code
/// fractions and the first image's logits.
fn forward_histograms(config: &MognetConfig, images: usize, backend: BackendChoice) -> Result<()> {
    let selected = backend.select()?;
    println!("backend: {}", selected.description);
    let net = config.init(&selected.device)?;
    let [h, w] = config.input_size;
    let c = config.in_channels;
    let mut rng = mognet_core::SplitMix64::new(config.seed);
    let pixels: Vec<f32> = (0..images * c * h * w)
        .map(|_| (rng.next_u64() % 256) as f32 / 255.0)
        .collect();
    let x = Tensor::<4>::from_data(TensorData::new(pixels, [images, c, h, w]), &selected.device);
    let (logits, trace) = net.forward_trace(x);
    let q = (1usize << config.bits) - 1;
    println!("activation codes per layer (fraction of each code 0..={q}):");
    for (name, codes) in trace.codes {
        let values: Vec<f32> = codes.into_data().try_into_vec_as::<f32>()?;
        let mut hist = vec![0usize; q + 1];
        for v in &values {
            hist[*v as usize] += 1;
        }
        let fractions: Vec<String> = hist
            .iter()
            .map(|n| format!("{:.2}", *n as f64 / values.len() as f64))
            .collect();
        println!("  {name:<12} {}", fractions.join(" "));
    }
    let first: Vec<f32> = logits.slice(0..1).into_data().try_into_vec_as::<f32>()?;
    let shown: Vec<String> = first.iter().map(|v| format!("{v:.3}")).collect();
    println!("logits of image 0: [{}]", shown.join(", "));
    Ok(())
}
