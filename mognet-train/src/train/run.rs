//! The training loop: epochs of SGD/Adam over shuffled, augmented batches, validation, metrics,
//! checkpoints, the best model, exact resume.
//!
//! [`train`] reads as the loop's outline; the private `session` module holds each part of an
//! epoch.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::ParamGroup;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, ModuleOptimizer, SgdConfig};
use burn::tensor::Device;
use mognet_core::{ModelError, Mognet};

use crate::data::{DataError, ImageSet, Split};
use crate::train::checkpoint::CheckpointError;
use crate::train::config::{OptimizerKind, RunConfig};
use crate::train::epoch_pass::EpochClock;
pub use crate::train::metrics::{EpochMetrics, LayerOccupancy};
use crate::train::session::{Session, Start};

/// Why training stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The data could not be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A checkpoint could not be written or read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The model could not be built.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A training config value makes no sense.
    #[error(transparent)]
    Config(#[from] crate::train::config::InvalidConfig),
    /// The validation split cannot be made from the training set.
    #[error("--valid-split: {0}")]
    Split(#[from] mognet_data::SplitError),
    /// The loss became NaN or infinite.
    #[error(
        "loss is {loss} at epoch {epoch}, step {step} (batch {batch} of the epoch); training stopped, \
         the last good checkpoint is kept (lower the learning rate?)"
    )]
    NonFinite {
        /// Epoch (1-based).
        epoch: usize,
        /// Global optimizer step (1-based).
        step: usize,
        /// Batch within the epoch (1-based).
        batch: usize,
        /// The loss value.
        loss: f64,
    },
    /// The run folder is in a state the request does not fit.
    #[error("{path}: {detail}")]
    RunDir {
        /// The folder or file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Models to average do not fit together.
    #[error("averaging: {0}")]
    Average(#[from] mognet_core::average::AverageError),
    /// The data and the model disagree.
    #[error("the model expects {model} but {dataset} has {data}")]
    Mismatch {
        /// What the model expects.
        model: String,
        /// The dataset.
        dataset: String,
        /// What the data has.
        data: String,
    },
}

/// How a call to [`train`] ended.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// Metrics of every epoch run in this call.
    pub epochs: Vec<EpochMetrics>,
    /// Best validation accuracy of the run (none without a validation set).
    pub best_valid_acc: Option<f64>,
    /// Epoch of the best validation accuracy.
    pub best_epoch: usize,
    /// The time budget (or `stop_after_epochs`, `stop_after_steps`) ended the call before the
    /// end of the run.
    pub stopped_by_budget: bool,
    /// The trained model (on the training device, in training mode).
    pub model: Mognet,
}

pub(super) fn optimizer(run: &RunConfig) -> ModuleOptimizer {
    let t = &run.train;
    // Weight decay applies to the convolutions' proxy weights only: BN and gate parameters are
    // left alone (their paths do not end in "weight").
    let decay = (t.weight_decay > 0.0).then(|| WeightDecayConfig::new(t.weight_decay as f32));
    let weights = ParamGroup::from_regex(r"(^|\.)weight$").expect("valid regex");
    match t.optimizer {
        OptimizerKind::Sgd => {
            let momentum = MomentumConfig::new()
                .with_momentum(t.momentum)
                .with_dampening(0.0)
                .with_nesterov(true);
            let plain = SgdConfig::new().with_momentum(Some(momentum.clone()));
            let decayed = plain.clone().with_weight_decay(decay);
            plain.init().with_group(weights, decayed.build(), None)
        }
        OptimizerKind::Adam => {
            let plain = AdamConfig::new();
            let decayed = AdamConfig::new().with_weight_decay(decay);
            plain.init().with_group(weights, decayed.build(), None)
        }
    }
}

/// The images a run trains on and validates on.
pub(super) struct RunSets {
    /// Training images (after the split and `limit_train`).
    pub(super) train: ImageSet,
    /// Validation images (after `limit_valid`); none with `valid_split = Some(0)`.
    pub(super) valid: Option<ImageSet>,
}

/// Reads the training split and holds out the validation set (see
/// [`TrainConfig::valid_split`](crate::train::TrainConfig)); the test split is read only by
/// runs written before the validation split existed (`valid_split = None`).
pub(super) fn load_sets(run: &RunConfig) -> Result<RunSets, TrainError> {
    let t = &run.train;
    let full = load_split(run, Split::Train)?;
    let (train, valid) = match t.valid_split {
        None => (full, Some(load_split(run, Split::Test)?)),
        Some(0) => (full, None),
        Some(n) => {
            let (train, valid) = full.split_validation(n, t.seed)?;
            (train, Some(valid))
        }
    };
    let limit = |set: ImageSet, n: Option<usize>| match n {
        Some(n) => set.truncated(n),
        None => set,
    };
    let sets = RunSets {
        train: limit(train, t.limit_train),
        valid: valid.map(|v| limit(v, t.limit_valid)),
    };
    for (name, set) in [
        ("training", Some(&sets.train)),
        ("validation", sets.valid.as_ref()),
    ] {
        if set.is_some_and(|s| s.is_empty()) {
            return Err(TrainError::RunDir {
                path: t.data_dir.clone(),
                detail: format!("the {name} set is empty (check --limit-train, --limit-valid)"),
            });
        }
    }
    Ok(sets)
}

/// One split of the run's dataset, checked against the model.
pub(crate) fn load_split(run: &RunConfig, split: Split) -> Result<ImageSet, TrainError> {
    let t = &run.train;
    let set = t.dataset.load(&t.data_dir, split, t.cifar100_label)?;
    let m = &run.model;
    if set.channels != m.in_channels
        || set.num_classes != m.num_classes
        || set.size != m.input_size[0]
    {
        return Err(TrainError::Mismatch {
            model: format!(
                "{} channels, {} classes, {}x{} inputs",
                m.in_channels, m.num_classes, m.input_size[0], m.input_size[1]
            ),
            dataset: t.dataset.name().into(),
            data: format!(
                "{} channels, {} classes, {}x{} images",
                set.channels, set.num_classes, set.size, set.size
            ),
        });
    }
    if set.is_empty() {
        return Err(TrainError::RunDir {
            path: t.data_dir.clone(),
            detail: format!("the {split:?} split is empty"),
        });
    }
    Ok(set)
}

/// Checks the run folder against the request and writes `config.json`: a new run needs a folder
/// without a checkpoint; a resume takes the stored config, with this call's session fields.
fn open_run_dir(run_dir: &Path, run: &RunConfig, resume: bool) -> Result<RunConfig, TrainError> {
    let has_checkpoint = run_dir.join("last.json").exists();
    let mut run = run.clone();
    if resume {
        if !has_checkpoint {
            return Err(TrainError::RunDir {
                path: run_dir.to_path_buf(),
                detail: "--resume given but the folder holds no checkpoint (last.json)".into(),
            });
        }
        let session = run.train.clone();
        run = RunConfig::load(run_dir)?;
        run.train.epochs = session.epochs;
        run.train.time_budget_minutes = session.time_budget_minutes;
        run.train.budget_ends_epoch = session.budget_ends_epoch;
        run.train.stop_after_epochs = session.stop_after_epochs;
        run.train.stop_after_steps = session.stop_after_steps;
        run.train.checkpoint_minutes = session.checkpoint_minutes;
    }
    run.train.check()?;
    if !resume && has_checkpoint {
        return Err(TrainError::RunDir {
            path: run_dir.to_path_buf(),
            detail: "already holds a run; pass --resume to continue it or choose another --out"
                .into(),
        });
    }
    std::fs::create_dir_all(run_dir).map_err(|e| CheckpointError::Io {
        path: run_dir.to_path_buf(),
        source: e,
    })?;
    run.save(run_dir)?;
    // A test result belongs to the run's final best model; more epochs may change it.
    let test = crate::train::final_test::test_path(run_dir);
    if test.exists() {
        std::fs::remove_file(&test).map_err(|e| CheckpointError::Io {
            path: test,
            source: e,
        })?;
    }
    Ok(run)
}

/// Trains the run in `run_dir` with `run` (written to `config.json`), from scratch, or from its
/// last checkpoint when `resume` (the stored config is then used; `run` only supplies
/// `epochs`, `time_budget_minutes`, `budget_ends_epoch`, `stop_after_epochs`,
/// `stop_after_steps` and `checkpoint_minutes`). `device` is the training device without autodiff.
pub fn train(
    run_dir: &Path,
    run: &RunConfig,
    resume: bool,
    device: &Device,
    log: &mut dyn FnMut(&str),
) -> Result<TrainOutcome, TrainError> {
    let started = Instant::now();
    let run = open_run_dir(run_dir, run, resume)?;
    let mut session = Session::new(run_dir, &run, device, started)?;
    let Start {
        mut model,
        mut optim,
        epoch: first,
        mut progress,
    } = session.start(&run, resume, log)?;
    let mut epochs = Vec::new();
    let mut stopped_by_budget = false;
    for epoch in first..session.t.epochs {
        // A checkpoint within this epoch: its first batches are done already.
        let before = progress.take().unwrap_or_default();
        let clock = EpochClock {
            earlier: before.seconds,
            start: Instant::now(),
        };
        let (trained, pass) = session.train_epoch(epoch, model, &mut optim, &before, clock, log)?;
        model = trained;
        if let Some((batches, why)) = pass.stopped_within {
            log(&format!(
                "stopping after {} steps ({}), at batch {batches} of epoch {}, checkpointed; continue with --resume",
                session.session_steps,
                why.reason(),
                epoch + 1
            ));
            stopped_by_budget = true;
            break;
        }
        let metrics = session.end_epoch(epoch, &mut model, &optim, &pass, clock, log)?;
        epochs.push(metrics);
        let took = clock.start.elapsed();
        if let Some(stop) = session.stop_after(epoch, epochs.len(), pass.complete, took) {
            if let Some(message) = stop.message {
                log(&message);
            }
            stopped_by_budget = stop.early;
            break;
        }
    }
    Ok(TrainOutcome {
        epochs,
        best_valid_acc: (session.best_acc >= 0.0).then_some(session.best_acc),
        best_epoch: session.best_epoch,
        stopped_by_budget,
        model,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{DatasetKind, split_indices};
    use crate::train::TrainConfig;
    use mognet_core::{MognetConfig, Preset};

    #[test]
    fn the_validation_images_are_held_out_of_the_training_images() {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../datasets/samples/fashion-mnist");
        let run = RunConfig {
            model: MognetConfig::preset(Preset::S, 1, 10),
            train: TrainConfig::new(DatasetKind::FashionMnist, dir)
                .with_valid_split(Some(1000))
                .with_seed(5),
        };
        let full = load_split(&run, Split::Train).unwrap();
        let sets = load_sets(&run).unwrap();
        let valid = sets.valid.unwrap();
        let parts = split_indices(&full.labels, 10, 1000, 5).unwrap();
        // The trainer's two sets are exactly the split's two index sets of the training file...
        assert_eq!(valid, full.subset(&parts.valid));
        assert_eq!(sets.train, full.subset(&parts.train));
        assert_eq!(valid.len() + sets.train.len(), 6000);
        // Each class rounds up, so up to one image per class more than asked is held out.
        assert!((1000..1010).contains(&valid.len()), "{}", valid.len());
        // ...which share no index and cover the file.
        let mut seen = vec![0u8; full.len()];
        for &i in parts.valid.iter().chain(&parts.train) {
            seen[i] += 1;
        }
        assert!(seen.iter().all(|&n| n == 1));
        // Class-balanced: each class in proportion to its share of the file.
        let held: Vec<usize> = full
            .class_counts()
            .iter()
            .map(|&c| (1000 * c).div_ceil(6000))
            .collect();
        assert_eq!(valid.class_counts(), held);
    }
}
