//! The test set, read once, after training: the best model (chosen on validation) evaluated on
//! the test split and recorded in `RUN_DIR/test.json`, apart from the validation curves.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use mognet_core::persist::{RunWeights, load_run_model, read_json};
use serde::{Deserialize, Serialize};

use crate::data::Split;
use crate::eval::evaluate;
use crate::train::checkpoint::{CheckpointError, write_atomic};
use crate::train::config::RunConfig;
use crate::train::run::{TrainError, load_split};

/// `RUN_DIR/test.json`: the test accuracy of the run's best model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    /// The epoch of the best model (1-based).
    pub epoch: usize,
    /// Its validation accuracy, which chose it (none without a validation set).
    pub valid_acc: Option<f64>,
    /// Whether the validation images came from the test split (runs written before the
    /// validation split existed): the test accuracy is then not an independent estimate.
    pub validated_on_test: bool,
    /// Test images.
    pub total: usize,
    /// Correct top-1 predictions of the float model (Burn, eval mode).
    pub correct: usize,
    /// `correct / total`.
    pub accuracy: f64,
    /// Mean cross-entropy.
    pub loss: f64,
}

/// `RUN_DIR/test.json`.
pub fn test_path(run_dir: &Path) -> PathBuf {
    run_dir.join("test.json")
}

/// Evaluates the run's best model on the whole test split on `device` (without autodiff) and
/// writes `test.json`.
pub fn test_best(run_dir: &Path, device: &Device) -> Result<TestResult, TrainError> {
    let run = RunConfig::load(run_dir)?;
    let set = load_split(&run, Split::Test)?;
    let (_, model) = load_run_model(run_dir, RunWeights::Best, device)?;
    let (epoch, valid_acc) = read_best(run_dir)?;
    let report = evaluate(&model, &set, run.train.batch_size.max(64), device, None);
    let result = TestResult {
        epoch,
        valid_acc,
        validated_on_test: run.train.valid_split.is_none(),
        total: report.total,
        correct: report.correct,
        accuracy: report.accuracy(),
        loss: report.loss,
    };
    let json = serde_json::to_vec_pretty(&result).expect("test result serializes");
    write_atomic(&test_path(run_dir), &json)?;
    Ok(result)
}

/// The epoch of the run's best model and its validation accuracy, from `RUN_DIR/best.json`
/// (written with `best.bpk`).
pub fn read_best(run_dir: &Path) -> Result<(usize, Option<f64>), CheckpointError> {
    let best = read_json(&run_dir.join("best.json"))?;
    let epoch = best.get("epoch").and_then(|e| e.as_u64()).unwrap_or(0) as usize;
    Ok((epoch, best.get("valid_acc").and_then(|a| a.as_f64())))
}

/// The run's `test.json`, if the run has been tested.
pub fn read_test(run_dir: &Path) -> Result<Option<TestResult>, CheckpointError> {
    let path = test_path(run_dir);
    match read_json(&path) {
        Ok(v) => serde_json::from_value(v)
            .map(Some)
            .map_err(|e| CheckpointError::Corrupt {
                path,
                detail: e.to_string(),
            }),
        Err(CheckpointError::Missing { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

impl TestResult {
    /// One line for the log and the plot.
    pub fn summary(&self) -> String {
        let chosen = match (self.valid_acc, self.validated_on_test) {
            (_, true) => "chosen on the test split itself".to_string(),
            (Some(v), false) => format!("chosen on validation, {v:.4}"),
            (None, false) => "the last epoch, no validation".to_string(),
        };
        format!(
            "test accuracy {:.4} ({}/{}), loss {:.4}: best model of epoch {} ({chosen})",
            self.accuracy, self.correct, self.total, self.loss, self.epoch
        )
    }
}
