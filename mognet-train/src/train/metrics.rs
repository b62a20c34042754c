//! `metrics.jsonl`: one line of [`EpochMetrics`] per epoch, rewritten atomically.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::train::checkpoint::{self, CheckpointError};

/// Real occupancy of one ternary layer, as logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerOccupancy {
    /// Layer name.
    pub layer: String,
    /// Fraction of -1.
    pub minus: f64,
    /// Fraction of 0.
    pub zero: f64,
    /// Fraction of +1.
    pub plus: f64,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch (1-based).
    pub epoch: usize,
    /// Learning rate at the epoch's last step.
    pub lr: f64,
    /// Mean training cross-entropy.
    pub train_loss: f64,
    /// Training top-1 accuracy (on augmented images, in training mode).
    pub train_acc: f64,
    /// Validation cross-entropy (none when the run holds out no validation set).
    #[serde(default)]
    pub valid_loss: Option<f64>,
    /// Validation top-1 accuracy (none when the run holds out no validation set).
    #[serde(default)]
    pub valid_acc: Option<f64>,
    /// BTQ regularizer at the end of the epoch.
    pub regularizer: f64,
    /// Ternary occupancy per layer.
    pub occupancy: Vec<LayerOccupancy>,
    /// Gate-on rate per MRB on the validation set.
    pub gate_on: Vec<(String, f64)>,
    /// Training images per second in this epoch.
    pub images_per_sec: f64,
    /// Seconds this epoch took (training and validation).
    pub epoch_seconds: f64,
    /// Seconds since the run started, summed over sessions.
    pub wall_seconds: f64,
    /// Optimizer steps so far.
    pub steps: usize,
    /// Whether the epoch ran to its end (false when the time budget cut it).
    pub complete: bool,
}

impl EpochMetrics {
    /// The log line of the epoch, out of `epochs`.
    pub fn summary(&self, epochs: usize) -> String {
        let valid = match (self.valid_loss, self.valid_acc) {
            (Some(loss), Some(acc)) => format!("valid loss {loss:.4} acc {acc:.4}"),
            _ => "no validation".into(),
        };
        format!(
            "epoch {:>3}/{epochs} train loss {:.4} acc {:.4} | {valid} | reg {:.4} | lr {:.2e} | {:.0} img/s | {:.0}s{}",
            self.epoch,
            self.train_loss,
            self.train_acc,
            self.regularizer,
            self.lr,
            self.images_per_sec,
            self.epoch_seconds,
            if self.complete {
                ""
            } else {
                " (cut by the time budget)"
            }
        )
    }
}

/// Keeps the metrics lines of epochs `1..=epoch` from an earlier session and returns the wall
/// seconds they reached (0 without a file).
pub fn truncate_metrics(path: &Path, epoch: usize) -> Result<f64, CheckpointError> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(0.0);
    };
    let mut kept = String::new();
    let mut wall = 0.0;
    for line in text.lines() {
        let Ok(m) = serde_json::from_str::<EpochMetrics>(line) else {
            continue;
        };
        if m.epoch <= epoch {
            wall = m.wall_seconds;
            kept.push_str(line);
            kept.push('\n');
        }
    }
    checkpoint::write_atomic(path, kept.as_bytes())?;
    Ok(wall)
}

/// Appends one epoch's line.
pub fn append_metrics(path: &Path, m: &EpochMetrics) -> Result<(), CheckpointError> {
    let mut text = std::fs::read_to_string(path).unwrap_or_default();
    text.push_str(&serde_json::to_string(m).expect("metrics serialize"));
    text.push('\n');
    checkpoint::write_atomic(path, text.as_bytes())
}
