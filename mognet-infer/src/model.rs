//! The integer model: what a `.mognet` file holds, with the CA weights regenerated.

use mognet_arch::{BlockNode, GateMode, MuxInputs, NetSpec, Node};
use mognet_arch::{FixedPw, Pw2Kind};

use crate::format::FormatError;

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

/// PW2: its generator (the CA, or the PRNG of an ablation) and the regenerated +-1 rows, or
/// (another ablation) stored ternary weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pw2Layer {
    /// The generator: CA rule, seed and warmup, or a PRNG seed; none for stored ternary
    /// weights.
    pub generator: Option<FixedPw>,
    /// Rows `n` (output channels).
    pub rows: usize,
    /// Width `m` (input channels).
    pub width: usize,
    /// `n x m` weights, row-major: in `{-1, +1}` when generated, `{-1, 0, +1}` when stored.
    pub weights: Vec<i8>,
}

impl Pw2Layer {
    /// Where the weights come from.
    pub fn kind(&self) -> Pw2Kind {
        self.generator.map_or(Pw2Kind::Ternary, |g| g.kind())
    }
}

/// CRC-32 of a PW2 weight matrix (as bytes `0`/`1`), stored in the file to prove that the
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
    pub pw2: Pw2Layer,
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

/// `Err` naming `what` when `weights` is not `[out, inputs / groups, k, k]` of codes in
/// `{-1, 0, 1}`.
fn check_ternary(
    what: &str,
    weights: &TernaryWeights,
    [out, inputs, k, groups]: [usize; 4],
) -> Result<(), FormatError> {
    let shape = [weights.out, weights.inputs, weights.k, weights.groups];
    if shape != [out, inputs, k, groups] {
        return Err(invalid(
            what,
            format!(
                "shape (out, in, k, groups) {shape:?}, the network needs {:?}",
                [out, inputs, k, groups]
            ),
        ));
    }
    let len = TernaryWeights::len_for(out, inputs, k, groups);
    if weights.codes.len() != len {
        return Err(invalid(
            what,
            format!("{} codes for {len} weights", weights.codes.len()),
        ));
    }
    if let Some(c) = weights.codes.iter().find(|c| !(-1..=1).contains(*c)) {
        return Err(invalid(what, format!("code {c} is not ternary")));
    }
    Ok(())
}

/// `Err` naming `what` when `len` is not `expected`.
fn check_len(what: &str, len: usize, expected: usize) -> Result<(), FormatError> {
    if len == expected {
        return Ok(());
    }
    Err(invalid(
        what,
        format!("{len} entries, the network needs {expected}"),
    ))
}

fn invalid(what: &str, detail: String) -> FormatError {
    FormatError::Invalid {
        what: what.into(),
        detail,
    }
}

/// Block `b`'s parts against its description.
fn check_block(b: &BlockNode, block: &BlockInt, pw2_kind: Pw2Kind) -> Result<(), FormatError> {
    let c = &block.cflog;
    let name = |part: &str| b.id.layer(part);
    check_ternary(&name("pw1"), &c.pw1, [b.m, b.c_in, 1, 1])?;
    check_ternary(&name("gconv"), &c.gconv, [b.m, b.m, b.kernel, b.groups])?;
    match (&c.inner, b.inner_norm) {
        (Some(inner), true) => check_len(&name("gconv thresholds"), inner.len(), b.m)?,
        (None, false) => {}
        (inner, _) => {
            let detail = format!(
                "thresholds present: {}, inner_norm: {}",
                inner.is_some(),
                b.inner_norm
            );
            return Err(invalid(&name("gconv"), detail));
        }
    }
    let pw2 = &c.pw2;
    if [pw2.rows, pw2.width] != [b.n, b.m] || pw2.weights.len() != b.n * b.m {
        let detail = format!(
            "{}x{} with {} weights, the network needs {}x{}",
            pw2.rows,
            pw2.width,
            pw2.weights.len(),
            b.n,
            b.m
        );
        return Err(invalid(&name("pw2"), detail));
    }
    if pw2.kind() != pw2_kind {
        let detail = format!(
            "{:?} weights in a network with {pw2_kind:?} PW2 layers",
            pw2.kind()
        );
        return Err(invalid(&name("pw2"), detail));
    }
    let allowed = if pw2.generator.is_some() {
        [-1, 1, 1]
    } else {
        [-1, 0, 1]
    };
    if let Some(w) = pw2.weights.iter().find(|w| !allowed.contains(*w)) {
        return Err(invalid(&name("pw2"), format!("weight {w} is not allowed")));
    }
    check_len(&name("pw2 thresholds"), c.out.len(), b.n)?;
    let gated = b.residual.is_some_and(|r| r.gate == GateMode::Tgap);
    check_len(
        &name("gate thresholds"),
        block.gate.len(),
        if gated { b.n } else { 0 },
    )
}

impl IntModel {
    /// A model from its parts, checked against `spec`: every weight tensor's shape and codes,
    /// every threshold table's length, the blocks in `spec.topology()` order (gate thresholds for
    /// `tgap` MRBs only), the head's affine. The engines rely on what this checks.
    pub fn new(
        spec: NetSpec,
        (stem, stem_out): (TernaryWeights, Vec<ChannelRequant>),
        blocks: Vec<BlockInt>,
        head: HeadInt,
    ) -> Result<IntModel, FormatError> {
        spec.validate()?;
        let nodes = spec.blocks();
        check_len("blocks", blocks.len(), nodes.len())?;
        for node in spec.topology() {
            match node {
                Node::Stem { input, out, kernel } => {
                    check_ternary("stem", &stem, [out, input[0], kernel, 1])?;
                    check_len("stem thresholds", stem_out.len(), out)?;
                }
                Node::Pool { .. } => {}
                Node::Block(b) => check_block(&b, &blocks[b.index], spec.pw2)?,
                Node::Head { input, classes } => {
                    check_ternary("head", &head.weights, [classes, input[0], 1, 1])?;
                    check_len("head multipliers", head.multipliers.len(), classes)?;
                    check_len("head offsets", head.offsets.len(), classes)?;
                }
            }
        }
        Ok(IntModel {
            spec,
            stem,
            stem_out,
            blocks,
            head,
        })
    }

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
