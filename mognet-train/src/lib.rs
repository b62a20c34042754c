//! The MOGNET trainer: device selection, model construction from presets or JSON, and (in later
//! modules) datasets, the training loop, checkpoints and evaluation.

pub mod backend;
pub mod model_args;

pub use backend::{BackendChoice, Selected};
