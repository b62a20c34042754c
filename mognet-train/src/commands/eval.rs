//! `eval`: float accuracy of a run's model, or of a weights file, on the test split.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::ValueEnum;
use mognet_core::persist::{RunWeights, load_run_model, load_weights_file};
use mognet_core::{Mognet, MognetConfig};
use mognet_train::BackendChoice;
use mognet_train::data::Split;
use mognet_train::data::cli::DataArgs;
use mognet_train::eval::evaluate;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum WhichCheckpoint {
    /// The best model by validation accuracy (`best.bpk`).
    Best,
    /// The last checkpoint.
    Last,
}

/// Arguments of `eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// The run folder.
    #[arg(long, required_unless_present = "weights", conflicts_with = "weights")]
    run: Option<PathBuf>,
    /// A weights file instead of a run (NAME.bpk with NAME.config.json beside it, such as
    /// the shipped checkpoints/NAME.bpk).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Which weights.
    #[arg(long, value_enum, default_value = "best")]
    checkpoint: WhichCheckpoint,
    #[command(flatten)]
    data: DataArgs,
    /// Evaluate the first N test images only.
    #[arg(long)]
    limit: Option<usize>,
    /// Backend.
    #[arg(long, value_enum, default_value = "flex")]
    backend: BackendChoice,
    /// Batch size.
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
}

/// Evaluates the model and prints its loss, gate-on rates and accuracy (last line).
pub fn run(args: EvalArgs) -> Result<()> {
    if args.batch_size == 0 || args.limit == Some(0) {
        bail!("--batch-size and --limit must be at least 1");
    }
    let selected = args.backend.select()?;
    let (config, model) = load_model(&args, &selected.device)?;
    let data = &args.data;
    let set = data
        .load(Split::Test, args.limit)
        .with_context(|| format!("loading the {} test set", data.dataset.name()))?;
    if set.channels != config.in_channels || set.num_classes != config.num_classes {
        bail!(
            "the run's model takes {} channels and {} classes; {} has {} and {}",
            config.in_channels,
            config.num_classes,
            data.dataset.name(),
            set.channels,
            set.num_classes
        );
    }
    println!("backend: {}", selected.description);
    let report = evaluate(&model, &set, args.batch_size, &selected.device, None);
    println!("loss: {:.4}", report.loss);
    for (name, rate) in &report.gate_on {
        println!("gate-on {name}: {rate:.3}");
    }
    println!(
        "accuracy: {:.4} ({}/{})",
        report.accuracy(),
        report.correct,
        report.total
    );
    Ok(())
}

/// The model `--run` (with `--checkpoint`) or `--weights` names.
fn load_model(args: &EvalArgs, device: &burn::tensor::Device) -> Result<(MognetConfig, Mognet)> {
    Ok(match (&args.run, &args.weights) {
        (Some(run_dir), _) => {
            let which = match args.checkpoint {
                WhichCheckpoint::Best => RunWeights::Best,
                WhichCheckpoint::Last => RunWeights::Last,
            };
            load_run_model(run_dir, which, device)?
        }
        (None, Some(file)) => load_weights_file(file, device)?,
        (None, None) => bail!("give --run or --weights"),
    })
}
