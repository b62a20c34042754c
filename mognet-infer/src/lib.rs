//! MOGNET as a pure integer program: the `.mognet` file format, the integer model, scalar
//! reference kernels and the engine. The crate depends on nothing of Burn's, so it embeds
//! anywhere; folding a trained Burn model into it is `mognet_core::fold`, and the `mognet-infer`
//! command line is the `mognet-cli` package.

pub mod affine;
pub mod bits;
pub mod engine;
pub mod fast;
pub mod format;
pub mod input;
pub mod kernels;
pub mod model;
pub mod onnx;
#[cfg(any(test, feature = "random"))]
pub mod random;
pub mod ternary;

pub use engine::{IntTrace, Prediction};
pub use format::{FileInfo, FormatError, LoadError};
pub use input::InputError;
pub use model::IntModel;
pub use ternary::Packing;
