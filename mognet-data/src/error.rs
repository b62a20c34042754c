//! Typed errors of the dataset readers. Every variant names the file it is about.

use std::path::PathBuf;

/// Why a dataset could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file does not exist.
    #[error("{path}: file not found")]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// None of the expected files of a dataset is in the folder.
    #[error(
        "{dir}: no {dataset} files found (looked for {tried}); fetch them with `datasets/fetch {dataset} {dir}`"
    )]
    NotFound {
        /// The folder.
        dir: PathBuf,
        /// The dataset's name.
        dataset: String,
        /// The names tried.
        tried: String,
    },
    /// Reading failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is empty.
    #[error("{path}: file is empty")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The size is not a whole number of fixed-size records (truncated or padded).
    #[error(
        "{path}: size {len} bytes is not a multiple of the {record}-byte record (truncated or corrupt file?)"
    )]
    RecordSize {
        /// The file.
        path: PathBuf,
        /// Its size.
        len: usize,
        /// The record size.
        record: usize,
    },
    /// A label is not a valid class.
    #[error("{path}: record {index} has label {label}, but the dataset has {classes} classes")]
    LabelOutOfRange {
        /// The file.
        path: PathBuf,
        /// Record index.
        index: usize,
        /// The label found.
        label: usize,
        /// Number of classes.
        classes: usize,
    },
    /// The IDX magic number is wrong.
    #[error(
        "{path}: bad IDX magic {magic:#010x} (expected {expected:#010x}); not an IDX {what} file"
    )]
    IdxMagic {
        /// The file.
        path: PathBuf,
        /// Magic found.
        magic: u32,
        /// Magic expected.
        expected: u32,
        /// "image" or "label".
        what: &'static str,
    },
    /// IDX dimensions are absurd or disagree with the data.
    #[error("{path}: {detail}")]
    IdxShape {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A picture file is not a PNG this reader decodes.
    #[error("{path}: {detail}")]
    Png {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A picture does not fit the model's input.
    #[error("{path}: {detail}")]
    PictureShape {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Images and labels disagree in count.
    #[error("{images} has {n_images} images but {labels} has {n_labels} labels")]
    CountMismatch {
        /// Image file.
        images: PathBuf,
        /// Label file.
        labels: PathBuf,
        /// Images.
        n_images: usize,
        /// Labels.
        n_labels: usize,
    },
}

impl DataError {
    /// An I/O error on `path`, mapping "not found" to [`DataError::Missing`].
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            DataError::Missing {
                path: path.to_path_buf(),
            }
        } else {
            DataError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    }
}
