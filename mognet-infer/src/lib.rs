//! MOGNET as a pure integer program: the `.mognet` file format, the integer model, scalar
//! reference kernels and the engine. The library has no Burn dependency, so it embeds anywhere;
//! folding a trained Burn model into it lives in the `mognet-infer` binary (feature `fold`).

pub mod affine;
pub mod bits;
pub mod engine;
pub mod fast;
#[cfg(feature = "fold")]
pub mod fold;
pub mod format;
pub mod kernels;
pub mod model;
#[cfg(feature = "cli")]
pub mod parity;
pub mod ternary;

pub use engine::{IntTrace, Prediction};
pub use format::{FileInfo, FormatError, LoadError};
pub use model::IntModel;
pub use ternary::Packing;
