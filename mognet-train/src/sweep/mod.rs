//! Sweeps: a grid of arms (config overrides) times seeds, run as ordinary run folders that
//! survive kills and split over machines by shard, and the table that compares the arms.

pub mod folder;
pub mod grid;
pub mod report;
pub mod run;

pub use folder::SWEEP_GITIGNORE;
pub use grid::{Arm, Grid, GridError, Job, Shard};
pub use report::{ArmRow, MeanStd, ReportError, SweepReport, collect};
pub use run::{JobResult, JobStatus, SweepError, SweepOptions, run_sweep};
