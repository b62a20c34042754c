//! Running a sweep: each job of the grid (or of one shard) is an ordinary run folder
//! `DIR/ARM/seed-S`, trained with resume, then exported and tested once by the integer engine
//! into `result.json`. A job with a `result.json` is skipped and one with a checkpoint resumed,
//! so a sweep survives any number of kills; shards share nothing but the folder.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use mognet_core::parity::accuracy;
use mognet_infer::InputError;
use serde::{Deserialize, Serialize};

use crate::export::{ExportError, export_best};
use crate::sweep::folder::claim_folder;
use crate::sweep::grid::{Grid, GridError, Job, Shard};
use crate::train::checkpoint::{CheckpointError, write_atomic};
use crate::train::final_test::read_best;
use crate::train::run::load_split;
use crate::train::{TrainError, train};

/// Why a sweep stopped.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The grid is unusable.
    #[error(transparent)]
    Grid(#[from] GridError),
    /// A run failed.
    #[error("{job}: {source}")]
    Train {
        /// `ARM/seed-S`.
        job: String,
        /// The trainer's error.
        source: TrainError,
    },
    /// The best model could not be exported (read, folded, written or read back).
    #[error("{job}: {source}")]
    Export {
        /// `ARM/seed-S`.
        job: String,
        /// What went wrong.
        source: ExportError,
    },
    /// The integer engine refused the test images.
    #[error(transparent)]
    Input(#[from] InputError),
    /// A file of the sweep folder.
    #[error(transparent)]
    File(#[from] CheckpointError),
    /// The folder holds another sweep.
    #[error("{path} holds a sweep of another grid; use another --out or the grid it was run with")]
    OtherGrid {
        /// The stored grid.
        path: PathBuf,
    },
}

/// `DIR/ARM/seed-S/result.json`: what one finished job measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    /// Arm name.
    pub arm: String,
    /// Seed.
    pub seed: u64,
    /// Epoch of the model kept (chosen on validation).
    pub best_epoch: usize,
    /// Its validation accuracy (none without a validation split).
    pub valid_acc: Option<f64>,
    /// Test images, read once by the integer engine.
    pub test_images: usize,
    /// Integer engine's correct answers on them.
    pub test_correct: usize,
    /// `test_correct / test_images`.
    pub int_test_acc: f64,
    /// Size of the exported `.mognet` file, in bits (2-bit packing).
    pub file_bits: u64,
    /// The size summary's stored total for the file's widths.
    pub summary_bits: u64,
    /// Stored ternary weights.
    pub stored_weights: u64,
    /// Multiply-accumulates per image.
    pub macs: u64,
}

/// What happened to a job in this call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// Its result was already there.
    Skipped,
    /// Trained (from scratch or resumed) and tested.
    Done,
    /// Stopped by `stop_after_steps` before its end; the next call resumes it.
    Stopped,
}

/// Session settings of a sweep call.
#[derive(Debug, Clone, Copy)]
pub struct SweepOptions {
    /// The jobs this call runs.
    pub shard: Shard,
    /// Stop after this many optimizer steps in this call (checkpointed), like `train`'s.
    pub stop_after_steps: Option<usize>,
}

/// `DIR/ARM/seed-S/result.json`.
pub fn result_path(job_dir: &Path) -> PathBuf {
    job_dir.join("result.json")
}

/// Runs this call's jobs of `grid` in `dir` on `device` (without autodiff), in grid order.
pub fn run_sweep(
    grid: &Grid,
    dir: &Path,
    options: SweepOptions,
    device: &Device,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<(Job, JobStatus)>, SweepError> {
    claim_folder(grid, dir)?;
    let jobs = grid.jobs()?;
    let total = jobs.len();
    let mut statuses = Vec::new();
    for (index, job) in jobs.into_iter().enumerate() {
        if !options.shard.takes(index) {
            continue;
        }
        let job_dir = job.dir(dir);
        let label = format!("{}/seed-{}", job.name, job.seed);
        if result_path(&job_dir).exists() {
            log(&format!(
                "[{}/{total}] {label}: done before, skipped",
                index + 1
            ));
            statuses.push((job, JobStatus::Skipped));
            continue;
        }
        log(&format!("[{}/{total}] {label}", index + 1));
        let status = run_job(&job, &job_dir, &label, options, device, &mut |line| {
            log(&format!("  {label}: {line}"))
        })?;
        statuses.push((job, status));
        if status == JobStatus::Stopped {
            break;
        }
    }
    Ok(statuses)
}

/// Trains one job (resuming its checkpoint if any), then exports and tests it.
fn run_job(
    job: &Job,
    job_dir: &Path,
    label: &str,
    options: SweepOptions,
    device: &Device,
    log: &mut dyn FnMut(&str),
) -> Result<JobStatus, SweepError> {
    let train_error = |source| SweepError::Train {
        job: label.to_string(),
        source,
    };
    let resume = job_dir.join("last.json").exists();
    let mut run = job.run.clone();
    run.train.stop_after_steps = options.stop_after_steps;
    let outcome = train(job_dir, &run, resume, device, log).map_err(train_error)?;
    if outcome.stopped_by_budget {
        return Ok(JobStatus::Stopped);
    }
    let result = test_job(job, job_dir, label)?;
    log(&format!(
        "valid {} (epoch {}), integer test {:.4} ({}/{}), {} bits",
        result
            .valid_acc
            .map_or("-".to_string(), |v| format!("{v:.4}")),
        result.best_epoch,
        result.int_test_acc,
        result.test_correct,
        result.test_images,
        result.file_bits
    ));
    let json = serde_json::to_vec_pretty(&result).expect("a result serializes");
    write_atomic(&result_path(job_dir), &json)?;
    Ok(JobStatus::Done)
}

/// Exports the job's best model to `model.mognet` and tests it once with the integer engine.
fn test_job(job: &Job, job_dir: &Path, label: &str) -> Result<JobResult, SweepError> {
    let train_error = |source| SweepError::Train {
        job: label.to_string(),
        source,
    };
    let e = export_best(job_dir, &job_dir.join("model.mognet")).map_err(|source| {
        SweepError::Export {
            job: label.to_string(),
            source,
        }
    })?;
    let test = load_split(&job.run, crate::data::Split::Test).map_err(train_error)?;
    let (correct, _) = accuracy(&e.int_model, &test)?;
    let (best_epoch, valid_acc) = read_best(job_dir)?;
    Ok(JobResult {
        arm: job.name.clone(),
        seed: job.seed,
        best_epoch,
        valid_acc,
        test_images: test.len(),
        test_correct: correct,
        int_test_acc: correct as f64 / test.len().max(1) as f64,
        file_bits: e.file_bits,
        summary_bits: e.summary.total_bits_2bit,
        stored_weights: e.summary.stored_weights,
        macs: e.summary.macs,
    })
}
