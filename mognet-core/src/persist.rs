//! Model files and run folders: atomic writes, CRC-checked reads, and where a run keeps what.
//!
//! A run folder (written by `mognet-train train`) holds `config.json` (`{"model": ..., "train":
//! ...}`), `best.bpk` with `best.json` (its epoch, accuracy and CRC-32), and `last.json` pointing
//! at the last checkpoint folder, whose `state.json` records the CRC-32 of its `model.bpk`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::{ModuleRecord, RecordError};
use burn::tensor::Bytes;

use crate::model::{Mognet, MognetConfig};

/// Why a model file or run folder could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// A file is absent.
    #[error("{path}: not found")]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file's content is damaged or not what it should be.
    #[error("{path}: corrupt: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Written by another version.
    #[error("{path}: format {found}, this build reads format {expected}")]
    Version {
        /// The file.
        path: PathBuf,
        /// Version found.
        found: u32,
        /// Version supported.
        expected: u32,
    },
    /// Burn could not encode or apply a record.
    #[error("{path}: {source}")]
    Record {
        /// The file.
        path: PathBuf,
        /// Burn's error.
        source: RecordError,
    },
}

fn io_err(path: &Path, source: std::io::Error) -> PersistError {
    if source.kind() == std::io::ErrorKind::NotFound {
        PersistError::Missing {
            path: path.to_path_buf(),
        }
    } else {
        PersistError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, synced, renamed,
/// and the folder synced, so that the new name survives a crash of the machine too.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PersistError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| io_err(path, e))
}

/// Flushes a folder's entries (new and renamed names) to disk. Only Unix can open a folder to
/// sync it; elsewhere renames are left to the file system.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Syncs the folder `dir`, naming it in errors.
pub fn sync_folder(dir: &Path) -> Result<(), PersistError> {
    sync_dir(dir).map_err(|e| io_err(dir, e))
}

/// Reads a whole file, naming it in errors.
pub fn read(path: &Path) -> Result<Vec<u8>, PersistError> {
    std::fs::read(path).map_err(|e| io_err(path, e))
}

/// Reads a file and checks its CRC-32.
pub fn read_verified(path: &Path, crc: u32) -> Result<Vec<u8>, PersistError> {
    let bytes = read(path)?;
    let found = crc32fast::hash(&bytes);
    if found != crc {
        return Err(PersistError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("CRC-32 {found:#010x}, expected {crc:#010x}"),
        });
    }
    Ok(bytes)
}

/// Reads a JSON file, naming it in errors.
pub fn read_json(path: &Path) -> Result<serde_json::Value, PersistError> {
    serde_json::from_slice(&read(path)?).map_err(|e| PersistError::Corrupt {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

/// Serializes a model to `.bpk` bytes (Burn's burnpack).
pub fn model_bytes(model: &Mognet, what: &Path) -> Result<Vec<u8>, PersistError> {
    let bytes =
        model
            .clone()
            .into_record()
            .into_bytes()
            .map_err(|source| PersistError::Record {
                path: what.to_path_buf(),
                source,
            })?;
    Ok(bytes.to_vec())
}

/// Applies `.bpk` bytes to a model built from the same config (the CA weights come from the
/// config, not the file).
pub fn apply_model_bytes(
    model: Mognet,
    bytes: Vec<u8>,
    path: &Path,
) -> Result<Mognet, PersistError> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes)).map_err(|source| {
        PersistError::Record {
            path: path.to_path_buf(),
            source,
        }
    })?;
    model
        .try_load_record(record)
        .map_err(|source| PersistError::Record {
            path: path.to_path_buf(),
            source,
        })
}

/// Saves `model` to `path` atomically; returns the file's CRC-32.
pub fn save_model(model: &Mognet, path: &Path) -> Result<u32, PersistError> {
    let bytes = model_bytes(model, path)?;
    write_atomic(path, &bytes)?;
    Ok(crc32fast::hash(&bytes))
}

/// Loads a model file into `model` (built from the same config), checking its CRC-32 when one
/// is known.
pub fn load_model(model: Mognet, path: &Path, crc: Option<u32>) -> Result<Mognet, PersistError> {
    let bytes = match crc {
        Some(crc) => read_verified(path, crc)?,
        None => read(path)?,
    };
    apply_model_bytes(model, bytes, path)
}

/// Which weights of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunWeights {
    /// `best.bpk`: the best validation accuracy.
    Best,
    /// The last checkpoint.
    Last,
}

/// `RUN_DIR/config.json`.
pub fn run_config_path(run: &Path) -> PathBuf {
    run.join("config.json")
}

/// The model config of a run (the `model` entry of `config.json`).
pub fn run_model_config(run: &Path) -> Result<MognetConfig, PersistError> {
    model_config_file(&run_config_path(run))
}

/// The `model` entry of a run config file (`{"model": ..., "train": ...}`), validated.
pub fn model_config_file(path: &Path) -> Result<MognetConfig, PersistError> {
    let value = read_json(path)?;
    let corrupt = |detail: String| PersistError::Corrupt {
        path: path.to_path_buf(),
        detail,
    };
    let model = value
        .get("model")
        .cloned()
        .ok_or_else(|| corrupt("no \"model\" entry".into()))?;
    let config = MognetConfig::from_json(model).map_err(|e| corrupt(e.to_string()))?;
    config
        .spec()
        .validate()
        .map_err(|e| corrupt(e.to_string()))?;
    Ok(config)
}

/// The folder `RUN_DIR/last.json` points at.
pub fn last_checkpoint_dir(run: &Path) -> Result<PathBuf, PersistError> {
    let pointer = run.join("last.json");
    let value = read_json(&pointer)?;
    let rel = value
        .get("checkpoint")
        .and_then(|v| v.as_str())
        .ok_or_else(|| PersistError::Corrupt {
            path: pointer.clone(),
            detail: "no \"checkpoint\" entry".into(),
        })?;
    Ok(run.join(rel))
}

/// The weights file of a run and its recorded CRC-32.
pub fn run_weights(run: &Path, which: RunWeights) -> Result<(PathBuf, Option<u32>), PersistError> {
    let crc_of = |path: &Path, key: &str| -> Result<Option<u32>, PersistError> {
        match read_json(path) {
            Ok(v) => Ok(v.get(key).and_then(|c| c.as_u64()).map(|c| c as u32)),
            Err(PersistError::Missing { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    };
    match which {
        RunWeights::Best => Ok((
            run.join("best.bpk"),
            crc_of(&run.join("best.json"), "crc32")?,
        )),
        RunWeights::Last => {
            let dir = last_checkpoint_dir(run)?;
            let crc = crc_of(&dir.join("state.json"), "model_crc")?;
            Ok((dir.join("model.bpk"), crc))
        }
    }
}

/// Builds a run's model on `device` and loads its weights.
pub fn load_run_model(
    run: &Path,
    which: RunWeights,
    device: &burn::tensor::Device,
) -> Result<(MognetConfig, Mognet), PersistError> {
    let config = run_model_config(run)?;
    let model = config.init(device).map_err(|e| PersistError::Corrupt {
        path: run_config_path(run),
        detail: e.to_string(),
    })?;
    let (path, crc) = run_weights(run, which)?;
    Ok((config, load_model(model, &path, crc)?))
}

/// The config that goes with a weights file: `NAME.config.json` beside `NAME.bpk` (how
/// `checkpoints/` ships models), else the `config.json` of the folder (a run's `best.bpk`).
pub fn weights_config_path(weights: &Path) -> PathBuf {
    let sibling = weights.with_extension("config.json");
    if sibling.exists() {
        return sibling;
    }
    weights
        .parent()
        .map_or_else(|| PathBuf::from("config.json"), run_config_path)
}

/// The model config a weights file was trained as (from [`weights_config_path`]), after
/// checking that the file is there.
pub fn weights_model_config(weights: &Path) -> Result<MognetConfig, PersistError> {
    if !weights.exists() {
        return Err(PersistError::Missing {
            path: weights.to_path_buf(),
        });
    }
    let config_path = weights_config_path(weights);
    if !config_path.exists() {
        return Err(PersistError::Corrupt {
            path: weights.to_path_buf(),
            detail: format!(
                "no model config beside it ({} or config.json in its folder)",
                weights.with_extension("config.json").display()
            ),
        });
    }
    model_config_file(&config_path)
}

/// Builds the model a weights file was trained as on `device` and loads the weights.
pub fn load_weights_file(
    weights: &Path,
    device: &burn::tensor::Device,
) -> Result<(MognetConfig, Mognet), PersistError> {
    let config = weights_model_config(weights)?;
    let model = config.init(device).map_err(|e| PersistError::Corrupt {
        path: weights_config_path(weights),
        detail: e.to_string(),
    })?;
    Ok((config, load_model(model, weights, None)?))
}
