//! A run's best model exported to the integer format: folded, written as a `.mognet` file
//! (2-bit packing) and read back, as the demo and every sweep job do before testing it.

use std::path::Path;

use burn::tensor::Device;
use mognet_arch::Summary;
use mognet_core::fold::{FoldError, FoldReport, fold};
use mognet_core::persist::{PersistError, RunWeights, load_run_model};
use mognet_core::{Mognet, MognetConfig};
use mognet_infer::{IntModel, LoadError, Packing};

/// Why a run's best model could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The run's best weights or config cannot be read.
    #[error(transparent)]
    Weights(#[from] PersistError),
    /// The float model cannot be folded to integers.
    #[error(transparent)]
    Fold(#[from] FoldError),
    /// The integer model cannot be written or read back.
    #[error(transparent)]
    Model(#[from] LoadError),
}

/// The float model of a run and its integer export, as read back from the file.
pub struct ExportedRun {
    /// The run's model config.
    pub config: MognetConfig,
    /// The best float model (on Flex).
    pub float_model: Mognet,
    /// What folding found (the layers whose `f32` accumulators may round).
    pub fold_report: FoldReport,
    /// The integer model read back from the written file.
    pub int_model: IntModel,
    /// The file's size in bits.
    pub file_bits: u64,
    /// The size summary of the file's model, with the widths it was stored in.
    pub summary: Summary,
}

/// Folds the best model of `run_dir` (on Flex) and writes it to `file`.
pub fn export_best(run_dir: &Path, file: &Path) -> Result<ExportedRun, ExportError> {
    let (config, float_model) = load_run_model(run_dir, RunWeights::Best, &Device::flex())?;
    let (int_model, fold_report) = fold(&float_model, &config)?;
    let bytes = int_model.save(file, Packing::TwoBit)?;
    let (int_model, info) = IntModel::load(file)?;
    let summary = Summary::new(&int_model.spec, &info.widths);
    Ok(ExportedRun {
        config,
        float_model,
        fold_report,
        int_model,
        file_bits: bytes as u64 * 8,
        summary,
    })
}
