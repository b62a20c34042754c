//! The resolved shape of a MOGNET network: every layer with its shapes, weight counts and MACs.
//!
//! [`NetSpec`] is the Burn-free description both the trainer and the integer engine start from;
//! [`NetSpec::layers`] unrolls it into the list of [`LayerInfo`] rows the size summary prints.

use serde::{Deserialize, Serialize};

use crate::fixed_pw::Pw2Kind;
use crate::topology::{BlockNode, Node, pool_name};

/// How the MRB gate chooses between the residual and the main path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateMode {
    /// Per-channel threshold on the global average of the input (the default).
    Tgap,
    /// Always the residual (`s = 1`): a plain shifted residual.
    Always,
    /// Never the residual (`s = 0`): no residual at all.
    Never,
}

/// What the MRB multiplexer selects between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MuxInputs {
    /// `floor((x + f) / 2)` when the gate is on, else `f` (the default).
    Avg,
    /// `x` when the gate is on, else `f`.
    Skip,
}

/// One stage: a width-changing CFLOG followed by `blocks - 1` MRBs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageSpec {
    /// Output width `n` of every CFLOG in the stage.
    pub n: usize,
    /// Inner width `m` (PW1 output, grouped conv width).
    pub m: usize,
    /// Groups `g` of the grouped convolution.
    pub groups: usize,
    /// CFLOG blocks in the stage, the first one included (so `blocks - 1` MRBs).
    pub blocks: usize,
}

/// A Burn-free description of a MOGNET network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetSpec {
    /// Input channels (1 for grayscale, 3 for colour).
    pub in_channels: usize,
    /// Output classes.
    pub num_classes: usize,
    /// Input height and width.
    pub input_size: [usize; 2],
    /// Activation bits `k`.
    pub bits: u32,
    /// Stem output width.
    pub stem_width: usize,
    /// Kernel of the stem and of the grouped convolutions.
    pub kernel_size: usize,
    /// The stages, with 2x2 max pooling between consecutive ones.
    pub stages: Vec<StageSpec>,
    /// BN + QReLU after the grouped convolution inside each CFLOG.
    pub inner_norm: bool,
    /// MRB gate mode.
    pub gate: GateMode,
    /// MRB multiplexer inputs.
    pub mux: MuxInputs,
    /// Where PW2's weights come from (absent in specs written before the choice: CA).
    #[serde(default)]
    pub pw2: Pw2Kind,
}

/// Why a [`NetSpec`] describes no valid network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// A size that must be positive is 0.
    #[error("{what} must be positive")]
    Zero {
        /// Which size.
        what: String,
    },
    /// Groups do not divide a width.
    #[error("stage {stage}: groups {groups} must divide the inner width m = {m}")]
    Groups {
        /// Stage index.
        stage: usize,
        /// Groups.
        groups: usize,
        /// Inner width.
        m: usize,
    },
    /// Pooling would shrink the feature map to nothing.
    #[error("input {h}x{w} is too small for {stages} stages (2x2 pooling between stages)")]
    TooSmall {
        /// Input height.
        h: usize,
        /// Input width.
        w: usize,
        /// Stages.
        stages: usize,
    },
    /// Activation bits outside 1..=8.
    #[error("activation bits must be in 1..=8, got {0}")]
    Bits(u32),
    /// An even kernel has no centre, so `pad = k/2` would change the map size.
    #[error("kernel size must be odd, got {0}")]
    EvenKernel(usize),
}

/// What a row of the summary is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerKind {
    /// Stem ternary kxk conv on pixels.
    Stem,
    /// CFLOG's first 1x1 ternary conv.
    Pw1,
    /// CFLOG's grouped kxk ternary conv.
    GConv,
    /// CFLOG's CA-generated 1x1 conv.
    CaPw,
    /// CFLOG's PW2 with +-1 weights from a plain PRNG stream (an ablation of the CA).
    PrngPw,
    /// CFLOG's PW2 as a trained, stored ternary 1x1 conv (an ablation of the CA).
    TernaryPw,
    /// MRB shift-residual, gate and mux.
    Gate,
    /// 2x2 max pooling.
    Pool,
    /// Head 1x1 ternary conv, BN and global average pooling.
    Head,
}

impl LayerKind {
    /// Short name for tables.
    pub fn label(self) -> &'static str {
        match self {
            LayerKind::Stem => "stem",
            LayerKind::Pw1 => "pw1",
            LayerKind::GConv => "gconv",
            LayerKind::CaPw => "ca-pw",
            LayerKind::PrngPw => "prng-pw",
            LayerKind::TernaryPw => "pw2",
            LayerKind::Gate => "mrb-gate",
            LayerKind::Pool => "maxpool",
            LayerKind::Head => "head",
        }
    }
}

/// One layer of the unrolled network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInfo {
    /// Path-like name, e.g. `s1.b0.pw1`.
    pub name: String,
    /// Kind.
    pub kind: LayerKind,
    /// Input `[c, h, w]`.
    pub input: [usize; 3],
    /// Output `[c, h, w]`.
    pub output: [usize; 3],
    /// Kernel size (0 for layers without a kernel).
    pub kernel: usize,
    /// Groups (1 unless grouped).
    pub groups: usize,
    /// Ternary weights stored in the file.
    pub stored_weights: usize,
    /// Weights regenerated by the CA (stored: 0).
    pub generated_weights: usize,
    /// Output channels requantized by `Q` integer thresholds after this layer.
    pub threshold_channels: usize,
    /// Channels with an MRB gate threshold.
    pub gate_channels: usize,
    /// Classes with a fixed-point affine (head only).
    pub affine_classes: usize,
    /// Multiply-accumulates per image.
    pub macs: u64,
}

impl NetSpec {
    /// Largest activation code `Q = 2^k - 1`.
    pub fn levels(&self) -> u32 {
        (1u32 << self.bits) - 1
    }

    /// Checks every size; the layer list is only meaningful for a valid spec.
    pub fn validate(&self) -> Result<(), SpecError> {
        let zero = |what: &str| SpecError::Zero { what: what.into() };
        if self.in_channels == 0 {
            return Err(zero("in_channels"));
        }
        if self.num_classes == 0 {
            return Err(zero("num_classes"));
        }
        if self.stem_width == 0 {
            return Err(zero("stem width"));
        }
        if self.stages.is_empty() {
            return Err(zero("the number of stages"));
        }
        if !(1..=8).contains(&self.bits) {
            return Err(SpecError::Bits(self.bits));
        }
        if self.kernel_size.is_multiple_of(2) {
            return Err(SpecError::EvenKernel(self.kernel_size));
        }
        for (i, s) in self.stages.iter().enumerate() {
            for (v, what) in [
                (s.n, "n"),
                (s.m, "m"),
                (s.groups, "groups"),
                (s.blocks, "blocks"),
            ] {
                if v == 0 {
                    return Err(zero(&format!("stage {i} {what}")));
                }
            }
            if s.m % s.groups != 0 {
                return Err(SpecError::Groups {
                    stage: i,
                    groups: s.groups,
                    m: s.m,
                });
            }
        }
        let [h, w] = self.input_size;
        let shrink = 1usize << (self.stages.len() - 1);
        if h < shrink || w < shrink {
            return Err(SpecError::TooSmall {
                h,
                w,
                stages: self.stages.len(),
            });
        }
        Ok(())
    }

    /// The largest possible |accumulator| of every layer that accumulates, by the name of the
    /// layer whose output it is (`stem`, `sX.bY.pw1`, `.gconv`, `.pw2`, `head`): inputs at their
    /// largest (pixels 255, codes `Q`, or the previous accumulator's bound) times the fan-in.
    /// The integer engine accumulates in i32, so every bound must stay below 2^31.
    pub fn accumulator_bounds(&self) -> Vec<(String, u64)> {
        let q = self.levels() as u64;
        let mut out = Vec::new();
        for node in self.topology() {
            match node {
                Node::Stem { input, kernel, .. } => {
                    let fan_in = input[0] * kernel * kernel;
                    out.push(("stem".to_string(), 255 * fan_in as u64));
                }
                Node::Pool { .. } => {}
                Node::Block(b) => {
                    let pw1 = q * b.c_in as u64;
                    let gconv = pw1 * (b.m / b.groups * b.kernel * b.kernel) as u64;
                    let pw2_in = if b.inner_norm { q } else { gconv };
                    out.push((b.id.layer("pw1"), pw1));
                    out.push((b.id.layer("gconv"), gconv));
                    out.push((b.id.layer("pw2"), pw2_in * b.m as u64));
                }
                Node::Head { input, .. } => out.push(("head".to_string(), q * input[0] as u64)),
            }
        }
        out
    }

    /// The unrolled layer list, in execution order.
    pub fn layers(&self) -> Vec<LayerInfo> {
        let mut rows = Vec::new();
        for node in self.topology() {
            match node {
                Node::Stem { input, out, kernel } => {
                    let mut stem = conv_row("stem".into(), LayerKind::Stem, input, out, kernel, 1);
                    stem.threshold_channels = out;
                    rows.push(stem);
                }
                Node::Pool { stage, input } => {
                    let [c, h, w] = input;
                    rows.push(LayerInfo {
                        output: [c, h / 2, w / 2],
                        kernel: 2,
                        ..empty_row(pool_name(stage), LayerKind::Pool, input)
                    });
                }
                Node::Block(b) => rows.extend(block_rows(&b, self.pw2)),
                Node::Head { input, classes } => {
                    let mut head = conv_row("head".into(), LayerKind::Head, input, classes, 1, 1);
                    head.affine_classes = classes;
                    rows.push(head);
                }
            }
        }
        rows
    }
}

/// A row with nothing stored and no work: input and output `input`.
fn empty_row(name: String, kind: LayerKind, input: [usize; 3]) -> LayerInfo {
    LayerInfo {
        name,
        kind,
        input,
        output: input,
        kernel: 0,
        groups: 1,
        stored_weights: 0,
        generated_weights: 0,
        threshold_channels: 0,
        gate_channels: 0,
        affine_classes: 0,
        macs: 0,
    }
}

/// A convolution's row (`kernel` x `kernel`, same padding): stored weights, or generated ones for
/// the CA layer.
fn conv_row(
    name: String,
    kind: LayerKind,
    input: [usize; 3],
    c_out: usize,
    kernel: usize,
    groups: usize,
) -> LayerInfo {
    let [c_in, h, w] = input;
    let weights = c_out * (c_in / groups) * kernel * kernel;
    let generated = matches!(kind, LayerKind::CaPw | LayerKind::PrngPw);
    LayerInfo {
        output: [c_out, h, w],
        kernel,
        groups,
        stored_weights: if generated { 0 } else { weights },
        generated_weights: if generated { weights } else { 0 },
        macs: (weights * h * w) as u64,
        ..empty_row(name, kind, input)
    }
}

/// A block's rows: PW1, the grouped convolution, the CA layer, and the gate of an MRB.
fn block_rows(b: &BlockNode, pw2: Pw2Kind) -> Vec<LayerInfo> {
    let pw2_kind = match pw2 {
        Pw2Kind::Ca => LayerKind::CaPw,
        Pw2Kind::Prng => LayerKind::PrngPw,
        Pw2Kind::Ternary => LayerKind::TernaryPw,
    };
    let [h, w] = b.size;
    let inner = [b.m, h, w];
    let mut rows = vec![
        conv_row(b.id.layer("pw1"), LayerKind::Pw1, [b.c_in, h, w], b.m, 1, 1),
        conv_row(
            b.id.layer("gconv"),
            LayerKind::GConv,
            inner,
            b.m,
            b.kernel,
            b.groups,
        ),
        conv_row(b.id.layer("pw2"), pw2_kind, inner, b.n, 1, 1),
    ];
    if b.inner_norm {
        rows[1].threshold_channels = b.m;
    }
    rows[2].threshold_channels = b.n;
    if let Some(residual) = b.residual {
        let mut gate = empty_row(b.id.layer("gate"), LayerKind::Gate, [b.n, h, w]);
        if residual.gate == GateMode::Tgap {
            gate.gate_channels = b.n;
        }
        rows.push(gate);
    }
    rows
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn tiny() -> NetSpec {
        NetSpec {
            in_channels: 1,
            num_classes: 10,
            input_size: [8, 8],
            bits: 3,
            stem_width: 8,
            kernel_size: 3,
            stages: vec![
                StageSpec {
                    n: 8,
                    m: 8,
                    groups: 2,
                    blocks: 2,
                },
                StageSpec {
                    n: 16,
                    m: 16,
                    groups: 4,
                    blocks: 1,
                },
            ],
            inner_norm: false,
            gate: GateMode::Tgap,
            mux: MuxInputs::Avg,
            pw2: Pw2Kind::Ca,
        }
    }

    #[test]
    fn tiny_layer_list_by_hand() {
        let spec = tiny();
        spec.validate().unwrap();
        let rows = spec.layers();
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "stem",
                "s1.b0.pw1",
                "s1.b0.gconv",
                "s1.b0.pw2",
                "s1.b1.pw1",
                "s1.b1.gconv",
                "s1.b1.pw2",
                "s1.b1.gate",
                "s2.pool",
                "s2.b0.pw1",
                "s2.b0.gconv",
                "s2.b0.pw2",
                "head"
            ]
        );
        // stem 3x3x1->8 on 8x8: 72 weights, 72*64 MACs
        assert_eq!(rows[0].stored_weights, 72);
        assert_eq!(rows[0].macs, 72 * 64);
        // grouped 3x3, 8 -> 8, 2 groups: 8 * 4 * 9 = 288
        assert_eq!(rows[2].stored_weights, 288);
        // CA: 8x8 generated, none stored
        assert_eq!((rows[3].stored_weights, rows[3].generated_weights), (0, 64));
        assert_eq!(rows[7].gate_channels, 8);
        assert_eq!(rows[8].output, [8, 4, 4]);
        // s2.b0.pw1: 8 -> 16 on 4x4
        assert_eq!(rows[9].macs, 8 * 16 * 16);
        assert_eq!(rows[12].input, [16, 4, 4]);
        assert_eq!(rows[12].stored_weights, 160);
    }

    /// The proof that i32 accumulators cannot overflow for any preset: the worst case of every
    /// layer, inputs at their largest and every weight of the fan-in at +-1.
    #[test]
    fn no_preset_can_overflow_i32_accumulators() {
        for preset in crate::Preset::ALL {
            for (c, k) in [(1, 10), (3, 10), (3, 100)] {
                for inner_norm in [false, true] {
                    let spec = NetSpec {
                        in_channels: c,
                        num_classes: k,
                        input_size: [32, 32],
                        bits: 3,
                        stem_width: preset.stem_width(),
                        kernel_size: 3,
                        stages: preset.stages(),
                        inner_norm,
                        gate: GateMode::Tgap,
                        mux: MuxInputs::Avg,
                        pw2: Pw2Kind::Ca,
                    };
                    let bounds = spec.accumulator_bounds();
                    let (name, worst) = bounds.iter().max_by_key(|(_, b)| *b).unwrap();
                    assert!(*worst < 1 << 31, "{preset} {name}: {worst}");
                }
            }
        }
        // mognet-l's largest: stage 3 MRB, 7 * 384 * (16 * 9) * 384 = 148,635,648.
        let l = NetSpec {
            stages: crate::Preset::L.stages(),
            stem_width: 64,
            ..tiny()
        };
        let worst = l
            .accumulator_bounds()
            .into_iter()
            .map(|(_, b)| b)
            .max()
            .unwrap();
        assert_eq!(worst, 7 * 384 * 16 * 9 * 384);
    }

    #[test]
    fn invalid_specs_are_typed_errors() {
        let mut s = tiny();
        s.stages[1].groups = 3;
        assert!(matches!(
            s.validate(),
            Err(SpecError::Groups { stage: 1, .. })
        ));
        let mut s = tiny();
        s.input_size = [1, 1];
        assert!(matches!(s.validate(), Err(SpecError::TooSmall { .. })));
        let mut s = tiny();
        s.bits = 0;
        assert_eq!(s.validate(), Err(SpecError::Bits(0)));
        let mut s = tiny();
        s.num_classes = 0;
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("num_classes")
        );
    }
}
