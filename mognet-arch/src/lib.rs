//! Burn-free definitions of MOGNET shared by the trainer (`mognet-core`, `mognet-train`) and the
//! integer engine (`mognet-infer`): the CA weight generator, the resolved layer list of a network,
//! and the bit-level size summary. Keeping them here means the engine embeds without Burn and
//! both sides compute the same CA rows and the same bit counts.

pub mod arch;
pub mod ca;
pub mod fixed_pw;
pub mod preset;
pub mod rng;
pub mod summary;
pub mod topology;

pub use arch::{GateMode, LayerInfo, LayerKind, MuxInputs, NetSpec, SpecError, StageSpec};
pub use fixed_pw::{FixedPw, PrngRows, Pw2Kind};
pub use preset::{Preset, UnknownPreset};
pub use summary::{StorageWidths, Summary, SummaryRow, ThresholdWidths};
pub use topology::{BlockId, BlockNode, Node, Residual, pool_name};
