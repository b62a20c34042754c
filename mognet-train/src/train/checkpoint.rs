//! Checkpoints: model, optimizer and loop state, written atomically and verified on load.
//!
//! Each epoch writes `RUN_DIR/checkpoints/epoch-NNNN/{model.bpk, optim.bpk, state.json}` and then
//! atomically replaces the pointer `RUN_DIR/last.json`; a crash leaves the previous checkpoint
//! intact. Checkpoints within an epoch go to `epoch-NNNN-batch-BBBBB` (NNNN epochs and BBBBB
//! batches of the next one done). `state.json` records the CRC-32 of the two binary files, so a
//! damaged file is reported as such instead of being loaded as garbage.

use std::path::{Path, PathBuf};

use burn::optim::ModuleOptimizer;
use burn::tensor::Bytes;
use mognet_core::Mognet;
pub use mognet_core::persist::{
    PersistError as CheckpointError, last_checkpoint_dir as last_dir, load_model, read, read_json,
    read_verified, save_model, sync_folder, write_atomic,
};
use mognet_core::persist::{apply_model_bytes, model_bytes};
use serde::{Deserialize, Serialize};

/// Version of `state.json`'s layout: 2 added `progress` (checkpoints within an epoch). Version
/// 1 files load as epoch-end checkpoints.
pub const STATE_VERSION: u32 = 2;

/// How far the loop had got into the epoch after `LoopState::epoch` when it checkpointed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochProgress {
    /// Batches of the epoch already trained (its data order is a function of seed and epoch,
    /// so a resume skips exactly these).
    pub batches: usize,
    /// Sum of the batch losses times batch sizes so far.
    pub loss_sum: f64,
    /// Correct training predictions so far.
    pub correct: usize,
    /// Training images so far.
    pub seen: usize,
    /// Seconds spent on the epoch so far.
    pub seconds: f64,
}

/// The loop's state at the end of an epoch, or within one (`progress`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopState {
    /// `state.json` layout version.
    pub version: u32,
    /// Epochs completed.
    pub epoch: usize,
    /// Optimizer steps taken.
    pub step: usize,
    /// Whether the last epoch ran to its end (false when the time budget cut it short).
    pub epoch_complete: bool,
    /// The run seed: with the epoch it fixes the data order and the augmentation of every image,
    /// which is the whole of the loop's randomness.
    pub seed: u64,
    /// Best validation accuracy so far.
    pub best_valid_acc: f64,
    /// Epoch of `best_valid_acc`.
    pub best_epoch: usize,
    /// CRC-32 of `model.bpk`.
    pub model_crc: u32,
    /// CRC-32 of `optim.bpk`.
    pub optim_crc: u32,
    /// Set when the checkpoint was taken within an epoch.
    #[serde(default)]
    pub progress: Option<EpochProgress>,
}

impl LoopState {
    /// The state after `epoch` epochs and `step` steps, at an epoch's end (the CRCs are filled
    /// in by [`save`]).
    pub fn new(
        epoch: usize,
        step: usize,
        seed: u64,
        best_valid_acc: f64,
        best_epoch: usize,
    ) -> LoopState {
        LoopState {
            version: STATE_VERSION,
            epoch,
            step,
            epoch_complete: true,
            seed,
            best_valid_acc,
            best_epoch,
            model_crc: 0,
            optim_crc: 0,
            progress: None,
        }
    }
}

/// The folder of the checkpoint after `epoch` epochs (and `batches` batches of the next).
pub fn epoch_dir(run: &Path, epoch: usize, batches: usize) -> PathBuf {
    let name = match batches {
        0 => format!("epoch-{epoch:04}"),
        b => format!("epoch-{epoch:04}-batch-{b:05}"),
    };
    run.join("checkpoints").join(name)
}

/// For crash tests: `MOGNET_CHECKPOINT_PAUSE_MS` makes [`save`] pause that long between the
/// files of a checkpoint, so that a process killed at a random moment is often killed in the
/// middle of one. Unset (always, outside such tests) it does nothing.
pub const PAUSE_VAR: &str = "MOGNET_CHECKPOINT_PAUSE_MS";

fn fault_pause() -> impl Fn() {
    let ms = std::env::var(PAUSE_VAR)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    move || {
        if ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
    }
}

/// Writes a checkpoint and points `last.json` at it; removes the previous one.
pub fn save(
    run: &Path,
    model: &Mognet,
    optim: &ModuleOptimizer,
    mut state: LoopState,
) -> Result<(), CheckpointError> {
    let batches = state.progress.as_ref().map_or(0, |p| p.batches);
    let dir = epoch_dir(run, state.epoch, batches);
    let model_path = dir.join("model.bpk");
    let optim_path = dir.join("optim.bpk");
    let model = model_bytes(model, &model_path)?;
    let optim = optim
        .into_bytes()
        .map_err(|source| CheckpointError::Record {
            path: optim_path.clone(),
            source,
        })?
        .to_vec();
    state.version = STATE_VERSION;
    state.model_crc = crc32fast::hash(&model);
    state.optim_crc = crc32fast::hash(&optim);
    let pause = fault_pause();
    write_atomic(&model_path, &model)?;
    pause();
    write_atomic(&optim_path, &optim)?;
    pause();
    let json = serde_json::to_vec_pretty(&state).expect("loop state serializes");
    write_atomic(&dir.join("state.json"), &json)?;
    // The checkpoint's own folder entry, before the pointer names it.
    if let Some(parent) = dir.parent() {
        sync_folder(parent)?;
    }
    pause();
    let previous = last_dir(run).ok();
    let pointer = serde_json::json!({ "checkpoint": dir.strip_prefix(run).unwrap_or(&dir) });
    write_atomic(&run.join("last.json"), pointer.to_string().as_bytes())?;
    if let Some(prev) = previous
        && prev != dir
    {
        let _ = std::fs::remove_dir_all(prev);
    }
    Ok(())
}

/// A loaded checkpoint.
pub struct Loaded {
    /// The model with the checkpoint's weights.
    pub model: Mognet,
    /// The optimizer with its state.
    pub optim: ModuleOptimizer,
    /// The loop state.
    pub state: LoopState,
}

/// Reads and checks a checkpoint's `state.json`.
pub fn load_state(dir: &Path) -> Result<LoopState, CheckpointError> {
    let path = dir.join("state.json");
    let value = read_json(&path)?;
    let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0) as u32;
    if !(1..=STATE_VERSION).contains(&version) {
        return Err(CheckpointError::Version {
            path,
            found: version,
            expected: STATE_VERSION,
        });
    }
    serde_json::from_value(value).map_err(|e| CheckpointError::Corrupt {
        path,
        detail: e.to_string(),
    })
}

/// Loads the checkpoint in `dir` into a fresh model and optimizer.
pub fn load(dir: &Path, model: Mognet, optim: ModuleOptimizer) -> Result<Loaded, CheckpointError> {
    let state = load_state(dir)?;
    let model_path = dir.join("model.bpk");
    let optim_path = dir.join("optim.bpk");
    let model = apply_model_bytes(
        model,
        read_verified(&model_path, state.model_crc)?,
        &model_path,
    )?;
    let optim_bytes = read_verified(&optim_path, state.optim_crc)?;
    let optim = optim
        .from_bytes(Bytes::from_bytes_vec(optim_bytes))
        .map_err(|source| CheckpointError::Record {
            path: optim_path,
            source,
        })?;
    Ok(Loaded {
        model,
        optim,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_one_states_load_as_epoch_end_checkpoints() {
        let dir = std::env::temp_dir().join(format!("mognet-state-v1-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A state.json as version 1 wrote it (before checkpoints within an epoch).
        let v1 = r#"{"version": 1, "epoch": 7, "step": 3283, "epoch_complete": true, "seed": 1,
            "best_valid_acc": 0.8968, "best_epoch": 7, "model_crc": 1305599715,
            "optim_crc": 131355811}"#;
        std::fs::write(dir.join("state.json"), v1).unwrap();
        let state = load_state(&dir).unwrap();
        assert_eq!((state.epoch, state.step, state.best_epoch), (7, 3283, 7));
        assert_eq!(state.progress, None);
        std::fs::write(
            dir.join("state.json"),
            v1.replace("\"version\": 1", "\"version\": 3"),
        )
        .unwrap();
        let err = load_state(&dir).unwrap_err();
        assert!(
            matches!(
                err,
                CheckpointError::Version {
                    found: 3,
                    expected: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            epoch_dir(&dir, 7, 0).file_name().unwrap().to_str(),
            Some("epoch-0007")
        );
        assert_eq!(
            epoch_dir(&dir, 7, 12).file_name().unwrap().to_str(),
            Some("epoch-0007-batch-00012")
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
