//! The model a command of the binary works on: a preset or a JSON config, with input channels
//! and classes (command-line arguments, so not part of the library).

use std::path::PathBuf;

use anyhow::Context as _;
use mognet_core::{MognetConfig, Preset};

/// Command-line arguments that pick a model.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// Preset: mognet-s, mognet-m or mognet-l.
    #[arg(long, default_value = "mognet-s")]
    pub preset: Preset,
    /// A model config in JSON (as written in a run's config.json); overrides --preset.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Input channels: 1 (grayscale) or 3 (colour).
    #[arg(long, default_value_t = 3)]
    pub in_channels: usize,
    /// Number of classes.
    #[arg(long, default_value_t = 10)]
    pub num_classes: usize,
}

impl ModelArgs {
    /// The model config these arguments describe.
    pub fn config(&self) -> anyhow::Result<MognetConfig> {
        match &self.config {
            Some(path) => MognetConfig::from_file(path)
                .with_context(|| format!("reading model config {}", path.display())),
            None => {
                let config = MognetConfig::preset(self.preset, self.in_channels, self.num_classes);
                config.spec().validate()?;
                Ok(config)
            }
        }
    }
}
