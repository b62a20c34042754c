//! `eval`: integer accuracy on a test set.

use std::path::PathBuf;

use anyhow::Result;
use mognet_core::parity::accuracy;
use mognet_infer::IntModel;
use mognet_infer::fast::{FastModel, Variant};

use super::test_set::{TestSet, check_shape};

/// Arguments of `eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// The model file.
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    data: TestSet,
    /// Also write the class of every image, one per line, to this file (to compare
    /// with another runtime).
    #[arg(long)]
    classes: Option<PathBuf>,
}

/// Classifies the test set with the integer engine and prints its accuracy.
pub fn run(args: EvalArgs) -> Result<()> {
    let data = &args.data;
    let (model, _) = IntModel::load(&args.model)?;
    let set = data.load()?;
    check_shape(&model, &set, data.name())?;
    let (correct, rate) = accuracy(&model, &set)?;
    if let Some(out) = &args.classes {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let lines: String = FastModel::new(&model)
            .predict_batch(&set.pixels, threads, Variant::detect())?
            .iter()
            .map(|p| format!("{}\n", p.class))
            .collect();
        mognet_core::persist::write_atomic(out, lines.as_bytes())?;
    }
    println!(
        "{} images at {rate:.0} images/s ({} threads, fast kernels: {})",
        set.len(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        Variant::detect().name()
    );
    println!(
        "accuracy: {:.4} ({correct}/{})",
        correct as f64 / set.len().max(1) as f64,
        set.len()
    );
    Ok(())
}
