//! `parity`: the float model against the integer engine, code by code.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use burn::tensor::Device;
use mognet_core::fold::fold;
use mognet_infer::IntModel;

use super::test_set::{TestSet, check_shape};
use super::weights::FloatWeights;

/// Arguments of `parity`.
#[derive(Debug, clap::Args)]
pub struct ParityArgs {
    /// The float weights (the ones exported).
    #[command(flatten)]
    weights: FloatWeights,
    /// The exported model file.
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    data: TestSet,
}

/// Runs both models on the test set and prints the parity report.
pub fn run(args: ParityArgs) -> Result<()> {
    let (path, data) = (&args.model, &args.data);
    let device = Device::flex();
    let (config, float_model, source) = args.weights.load(&device)?;
    let (model, _) = IntModel::load(path)?;
    if model.spec != config.spec() {
        bail!(
            "{} does not hold the network of {} (different shapes or options)",
            path.display(),
            source.display()
        );
    }
    let set = data.load()?;
    check_shape(&model, &set, data.name())?;
    let (_, fold_report) = fold(&float_model, &config)?;
    let mut progress = progress_printer(set.len());
    let report = mognet_core::parity::parity(
        &float_model,
        &config,
        &fold_report,
        &model,
        &set,
        &device,
        &mut progress,
    )?;
    println!("{}", report.render());
    Ok(())
}

/// Prints to stderr, about every 10% of `total` images, how far the comparison is and an
/// estimate of the time left.
fn progress_printer(total: usize) -> impl FnMut(usize) {
    let started = Instant::now();
    let step = total.div_ceil(10).max(1);
    let mut next = step;
    move |done| {
        if done < next || done >= total {
            return;
        }
        next = done + step;
        let seconds = started.elapsed().as_secs_f64();
        let left = seconds / done as f64 * (total - done) as f64;
        eprintln!(
            "parity: {done}/{total} images in {:.0} s, about {:.0} s left",
            seconds, left
        );
    }
}
