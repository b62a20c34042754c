//! `check-onnx`: an ONNX export run in tract against the integer engine.

use std::path::PathBuf;

use anyhow::Result;
use mognet_infer::IntModel;

use super::test_set::{TestSet, check_shape};

/// Arguments of `check-onnx`.
#[derive(Debug, clap::Args)]
pub struct CheckOnnxArgs {
    /// The model file the graph was exported from.
    #[arg(long)]
    model: PathBuf,
    /// The ONNX graph (`export-onnx`, any style).
    #[arg(long)]
    graph: PathBuf,
    #[command(flatten)]
    data: TestSet,
}

/// Classifies the test set with tract and with the engine and compares the classes.
pub fn run(args: CheckOnnxArgs) -> Result<()> {
    let (model, _) = IntModel::load(&args.model)?;
    let set = args.data.load()?;
    check_shape(&model, &set, args.data.name())?;
    crate::tract::check_onnx(&model, &args.graph, &set)
}
