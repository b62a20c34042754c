//! The float weights a command reads: a run folder's, or a `.bpk` with its config.

use std::path::PathBuf;

use anyhow::{Result, bail};
use burn::tensor::Device;
use clap::ValueEnum;
use mognet_core::persist::{RunWeights, load_run_model, load_weights_file};
use mognet_core::{Mognet, MognetConfig};

/// Which weights of a run.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Which {
    /// `best.bpk`, the best validation accuracy.
    Best,
    /// The last checkpoint.
    Last,
}

impl From<Which> for RunWeights {
    fn from(w: Which) -> Self {
        match w {
            Which::Best => RunWeights::Best,
            Which::Last => RunWeights::Last,
        }
    }
}

/// The float weights a command reads: a run folder's, or a `.bpk` file with its config.
#[derive(Debug, clap::Args)]
pub struct FloatWeights {
    /// The run folder written by `mognet-train train`.
    #[arg(long, required_unless_present = "weights", conflicts_with = "weights")]
    pub run: Option<PathBuf>,
    /// Which weights of the run.
    #[arg(long, value_enum, default_value = "best")]
    pub checkpoint: Which,
    /// A weights file instead of a run: NAME.bpk with NAME.config.json beside it (how
    /// checkpoints/ ships models), or a run's best.bpk.
    #[arg(long)]
    pub weights: Option<PathBuf>,
}

impl FloatWeights {
    /// The model config and the float model on `device`, and what they were read from.
    pub fn load(&self, device: &Device) -> Result<(MognetConfig, Mognet, PathBuf)> {
        match (&self.run, &self.weights) {
            (Some(run), _) => {
                let (config, model) = load_run_model(run, self.checkpoint.into(), device)?;
                Ok((config, model, run.clone()))
            }
            (None, Some(file)) => {
                let (config, model) = load_weights_file(file, device)?;
                Ok((config, model, file.clone()))
            }
            (None, None) => bail!("give --run or --weights"),
        }
    }
}
