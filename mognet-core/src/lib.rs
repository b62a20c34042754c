//! MOGNET building blocks on Burn: BTQ ternary weights, k-bit QReLU, the CA weight generator,
//! the layers built from them, and the fold of a trained model into the integer engine's format
//! (with the float-against-integer parity check). See `docs/SPEC.md` (the numeric specification) and the
//! workspace README.

pub mod average;
pub mod btq;
pub mod ca_pointwise;
pub mod fixed_sum;
pub mod init;
// ndarray is deprecated upstream but still one of the trainer's backends, so the custom
// operations name it.
#[allow(deprecated)]
pub mod ops;
pub mod qrelu;
pub mod ternary_conv;

pub use btq::{BtqConfig, Occupancy, ThresholdMode};
pub use ca_pointwise::{CaPointwise, CaPointwiseConfig};
pub use mognet_arch::ca::{self, CaError, CaGenerator, SplitMix64};
pub use qrelu::{QRelu, QReluConfig};
pub use ternary_conv::{TernaryConv2d, TernaryConv2dConfig};
pub mod bn_qrelu;
pub mod cflog;
pub mod fold;
pub mod head;
pub mod model;
pub mod mrb;
pub mod onnx;
pub mod parity;
pub mod persist;
pub mod pw2;
pub mod stem;

pub use model::{ModelError, Mognet, MognetConfig, Trace};
pub use mognet_arch::preset::{self, Preset};
pub use mognet_arch::{GateMode, MuxInputs, NetSpec, Pw2Kind, StageSpec, StorageWidths, Summary};
