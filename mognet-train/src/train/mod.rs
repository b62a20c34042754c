//! Training: configuration, learning-rate schedules, checkpoints and the loop.

pub mod checkpoint;
pub mod config;
pub mod run;
pub mod schedule;

pub use checkpoint::CheckpointError;
pub use config::{OptimizerKind, RunConfig, TrainConfig};
pub use run::{EpochMetrics, TrainError, TrainOutcome, train};
pub use schedule::Schedule;
