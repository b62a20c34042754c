//! Command-line arguments that name a dataset, shared by `mognet-train` and `mognet-infer`.

use std::path::PathBuf;

use crate::{Cifar100Label, DataError, DatasetKind, ImageSet, Split};

/// Where a dataset is.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Dataset.
    #[arg(long, value_enum)]
    pub dataset: DatasetKind,
    /// Folder with the dataset's files (see `datasets/fetch`).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// CIFAR-100 label set.
    #[arg(long, value_enum, default_value = "fine")]
    pub cifar100_label: Cifar100Label,
}

impl DataArgs {
    /// Loads a split, keeping its first `limit` images when given.
    pub fn load(&self, split: Split, limit: Option<usize>) -> Result<ImageSet, DataError> {
        let set = self
            .dataset
            .load(&self.data_dir, split, self.cifar100_label)?;
        Ok(match limit {
            Some(n) => set.truncated(n),
            None => set,
        })
    }
}
