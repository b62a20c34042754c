//! Folding a trained Burn `Mognet` into the integer engine's [`IntModel`]. It lives on the
//! training side so that `mognet-infer` depends on nothing of Burn's.
//!
//! Ternary codes are read from each layer's ternarizer; every BN + QReLU becomes per-channel
//! thresholds found on the float model's own f32 affine (see [`mognet_infer::affine`]); MRB gates become
//! integer thresholds on spatial sums; the CA is kept as (rule, seed, warmup) and checked against
//! the weights the model used; the head becomes a per-class fixed-point affine.

use crate::cflog::Cflog;
use crate::mrb::Mrb;
use crate::pw2::Pw2;
use crate::{Mognet, MognetConfig, TernaryConv2d};
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use mognet_arch::{BlockNode, GateMode, Node};

use mognet_infer::affine::{channel_thresholds, head_fixed_point};
use mognet_infer::kernels::requant::ChannelRequant;
use mognet_infer::model::{BlockInt, CflogInt, HeadInt, IntModel, Pw2Layer, TernaryWeights};

/// Largest integer every f32 holds exactly: accumulators beyond it may round in the float model.
pub const F32_EXACT: u64 = 1 << 24;

/// Why a model cannot be folded.
#[derive(Debug, thiserror::Error)]
pub enum FoldError {
    /// The model and its config disagree.
    #[error("{layer}: {detail}")]
    Mismatch {
        /// The layer.
        layer: String,
        /// What differs.
        detail: String,
    },
    /// A value is not finite (a diverged model).
    #[error("{layer}: non-finite {what}; the model diverged and cannot be exported")]
    NonFinite {
        /// The layer.
        layer: String,
        /// Which value.
        what: String,
    },
}

/// What the fold could not make exact, said rather than hidden.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FoldReport {
    /// Layers whose worst-case accumulator exceeds 2^24, with that bound: there the float model's
    /// f32 accumulation may round, and its codes may differ from the exact integer ones.
    pub f32_inexact: Vec<(String, u64)>,
}

pub(crate) fn host(t: Tensor<1>) -> Vec<f32> {
    t.into_data()
        .try_into_vec_as::<f32>()
        .expect("float tensors read back as f32")
}

fn ternary(layer: &TernaryConv2d) -> TernaryWeights {
    let [inputs, out] = layer.channels();
    let codes: Vec<i8> = layer
        .ternarized()
        .codes
        .into_data()
        .try_into_vec_as::<f32>()
        .expect("codes read back as f32")
        .into_iter()
        .map(|c| c as i8)
        .collect();
    TernaryWeights {
        out,
        inputs,
        k: layer.kernel_size(),
        groups: layer.groups,
        codes,
    }
}

fn requant(
    name: &str,
    affine: (Tensor<1>, Tensor<1>),
    q: u8,
    bound: u64,
) -> Result<Vec<ChannelRequant>, FoldError> {
    let (a, b) = (host(affine.0), host(affine.1));
    let bound = bound.min(i32::MAX as u64 - 1) as i64;
    a.iter()
        .zip(&b)
        .map(|(&a, &b)| {
            if !a.is_finite() || !b.is_finite() {
                return Err(FoldError::NonFinite {
                    layer: name.into(),
                    what: "batch-norm affine".into(),
                });
            }
            Ok(channel_thresholds(a, b, q, -bound, bound))
        })
        .collect()
}

fn pw2_layer(name: &str, cflog: &Cflog) -> Result<Pw2Layer, FoldError> {
    let pw2 = match &cflog.pw2 {
        Pw2::Ternary(conv) => {
            let w = ternary(conv);
            return Ok(Pw2Layer {
                generator: None,
                rows: w.out,
                width: w.inputs,
                weights: w.codes,
            });
        }
        Pw2::Fixed(ca) => ca,
    };
    let [width, rows] = pw2.channels();
    let generator = pw2.generator().map_err(|e| FoldError::Mismatch {
        layer: name.into(),
        detail: e.to_string(),
    })?;
    let used: Vec<i8> = pw2
        .weight
        .clone()
        .into_data()
        .try_into_vec_as::<f32>()
        .expect("CA weights read back as f32")
        .into_iter()
        .map(|w| w as i8)
        .collect();
    let regenerated = generator
        .weights(rows, width)
        .map_err(|e| FoldError::Mismatch {
            layer: name.into(),
            detail: e.to_string(),
        })?;
    if regenerated != used {
        return Err(FoldError::Mismatch {
            layer: name.into(),
            detail: "the generator does not regenerate the weights the model used".into(),
        });
    }
    Ok(Pw2Layer {
        generator: Some(generator),
        rows,
        width,
        weights: regenerated,
    })
}

/// A CFLOG block's integer form.
fn fold_cflog(
    b: &BlockNode,
    c: &Cflog,
    q: u8,
    bound: &impl Fn(&str) -> u64,
    device: &Device,
) -> Result<CflogInt, FoldError> {
    let (inner, out) = c.requant_affines(device);
    let inner = match inner {
        Some(affine) => {
            let name = b.id.layer("gconv");
            Some(requant(&name, affine, q, bound(&name))?)
        }
        None => None,
    };
    let pw2 = b.id.layer("pw2");
    Ok(CflogInt {
        pw1: ternary(&c.pw1),
        gconv: ternary(&c.gconv),
        inner,
        pw2: pw2_layer(&pw2, c)?,
        out: requant(&pw2, out, q, bound(&pw2))?,
    })
}

/// An MRB's gate thresholds on the spatial sums of its input codes.
fn fold_gate(b: &BlockNode, mrb: &Mrb, q: u8) -> Result<Vec<i32>, FoldError> {
    let plane = b.size[0] * b.size[1];
    let largest = (q as i64) * plane as i64 + 1;
    host(mrb.gate_thresholds(plane))
        .into_iter()
        .map(|g| {
            if g.is_nan() {
                return Err(FoldError::NonFinite {
                    layer: b.id.layer("gate"),
                    what: "gate threshold".into(),
                });
            }
            // A threshold at or below 0 is always on, above the largest sum never.
            Ok((g as f64).clamp(0.0, largest as f64) as i32)
        })
        .collect()
}

/// The head's fixed-point affine over a `plane`-pixel map.
fn fold_head(model: &Mognet, plane: usize) -> Result<HeadInt, FoldError> {
    let alpha = model.head.conv.ternarized().alpha;
    let (a, b) = model.head.folded(alpha, plane);
    let (a, b) = (host(a), host(b));
    if a.iter().chain(&b).any(|v| !v.is_finite()) {
        return Err(FoldError::NonFinite {
            layer: "head".into(),
            what: "affine".into(),
        });
    }
    let (shift, multipliers, offsets) = head_fixed_point(&a, &b);
    Ok(HeadInt {
        weights: ternary(&model.head.conv),
        shift,
        multipliers,
        offsets,
    })
}

/// Folds `model` (any device; it is put in eval mode) built from `config`.
pub fn fold(model: &Mognet, config: &MognetConfig) -> Result<(IntModel, FoldReport), FoldError> {
    let model = model.valid();
    let spec = config.spec();
    let q = spec.levels() as u8;
    let device: Device = model
        .devices()
        .into_iter()
        .next()
        .expect("a model lives on a device");
    let bound_list = spec.accumulator_bounds();
    let report = FoldReport {
        f32_inexact: bound_list
            .iter()
            .filter(|(_, b)| *b > F32_EXACT)
            .cloned()
            .collect(),
    };
    let bounds: std::collections::HashMap<String, u64> = bound_list.into_iter().collect();
    let bound = |name: &str| bounds[name];

    let (mut stem, mut head, mut blocks) = (None, None, Vec::new());
    for node in spec.topology() {
        match node {
            Node::Stem { .. } => {
                let out = requant("stem", model.stem.requant_affine(), q, bound("stem"))?;
                stem = Some((ternary(&model.stem.conv), out));
            }
            Node::Pool { .. } => {}
            Node::Block(b) => {
                let (cflog, mrb) = model.block(b.id);
                // Only the `tgap` gate has thresholds; the others are fixed.
                let gate = match mrb {
                    Some(mrb) if spec.gate == GateMode::Tgap => fold_gate(&b, mrb, q)?,
                    _ => Vec::new(),
                };
                let cflog = fold_cflog(&b, cflog, q, &bound, &device)?;
                blocks.push(BlockInt { cflog, gate });
            }
            Node::Head { input, .. } => head = Some(fold_head(&model, input[1] * input[2])?),
        }
    }
    let ((stem, stem_out), head) = stem.zip(head).expect("a topology has a stem and a head");
    let model =
        IntModel::new(spec, (stem, stem_out), blocks, head).map_err(|e| FoldError::Mismatch {
            layer: "model".into(),
            detail: e.to_string(),
        })?;
    Ok((model, report))
}
