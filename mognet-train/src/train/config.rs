//! The training configuration, saved with the model config as `RUN_DIR/config.json`.

use std::path::{Path, PathBuf};

use burn::config::Config;
use mognet_core::MognetConfig;
use serde::{Deserialize, Serialize};

use crate::backend::BackendChoice;
use crate::data::{Augment, Cifar100Label, DatasetKind};
use crate::train::checkpoint::{CheckpointError, read, write_atomic};
use crate::train::distill::DistillConfig;
use crate::train::schedule::Schedule;

/// The optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// SGD with Nesterov momentum.
    Sgd,
    /// Adam.
    Adam,
}

/// A training config value that makes no sense.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("training config: {field} {detail}")]
pub struct InvalidConfig {
    /// The field (its command-line flag is the same with dashes).
    pub field: &'static str,
    /// What is wrong.
    pub detail: String,
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
    /// Label smoothing of the training loss: the target puts `1 - a` on the label and spreads
    /// `a` evenly over all classes (validation and test losses stay plain cross-entropy).
    /// `None` or 0: none. Must be in [0, 1). Default: none.
    #[config(default = "None")]
    pub label_smoothing: Option<f64>,
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
    /// Validate on the first N validation images only. Default: all.
    #[config(default = "None")]
    pub limit_valid: Option<usize>,
    /// Training images held out as the validation set that picks the best epoch
    /// (class-balanced, fixed by `seed`; see `mognet_data::split_indices`); 0 holds none out:
    /// no validation, and the last epoch is kept. `None`, in configs written before the split
    /// existed, validates on the test split as those runs did, so that they resume exactly.
    /// Default: 5000.
    #[config(default = "Some(5000)")]
    pub valid_split: Option<usize>,
    /// Weights a new run starts from instead of the seeded initialisation (a `.bpk` file of
    /// the same model config, such as `checkpoints/NAME.bpk`): fine-tuning. Default: none.
    #[config(default = "None")]
    pub init: Option<PathBuf>,
    /// Stop once this many minutes have passed (after at least one step): by default with a
    /// checkpoint where the budget ran out, within the epoch if need be, so that resume
    /// continues exactly (see `budget_ends_epoch`). A session setting. Default: none.
    #[config(default = "None")]
    pub time_budget_minutes: Option<f64>,
    /// What the time budget does to the epoch it cuts: false ends the call with a checkpoint
    /// within the epoch, and resume finishes that epoch (the run stays the uninterrupted run);
    /// true ends the epoch there (validated, kept if best, logged as cut), resume starts the next
    /// one, and no epoch is begun that the last epoch's time says would not fit. The demo takes
    /// true: a budget shorter than its plan must still leave it a model. A session setting.
    /// Default: false.
    #[config(default = false)]
    pub budget_ends_epoch: bool,
    /// Training images (the first ones, not augmented) over which batch-norm statistics are
    /// re-estimated after each epoch, before validation and before the best model is saved; 0
    /// keeps the running averages of training. Default: 2048.
    #[config(default = 2048)]
    pub bn_recalibration: usize,
    /// Stop after this many epochs in this session (checkpointed; continue with resume).
    /// Like the time budget, it belongs to the session, not the run. Default: none.
    #[config(default = "None")]
    pub stop_after_epochs: Option<usize>,
    /// Stop after this many optimizer steps in this session, checkpointing where it stops (in
    /// the middle of an epoch if need be); a session setting like `stop_after_epochs`.
    /// Default: none.
    #[config(default = "None")]
    pub stop_after_steps: Option<usize>,
    /// Also checkpoint within an epoch every this many minutes, so that a killed session loses
    /// at most that much work (an epoch of mognet-l on the full Fashion-MNIST takes about 17
    /// minutes on 2 CPU cores); 0 checkpoints at epoch ends only. Default: 10.
    #[config(default = 10.0)]
    pub checkpoint_minutes: f64,
    /// Training augmentation. New runs write the dataset's default here
    /// ([`Augment::default_for`]: crop pad 4 colour / 2 gray, flip except for MNIST); `None`, in
    /// configs written before that, means crop and flip for every dataset. Default: `None`.
    #[config(default = "None")]
    pub augment: Option<Augment>,
    /// Knowledge distillation from trained teachers (see [`DistillConfig`]); none trains on
    /// the labels alone. Default: none.
    #[config(default = "None")]
    pub distill: Option<DistillConfig>,
}

impl TrainConfig {
    /// Checks every value a run needs to make sense: counts at least 1, rates and weights
    /// finite and not negative (the learning rate above 0), time limits finite and positive.
    pub fn check(&self) -> Result<(), InvalidConfig> {
        self.check_counts()?;
        self.check_rates()?;
        if let Some(distill) = &self.distill {
            distill.check()?;
        }
        if let Some(m) = self.time_budget_minutes
            && !(m.is_finite() && m > 0.0 && m < 1e9)
        {
            return Err(InvalidConfig {
                field: "time_budget_minutes",
                detail: format!("must be a finite number of minutes above 0, got {m}"),
            });
        }
        Ok(())
    }

    /// Counts: at least 1 (the optional ones when given).
    fn check_counts(&self) -> Result<(), InvalidConfig> {
        let bad = |field: &'static str, detail: String| Err(InvalidConfig { field, detail });
        for (field, v) in [("epochs", self.epochs), ("batch_size", self.batch_size)] {
            if v == 0 {
                return bad(field, "must be at least 1".into());
            }
        }
        let optional = [
            ("limit_train", self.limit_train),
            ("limit_valid", self.limit_valid),
            ("stop_after_epochs", self.stop_after_epochs),
            ("stop_after_steps", self.stop_after_steps),
        ];
        for (field, v) in optional {
            if v == Some(0) {
                return bad(field, "must be at least 1 when given".into());
            }
        }
        Ok(())
    }

    /// Rates and weights: finite, in range, the learning rate above 0.
    fn check_rates(&self) -> Result<(), InvalidConfig> {
        let bad = |field: &'static str, detail: String| Err(InvalidConfig { field, detail });
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(
                "lr",
                format!("must be a finite number above 0, got {}", self.lr),
            );
        }
        if !(self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            return bad(
                "momentum",
                format!("must be in [0, 1), got {}", self.momentum),
            );
        }
        let non_negative = [
            ("warmup_epochs", self.warmup_epochs),
            ("weight_decay", self.weight_decay),
            ("reg_lambda", self.reg_lambda),
            ("checkpoint_minutes", self.checkpoint_minutes),
        ];
        for (field, v) in non_negative {
            if !(v.is_finite() && v >= 0.0) {
                return bad(
                    field,
                    format!("must be a finite number, 0 or more, got {v}"),
                );
            }
        }
        if let Some(a) = self.label_smoothing
            && !(a.is_finite() && (0.0..1.0).contains(&a))
        {
            return bad("label_smoothing", format!("must be in [0, 1), got {a}"));
        }
        Ok(())
    }

    /// The augmentation in effect.
    pub fn augmentation(&self) -> Augment {
        self.augment
            .unwrap_or_else(|| Augment::channel_default(self.dataset.channels()))
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

    /// Reads `RUN_DIR/config.json`. Fields added to the configs after the run was written take
    /// their documented defaults.
    pub fn load(run: &Path) -> Result<Self, CheckpointError> {
        Self::load_file(&Self::path(run))
    }

    /// Reads a run config from `path` (such as a shipped `checkpoints/NAME.config.json`), as
    /// [`RunConfig::load`] does.
    pub fn load_file(path: &Path) -> Result<Self, CheckpointError> {
        let path = path.to_path_buf();
        let bytes = read(&path)?;
        let corrupt = |detail: String| CheckpointError::Corrupt {
            path: path.clone(),
            detail,
        };
        let mut value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        let train = value
            .get("train")
            .cloned()
            .ok_or_else(|| corrupt("no \"train\" entry".into()))?;
        // Runs from before the validation split validated on the test split; they keep doing so.
        if let Some(serde_json::Value::Object(t)) = value.get_mut("train") {
            t.entry("valid_split").or_insert(serde_json::Value::Null);
        }
        let defaults = |v: &serde_json::Value| -> Option<serde_json::Value> {
            let dataset = serde_json::from_value(v.get("dataset")?.clone()).ok()?;
            let dir = serde_json::from_value(v.get("data_dir")?.clone()).ok()?;
            serde_json::to_value(TrainConfig::new(dataset, dir)).ok()
        };
        if let (Some(serde_json::Value::Object(d)), Some(serde_json::Value::Object(t))) =
            (defaults(&train), value.get_mut("train"))
        {
            for (k, v) in d {
                t.entry(k).or_insert(v);
            }
        }
        let model = value
            .get_mut("model")
            .map(serde_json::Value::take)
            .ok_or_else(|| corrupt("no \"model\" entry".into()))?;
        let model = MognetConfig::from_json(model).map_err(|e| corrupt(e.to_string()))?;
        let train = value
            .get_mut("train")
            .map(serde_json::Value::take)
            .unwrap_or_default();
        let train = serde_json::from_value(train).map_err(|e| corrupt(e.to_string()))?;
        let config = RunConfig { model, train };
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

#[cfg(test)]
mod tests {
    use super::*;
    use mognet_core::Preset;

    #[test]
    fn configs_written_before_a_field_existed_load_with_its_default() {
        let dir = std::env::temp_dir().join(format!("mognet-config-compat-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let run = RunConfig {
            model: MognetConfig::preset(Preset::S, 1, 10).with_head_gamma_init(3.0),
            train: TrainConfig::new(DatasetKind::FashionMnist, "data".into())
                .with_bn_recalibration(7)
                .with_epochs(4),
        };
        let mut value = serde_json::to_value(&run).unwrap();
        value["train"]
            .as_object_mut()
            .unwrap()
            .remove("bn_recalibration");
        value["train"]
            .as_object_mut()
            .unwrap()
            .remove("valid_split");
        value["model"]
            .as_object_mut()
            .unwrap()
            .remove("head_gamma_init");
        value["model"].as_object_mut().unwrap().remove("pw2");
        value["train"]
            .as_object_mut()
            .unwrap()
            .remove("label_smoothing");
        std::fs::write(RunConfig::path(&dir), value.to_string()).unwrap();
        let loaded = RunConfig::load(&dir).unwrap();
        assert_eq!(loaded.train.bn_recalibration, 2048);
        assert_eq!(loaded.model.head_gamma_init, 8.0);
        assert_eq!(loaded.model.pw2, mognet_core::Pw2Kind::Ca);
        assert_eq!(loaded.train.epochs, 4);
        assert_eq!(
            loaded.train.valid_split, None,
            "old runs keep validating on the test split"
        );
        assert_eq!(run.train.valid_split, Some(5000));
        assert_eq!(loaded.train.label_smoothing, None);
        // A file that is not a run config at all is still an error naming it.
        std::fs::write(RunConfig::path(&dir), b"{\"model\": 1}").unwrap();
        let err = RunConfig::load(&dir).unwrap_err().to_string();
        assert!(err.contains("config.json"), "{err}");
        std::fs::remove_dir_all(dir).ok();
    }
}
