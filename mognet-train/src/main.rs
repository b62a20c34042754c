//! `mognet-train`: the command-line trainer.

use anyhow::Result;
use burn::tensor::{Tensor, TensorData};
use clap::{Parser, Subcommand};
use mognet_train::BackendChoice;
use mognet_train::model_args::ModelArgs;

#[derive(Debug, Parser)]
#[command(
    name = "mognet-train",
    version,
    about = "Train MOGNET networks and inspect their size"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the model's size in bits, layer by layer; last line `total: <bits> bits (<x> Mb)`.
    Summary {
        #[command(flatten)]
        model: ModelArgs,
        /// Also run a freshly initialised model on this many synthetic images and print the
        /// activation-code histogram of every layer and the logits of the first image.
        #[arg(long, default_value_t = 0)]
        forward: usize,
        /// Backend for --forward.
        #[arg(long, value_enum, default_value = "flex")]
        backend: BackendChoice,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Summary {
            model,
            forward,
            backend,
        } => summary(&model, forward, backend),
    }
}

fn summary(model: &ModelArgs, forward: usize, backend: BackendChoice) -> Result<()> {
    let config = model.config()?;
    if forward > 0 {
        let selected = backend.select();
        println!("backend: {}", selected.description);
        let net = config.init(&selected.device)?;
        let [h, w] = config.input_size;
        let c = config.in_channels;
        let mut rng = mognet_core::SplitMix64::new(config.seed);
        let pixels: Vec<f32> = (0..forward * c * h * w)
            .map(|_| (rng.next_u64() % 256) as f32 / 255.0)
            .collect();
        let x = Tensor::<4>::from_data(
            TensorData::new(pixels, [forward, c, h, w]),
            &selected.device,
        );
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
    }
    println!("{}", config.summary().render());
    Ok(())
}
