//! The training configuration, saved with the model config as `RUN_DIR/config.json`.

use std::path::{Path, PathBuf};

use burn::config::Config;
use mognet_core::MognetConfig;
use serde::{Deserialize, Serialize};

use crate::backend::BackendChoice;
use crate::data::{Augment, Cifar100Label, DatasetKind};
use crate::train::checkpoint::{CheckpointError, read, write_atomic};
use crate::train::schedule::Schedule;

/// The optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// SGD with Nesterov momentum.
    Sgd,
    /// Adam.
    Adam,
}

/// How to train.
#[derive(Config, Debug)]
pub struct TrainConfig {
    /// Dataset.
    pub dataset: DatasetKind,
    /// Folder holding the dataset's files.
    pub data_dir: PathBuf,
    /// CIFAR-100 label (ignored for other datasets). Default: fine.
    #[config(default = "Cifar100Label::Fine")]
    pub cifar100_label: Cifar100Label,
    /// Epochs. Default: 30.
    #[config(default = 30)]
    pub epochs: usize,
    /// Batch size. Default: 128.
    #[config(default = 128)]
    pub batch_size: usize,
    /// Optimizer. Default: SGD.
    #[config(default = "OptimizerKind::Sgd")]
    pub optimizer: OptimizerKind,
    /// Peak learning rate. Default: 0.1 (SGD); use about 2e-3 with Adam.
    #[config(default = 0.1)]
    pub lr: f64,
    /// SGD momentum (Nesterov, no dampening). Default: 0.9.
    #[config(default = 0.9)]
    pub momentum: f64,
    /// Learning-rate schedule. Default: one-cycle.
    #[config(default = "Schedule::Onecycle")]
    pub schedule: Schedule,
    /// Warmup epochs (one-cycle with 0: 30% of the run). Default: 0.
    #[config(default = 0.0)]
    pub warmup_epochs: f64,
    /// Weight decay, on the convolutions' proxy weights only (not on BN or gate parameters).
    /// Default: 5e-4.
    #[config(default = 5e-4)]
    pub weight_decay: f64,
    /// Weight of the BTQ level-balancing regularizer in the loss. Default: 0.01.
    #[config(default = 0.01)]
    pub reg_lambda: f64,
    /// Seed of the data order and augmentation (the model's seed is in the model config).
    /// Default: 0.
    #[config(default = 0)]
    pub seed: u64,
    /// Backend. Default: auto (WGPU on a hardware GPU, else Flex).
    #[config(default = "BackendChoice::Auto")]
    pub backend: BackendChoice,
    /// Train on the first N training images only. Default: all.
    #[config(default = "None")]
    pub limit_train: Option<usize>,
    /// Validate on the first N test images only. Default: all.
    #[config(default = "None")]
    pub limit_valid: Option<usize>,
    /// Stop (after checkpointing) once this many minutes have passed. Default: none.
    #[config(default = "None")]
    pub time_budget_minutes: Option<f64>,
    /// Stop after this many epochs in this session (checkpointed; continue with resume).
    /// Like the time budget, it belongs to the session, not the run. Default: none.
    #[config(default = "None")]
    pub stop_after_epochs: Option<usize>,
    /// Training augmentation; `None` picks the dataset's default (crop pad 4 colour / 2 gray,
    /// flip). Default: `None`.
    #[config(default = "None")]
    pub augment: Option<Augment>,
}

impl TrainConfig {
    /// The augmentation in effect.
    pub fn augmentation(&self) -> Augment {
        self.augment
            .unwrap_or_else(|| Augment::default_for(self.dataset.channels()))
    }
}

/// `RUN_DIR/config.json`: what a run trains and how.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunConfig {
    /// The network.
    pub model: MognetConfig,
    /// The training.
    pub train: TrainConfig,
}

impl RunConfig {
    /// `RUN_DIR/config.json`.
    pub fn path(run: &Path) -> PathBuf {
        run.join("config.json")
    }

    /// Writes `RUN_DIR/config.json` atomically.
    pub fn save(&self, run: &Path) -> Result<(), CheckpointError> {
        let json = serde_json::to_vec_pretty(self).expect("run config serializes");
        write_atomic(&Self::path(run), &json)
    }

    /// Reads `RUN_DIR/config.json`.
    pub fn load(run: &Path) -> Result<Self, CheckpointError> {
        let path = Self::path(run);
        let bytes = read(&path)?;
        let config: RunConfig =
            serde_json::from_slice(&bytes).map_err(|e| CheckpointError::Corrupt {
                path: path.clone(),
                detail: e.to_string(),
            })?;
        config
            .model
            .spec()
            .validate()
            .map_err(|e| CheckpointError::Corrupt {
                path,
                detail: e.to_string(),
            })?;
        Ok(config)
    }
}
