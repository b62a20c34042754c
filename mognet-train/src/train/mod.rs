//! Training: configuration, learning-rate schedules, checkpoints, the input pipeline, metrics
//! and the loop.

pub mod average;
pub mod batches;
pub mod checkpoint;
pub mod config;
pub mod distill;
mod epoch_pass;
pub mod final_test;
mod loss;
pub mod metrics;
mod recalibrate;
pub mod run;
pub mod schedule;
mod session;

pub use checkpoint::CheckpointError;
pub use config::{OptimizerKind, RunConfig, TrainConfig};
pub use distill::DistillConfig;
pub use final_test::{TestResult, read_test, test_best};
pub use metrics::EpochMetrics;
pub use run::{TrainError, TrainOutcome, train};
pub use schedule::Schedule;
