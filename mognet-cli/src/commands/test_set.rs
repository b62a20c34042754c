//! A dataset's test split as commands take it, checked against a model.

use anyhow::{Context as _, Result, bail};
use mognet_data::cli::DataArgs;
use mognet_data::{ImageSet, Split};
use mognet_infer::IntModel;

/// A dataset's test split.
#[derive(Debug, Clone, clap::Args)]
pub struct TestSet {
    #[command(flatten)]
    data: DataArgs,
    /// Use the first N test images only.
    #[arg(long)]
    limit: Option<usize>,
}

impl TestSet {
    /// The images, or an error naming the dataset.
    pub fn load(&self) -> Result<ImageSet> {
        if self.limit == Some(0) {
            bail!("--limit must be at least 1");
        }
        self.data
            .load(Split::Test, self.limit)
            .with_context(|| format!("loading the {} test set", self.data.dataset.name()))
    }

    /// The dataset's name.
    pub fn name(&self) -> &'static str {
        self.data.dataset.name()
    }
}

/// An error unless `set` has the model's image shape and labels within its classes.
pub fn check_shape(model: &IntModel, set: &ImageSet, what: &str) -> Result<()> {
    let s = &model.spec;
    if set.channels != s.in_channels || set.size != s.input_size[0] || set.size != s.input_size[1] {
        bail!(
            "the model takes {}x{}x{} images, {what} has {}x{}x{}",
            s.in_channels,
            s.input_size[0],
            s.input_size[1],
            set.channels,
            set.size,
            set.size
        );
    }
    if set.labels.iter().any(|&l| l as usize >= s.num_classes) {
        bail!(
            "{what} has labels beyond the model's {} classes",
            s.num_classes
        );
    }
    Ok(())
}
