//! The integer model: what a `.mognet` file holds, with the CA weights regenerated.

use mognet_arch::ca::CaGenerator;
use mognet_arch::{GateMode, MuxInputs, NetSpec};

use crate::kernels::mrb::Mux;
use crate::kernels::requant::ChannelRequant;

/// Ternary weights `[out, in / groups, k, k]` in `{-1, 0, 1}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TernaryWeights {
    /// Output channels.
    pub out: usize,
    /// Input channels (all groups).
    pub inputs: usize,
    /// Kernel side.
    pub k: usize,
    /// Groups.
    pub groups: usize,
    /// The codes, row-major `[out][in/groups][k][k]`.
    pub codes: Vec<i8>,
}

impl TernaryWeights {
    /// Number of weights for a shape.
    pub fn len_for(out: usize, inputs: usize, k: usize, groups: usize) -> usize {
        out * (inputs / groups) * k * k
    }
}

/// A CA pointwise layer: its generator and the regenerated +-1 rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaLayer {
    /// Rule, seed and warmup.
    pub generator: CaGenerator,
    /// Rows `n` (output channels).
    pub rows: usize,
    /// Width `m` (input channels).
    pub width: usize,
    /// `n x m` weights in `{-1, +1}`, row-major.
    pub weights: Vec<i8>,
}

/// CRC-32 of a CA weight matrix (as bytes `0`/`1`), stored in the file to prove that the
/// regenerated weights are the trainer's.
pub fn ca_crc(weights: &[i8]) -> u32 {
    let bytes: Vec<u8> = weights.iter().map(|&w| (w > 0) as u8).collect();
    crc32fast::hash(&bytes)
}

/// A CFLOG block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CflogInt {
    /// PW1, `c_in -> m`.
    pub pw1: TernaryWeights,
    /// Grouped kxk, `m -> m`.
    pub gconv: TernaryWeights,
    /// Requantization after the grouped conv (`inner_norm`).
    pub inner: Option<Vec<ChannelRequant>>,
    /// PW2 from the CA, `m -> n`.
    pub pw2: CaLayer,
    /// Requantization of PW2's accumulators.
    pub out: Vec<ChannelRequant>,
}

/// One block of the network: its CFLOG and, for an MRB with the `Tgap` gate, the gate's
/// thresholds (empty otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockInt {
    /// The CFLOG (an MRB's main path).
    pub cflog: CflogInt,
    /// Gate thresholds on the spatial sum of each input channel (`Tgap` MRBs only).
    pub gate: Vec<i32>,
}

/// The head: 1x1 ternary conv, then `logit = S * M + C` on spatial sums (real logit
/// `logit / 2^shift`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadInt {
    /// `[classes, c, 1, 1]`.
    pub weights: TernaryWeights,
    /// Fixed-point shift.
    pub shift: u8,
    /// Per-class multipliers.
    pub multipliers: Vec<i32>,
    /// Per-class offsets (already scaled by `2^shift`).
    pub offsets: Vec<i32>,
}

/// The whole integer network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntModel {
    /// Shapes and options.
    pub spec: NetSpec,
    /// Stem weights.
    pub stem: TernaryWeights,
    /// Stem requantization.
    pub stem_out: Vec<ChannelRequant>,
    /// Every block, in the order of `spec.topology()` (a block's `index`).
    pub blocks: Vec<BlockInt>,
    /// Head.
    pub head: HeadInt,
}

impl IntModel {
    /// The multiplexer mode.
    pub fn mux(&self) -> Mux {
        match self.spec.mux {
            MuxInputs::Avg => Mux::Avg,
            MuxInputs::Skip => Mux::Skip,
        }
    }

    /// Gate bit of an MRB with no thresholds (`Always`/`Never`).
    pub fn fixed_gate(&self) -> Option<bool> {
        match self.spec.gate {
            GateMode::Tgap => None,
            GateMode::Always => Some(true),
            GateMode::Never => Some(false),
        }
    }

    /// The CFLOGs in order with their blocks' names (`s1.b0`, ...).
    pub fn cflogs(&self) -> Vec<(String, &CflogInt)> {
        self.spec
            .blocks()
            .iter()
            .map(|b| (b.id.to_string(), &self.blocks[b.index].cflog))
            .collect()
    }
}
