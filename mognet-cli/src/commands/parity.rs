//! `parity`: the float model against the integer engine, code by code.

use std::path::PathBuf;

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
    let report =
        mognet_core::parity::parity(&float_model, &config, &fold_report, &model, &set, &device)?;
    println!("{}", report.render());
    Ok(())
}
