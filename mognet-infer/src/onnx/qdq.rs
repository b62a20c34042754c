//! The `qdq` ONNX graph: the `exact` graph with each convolution in the int8 form ONNX
//! Runtime fuses into its integer kernels: `QuantizeLinear` and `DequantizeLinear` of the input
//! (codes and pixels as uint8 with scale 1, exact), int8 weights (the ternary codes, scale 1),
//! `Conv`, and the output quantized to int8 and back.
//!
//! Only that last step loses anything: an accumulator becomes `s * round(acc / s)`, clipped to
//! `+-127 s`. Each layer's scale `s` comes from calibration (the largest accumulator the integer
//! engine sees on the calibration images) capped by the layer's thresholds (beyond the outermost
//! threshold every accumulator gives the same code, so clipping there changes nothing), and is
//! never below 1: a layer whose range fits in +-127 is exact. The head's convolution keeps a
//! float output, so the logits are the engine's function of the codes it gets.

use std::collections::HashMap;

use super::exact::{Graph, OnnxExport, conv_dims, export_with};
use super::proto::{self, ElemType};
use crate::input::{InputError, check_batch};
use crate::kernels::requant::ChannelRequant;
use crate::model::{IntModel, TernaryWeights};

/// The largest magnitude of an int8 value with a zero point of 0.
const INT8_MAX: f32 = 127.0;

/// What the `qdq` graph's convolutions need while it is built.
#[derive(Debug, Clone, Default)]
pub(super) struct QdqState {
    /// The int8 scale of each convolution's output, by layer name (none for the head).
    out_scales: HashMap<String, f32>,
    /// The scale of each value holding dequantized accumulators, by value name; any other
    /// convolution input holds codes or pixels (uint8, scale 1).
    values: HashMap<String, f32>,
}

/// The `qdq` graph of `model`, its scales calibrated on `images` (whole images of the model's
/// input size, one after another; at least one).
pub fn export_qdq(model: &IntModel, images: &[u8]) -> Result<OnnxExport, InputError> {
    let scales = calibrate(model, images)?;
    let state = QdqState {
        out_scales: scales.iter().cloned().collect(),
        values: HashMap::new(),
    };
    let mut export = export_with(model, None, Some(state));
    export.scales = scales;
    Ok(export)
}

/// Each requantized convolution's int8 output scale (the head's is not quantized), in the
/// order the network runs them.
pub fn calibrate(model: &IntModel, images: &[u8]) -> Result<Vec<(String, f32)>, InputError> {
    let len = model.image_len();
    check_batch(images, len)?;
    if images.is_empty() {
        return Err(InputError::Batch { got: 0, image: len });
    }
    let mut ranges: Vec<(String, i64)> = Vec::new();
    for image in images.chunks_exact(len) {
        let (_, trace) = model.predict_trace(image)?;
        for (name, [lo, hi]) in trace.accumulators {
            let magnitude = (lo as i64).abs().max((hi as i64).abs());
            match ranges.iter_mut().find(|(n, _)| *n == name) {
                Some((_, m)) => *m = (*m).max(magnitude),
                None => ranges.push((name, magnitude)),
            }
        }
    }
    let caps = threshold_caps(model);
    Ok(ranges
        .into_iter()
        .filter(|(name, _)| name != "head")
        .map(|(name, seen)| {
            let range = caps.get(&name).map_or(seen, |&cap| seen.min(cap));
            let scale = (range as f32 / INT8_MAX).max(1.0);
            (name, scale)
        })
        .collect())
}

/// Per requantized convolution, one more than its largest threshold magnitude: clipping the
/// accumulators there gives the same codes.
fn threshold_caps(model: &IntModel) -> HashMap<String, i64> {
    let cap = |channels: &[ChannelRequant]| {
        let largest = channels
            .iter()
            .flat_map(|rq| match rq {
                ChannelRequant::Up(t) | ChannelRequant::Down(t) => t.as_slice(),
                ChannelRequant::Constant(_) => &[],
            })
            .map(|&t| (t as i64).abs())
            .max()
            .unwrap_or(0);
        largest + 1
    };
    let mut caps = HashMap::from([("stem".to_string(), cap(&model.stem_out))]);
    for b in model.spec.blocks() {
        let cflog = &model.blocks[b.index].cflog;
        let name = b.id.to_string();
        if let Some(inner) = &cflog.inner {
            caps.insert(format!("{name}.gconv"), cap(inner));
        }
        caps.insert(format!("{name}.pw2"), cap(&cflog.out));
    }
    caps
}

impl Graph<'_> {
    /// The convolution `name` of `x` in QDQ form; returns the dequantized accumulators (or
    /// the float accumulators, for a layer without an output scale).
    pub(super) fn qdq_conv(&mut self, name: &str, x: &str, w: &TernaryWeights) -> String {
        let state = self.qdq.as_ref().expect("a qdq graph");
        let input_scale = state.values.get(x).copied();
        let out_scale = state.out_scales.get(name).copied();
        let x = match input_scale {
            Some(s) => self.quantized(&format!("{name}.x"), x, s, ElemType::Int8),
            None => self.quantized(&format!("{name}.x"), x, 1.0, ElemType::Uint8),
        };
        let codes: Vec<u8> = w.codes.iter().map(|&c| c as u8).collect();
        let weight_name = format!("{name}.weight_i8");
        self.constants.push(proto::tensor(
            &weight_name,
            ElemType::Int8,
            &conv_dims(w),
            &codes,
        ));
        let (one, zero) = self.scale_and_zero(&format!("{name}.w"), 1.0, ElemType::Int8);
        let weights = self.op(
            &format!("{name}.weight"),
            "DequantizeLinear",
            &[&weight_name, &one, &zero],
            &[],
        );
        let Some(s) = out_scale else {
            return self.conv_node(name, &x, &weights, w);
        };
        let acc = self.conv_node(&format!("{name}.acc"), &x, &weights, w);
        let out = self.quantized(name, &acc, s, ElemType::Int8);
        self.qdq
            .as_mut()
            .expect("a qdq graph")
            .values
            .insert(out.clone(), s);
        out
    }

    /// `DequantizeLinear(QuantizeLinear(x))` with `scale` and a zero point of 0 of type `elem`,
    /// named `name`.
    fn quantized(&mut self, name: &str, x: &str, scale: f32, elem: ElemType) -> String {
        let (s, zero) = self.scale_and_zero(name, scale, elem);
        let q = self.op(&format!("{name}.q"), "QuantizeLinear", &[x, &s, &zero], &[]);
        self.op(name, "DequantizeLinear", &[&q, &s, &zero], &[])
    }

    /// Scalar constants: `scale`, and a zero point of type `elem`.
    fn scale_and_zero(&mut self, name: &str, scale: f32, elem: ElemType) -> (String, String) {
        let s = self.float(&format!("{name}.scale"), &[], &[scale]);
        let zero = format!("{name}.zero");
        self.constants.push(proto::tensor(&zero, elem, &[], &[0]));
        (s, zero)
    }
}
