//! Datasets: CIFAR-10/100 binary and IDX (Fashion-MNIST, MNIST) readers and augmentation, with
//! typed errors naming the file. Without features the crate is Burn-free (the integer engine
//! reads test sets through it); the `burn` feature adds Burn's `Dataset` for the sets and a
//! `Batcher` producing tensors. Nothing here touches the network.

pub mod augment;
#[cfg(feature = "burn")]
pub mod batcher;
pub mod cifar;
#[cfg(feature = "cli")]
pub mod cli;
pub mod error;
pub mod idx;
pub mod image_set;
pub mod picture;
pub mod split;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use augment::{Augment, AugmentedSet};
#[cfg(feature = "burn")]
pub use batcher::{ImageBatch, ImageBatcher};
pub use cifar::Cifar100Label;
pub use error::DataError;
pub use image_set::{ImageItem, ImageSet};
pub use picture::Picture;
pub use split::{SplitError, SplitIndices, split_indices};

/// The datasets the trainer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// CIFAR-10 binary version (`data_batch_1..5.bin`, `test_batch.bin`).
    Cifar10,
    /// CIFAR-100 binary version (`train.bin`, `test.bin`).
    Cifar100,
    /// Fashion-MNIST IDX files (gzipped or raw), padded to 32x32.
    FashionMnist,
    /// MNIST IDX files (gzipped or raw), padded to 32x32.
    Mnist,
}

/// Training or test split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// The training images.
    Train,
    /// The test images.
    Test,
}

impl DatasetKind {
    /// The name used on the command line and by `datasets/fetch`.
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Cifar100 => "cifar100",
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Mnist => "mnist",
        }
    }

    /// Input channels.
    pub fn channels(self) -> usize {
        match self {
            DatasetKind::Cifar10 | DatasetKind::Cifar100 => 3,
            DatasetKind::FashionMnist | DatasetKind::Mnist => 1,
        }
    }

    /// Classes, given the CIFAR-100 label choice.
    pub fn num_classes(self, label: Cifar100Label) -> usize {
        match (self, label) {
            (DatasetKind::Cifar100, Cifar100Label::Fine) => 100,
            (DatasetKind::Cifar100, Cifar100Label::Coarse) => 20,
            _ => 10,
        }
    }

    /// Class names, for reports.
    pub fn class_names(self, label: Cifar100Label) -> Vec<String> {
        let names: &[&str] = match self {
            DatasetKind::Cifar10 => &[
                "airplane",
                "automobile",
                "bird",
                "cat",
                "deer",
                "dog",
                "frog",
                "horse",
                "ship",
                "truck",
            ],
            DatasetKind::FashionMnist => &[
                "t-shirt/top",
                "trouser",
                "pullover",
                "dress",
                "coat",
                "sandal",
                "shirt",
                "sneaker",
                "bag",
                "ankle boot",
            ],
            _ => &[],
        };
        if names.is_empty() {
            (0..self.num_classes(label))
                .map(|i| i.to_string())
                .collect()
        } else {
            names.iter().map(|s| s.to_string()).collect()
        }
    }

    /// Loads a split from `dir` (or from the folder the official archive unpacks to inside it).
    pub fn load(
        self,
        dir: &Path,
        split: Split,
        label: Cifar100Label,
    ) -> Result<ImageSet, DataError> {
        match self {
            DatasetKind::Cifar10 => {
                let dir = subfolder(dir, "cifar-10-batches-bin", "test_batch.bin");
                let files: Vec<PathBuf> = match split {
                    Split::Train => (1..=5)
                        .map(|i| dir.join(format!("data_batch_{i}.bin")))
                        .collect(),
                    Split::Test => vec![dir.join("test_batch.bin")],
                };
                self.require_any(&dir, &files)?;
                let mut set = ImageSet::empty(3, 32, 10);
                for f in files {
                    set.extend(cifar::read_cifar10(&f)?);
                }
                Ok(set)
            }
            DatasetKind::Cifar100 => {
                let dir = subfolder(dir, "cifar-100-binary", "test.bin");
                let file = dir.join(match split {
                    Split::Train => "train.bin",
                    Split::Test => "test.bin",
                });
                self.require_any(&dir, std::slice::from_ref(&file))?;
                cifar::read_cifar100(&file, label)
            }
            DatasetKind::FashionMnist | DatasetKind::Mnist => {
                let prefix = match split {
                    Split::Train => "train",
                    Split::Test => "t10k",
                };
                let images = idx_file(dir, &format!("{prefix}-images-idx3-ubyte"));
                let labels = idx_file(dir, &format!("{prefix}-labels-idx1-ubyte"));
                self.require_any(dir, &[images.clone(), labels.clone()])?;
                idx::read_pair(&images, &labels, 10)
            }
        }
    }

    /// A clear "fetch it first" error when none of a dataset's files is there; a missing file
    /// among present ones is reported by the reader, naming it.
    fn require_any(self, dir: &Path, files: &[PathBuf]) -> Result<(), DataError> {
        if files.iter().any(|f| f.exists()) {
            return Ok(());
        }
        Err(DataError::NotFound {
            dir: dir.to_path_buf(),
            dataset: self.name().to_string(),
            tried: files
                .iter()
                .map(|f| {
                    f.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

/// `dir/name` when the official archive's folder is there and `dir` itself lacks `probe`.
fn subfolder(dir: &Path, name: &str, probe: &str) -> PathBuf {
    let nested = dir.join(name);
    if !dir.join(probe).exists() && nested.join(probe).exists() {
        nested
    } else {
        dir.to_path_buf()
    }
}

/// The gzipped file if present, else the raw one.
fn idx_file(dir: &Path, stem: &str) -> PathBuf {
    let gz = dir.join(format!("{stem}.gz"));
    if gz.exists() { gz } else { dir.join(stem) }
}

/// Paths of the shipped samples, for tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::PathBuf;

    /// `datasets/samples/<name>` from the repository root.
    pub fn sample(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../datasets/samples")
            .join(name)
    }

    /// The Fashion-MNIST sample's image and label files of `prefix` (`train` or `t10k`).
    pub fn fashion_sample(prefix: &str) -> (PathBuf, PathBuf) {
        let dir = sample("fashion-mnist");
        (
            dir.join(format!("{prefix}-images-idx3-ubyte.gz")),
            dir.join(format!("{prefix}-labels-idx1-ubyte.gz")),
        )
    }

    /// A fresh scratch folder for one test.
    pub fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mognet-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_sample_folder_by_kind_and_reports_missing_data() {
        let dir = testing::sample("fashion-mnist");
        let train = DatasetKind::FashionMnist
            .load(&dir, Split::Train, Cifar100Label::Fine)
            .unwrap();
        assert_eq!(train.len(), 6000);
        let test = DatasetKind::FashionMnist
            .load(&dir, Split::Test, Cifar100Label::Fine)
            .unwrap();
        assert_eq!(test.len(), 1000);
        let empty = testing::scratch("no-data");
        let err = DatasetKind::Cifar10
            .load(&empty, Split::Train, Cifar100Label::Fine)
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DataError::NotFound { .. }), "{msg}");
        assert!(
            msg.contains("data_batch_1.bin") && msg.contains("datasets/fetch cifar10"),
            "{msg}"
        );
        // One batch present, the others missing: the reader names the first missing file.
        std::fs::copy(
            testing::sample("cifar10-test-first20.bin"),
            empty.join("data_batch_1.bin"),
        )
        .unwrap();
        let err = DatasetKind::Cifar10
            .load(&empty, Split::Train, Cifar100Label::Fine)
            .unwrap_err();
        assert!(err.to_string().contains("data_batch_2.bin"), "{err}");
    }
}
