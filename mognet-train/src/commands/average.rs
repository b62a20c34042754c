//! `average`: a run whose model is the mean of several trained models' weights.

use std::path::PathBuf;

use anyhow::{Result, bail};
use mognet_train::BackendChoice;
use mognet_train::train::average::average_run;

/// Arguments of `average`.
#[derive(Debug, clap::Args)]
pub struct AverageArgs {
    /// The weights files to average (two or more, each NAME.bpk with NAME.config.json or a
    /// run's config.json beside it): one architecture, one dataset, one validation split.
    #[arg(long, num_args = 2.., required = true)]
    weights: Vec<PathBuf>,
    /// The new run folder: config.json, best.bpk, best.json, average.json, test.json.
    #[arg(long)]
    out: PathBuf,
    /// The dataset folder, if not the one the inputs' config names.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Backend.
    #[arg(long, value_enum, default_value = "flex")]
    backend: BackendChoice,
}

/// Averages, prints every input's and the average's validation accuracy, then the average's
/// test accuracy (last line).
pub fn run(args: AverageArgs) -> Result<()> {
    if args.weights.len() < 2 {
        bail!("--weights needs at least two files");
    }
    let selected = args.backend.select()?;
    println!("backend: {}", selected.description);
    let outcome = average_run(
        &args.weights,
        &args.out,
        args.data_dir.as_deref(),
        &selected.device,
        &mut |line| println!("{line}"),
    )?;
    let record = &outcome.record;
    let best_input = record
        .inputs
        .iter()
        .map(|i| i.valid_acc)
        .fold(f64::MIN, f64::max);
    println!(
        "average: validation accuracy {:.4} ({:+.4} against the best input); batch norms \
         re-estimated on {} training images; wrote {}",
        record.valid_acc,
        record.valid_acc - best_input,
        record.bn_recalibration,
        args.out.display()
    );
    let test = &outcome.test;
    println!(
        "test accuracy {:.4} ({}/{}), loss {:.4}: read once, after the average was made",
        test.accuracy, test.correct, test.total, test.loss
    );
    Ok(())
}
