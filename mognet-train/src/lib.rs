//! The MOGNET trainer: device selection, model construction from presets or JSON, the training
//! loop, checkpoints and float evaluation. Datasets are `mognet-data`'s.

pub use mognet_data as data;

pub mod backend;
pub mod bench;
pub mod demo;
pub mod eval;
pub mod export;
pub mod plot;
pub mod progress;
pub mod sweep;
pub mod train;

pub use backend::{BackendChoice, Selected};
