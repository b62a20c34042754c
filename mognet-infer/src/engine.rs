//! The integer network on one image, with the scalar reference kernels.

use crate::kernels::ca::ca_pointwise;
use crate::kernels::conv::ternary_conv;
use crate::kernels::head::{argmax, logits, spatial_sums};
use crate::kernels::mrb::{gate_bits, mux};
use crate::kernels::pool::max_pool2x2;
use crate::kernels::requant::requantize;
use crate::model::{CflogInt, IntModel};

/// What one image gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prediction {
    /// Fixed-point logits (`real = logit / 2^shift`).
    pub logits: Vec<i64>,
    /// The arg-max class.
    pub class: usize,
}

/// Every intermediate result, named as `NetSpec::layers` and the float model's trace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntTrace {
    /// Codes after each requantization, mux and pooling.
    pub codes: Vec<(String, Vec<u8>)>,
    /// Gate bits per MRB.
    pub gates: Vec<(String, Vec<bool>)>,
    /// Spatial sums of the head's accumulators.
    pub head_sums: Vec<i64>,
}

fn cflog(
    block: &CflogInt,
    x: &[u8],
    h: usize,
    w: usize,
    name: &str,
    trace: &mut Option<&mut IntTrace>,
) -> Vec<u8> {
    let hw = h * w;
    let acc1 = ternary_conv(
        x,
        block.pw1.inputs,
        h,
        w,
        &block.pw1.codes,
        block.pw1.out,
        1,
        1,
    );
    let acc2 = ternary_conv(
        &acc1,
        block.gconv.inputs,
        h,
        w,
        &block.gconv.codes,
        block.gconv.out,
        block.gconv.k,
        block.gconv.groups,
    );
    let acc3 = match &block.inner {
        Some(inner) => {
            let codes = requantize(&acc2, hw, inner);
            if let Some(t) = trace {
                t.codes.push((format!("{name}.gconv"), codes.clone()));
            }
            let as_i32: Vec<i32> = codes.iter().map(|&c| c as i32).collect();
            ca_pointwise(
                &as_i32,
                block.pw2.width,
                hw,
                &block.pw2.weights,
                block.pw2.rows,
            )
        }
        None => ca_pointwise(
            &acc2,
            block.pw2.width,
            hw,
            &block.pw2.weights,
            block.pw2.rows,
        ),
    };
    let out = requantize(&acc3, hw, &block.out);
    if let Some(t) = trace {
        t.codes.push((format!("{name}.pw2"), out.clone()));
    }
    out
}

impl IntModel {
    /// Classifies one image of u8 pixels `[c][y][x]`.
    ///
    /// # Panics
    /// If `pixels` does not hold `in_channels x h x w` bytes (callers check shapes first).
    pub fn predict(&self, pixels: &[u8]) -> Prediction {
        self.run(pixels, None)
    }

    /// Classifies one image and records every layer's codes.
    pub fn predict_trace(&self, pixels: &[u8]) -> (Prediction, IntTrace) {
        let mut trace = IntTrace::default();
        let p = self.run(pixels, Some(&mut trace));
        (p, trace)
    }

    fn run(&self, pixels: &[u8], mut trace: Option<&mut IntTrace>) -> Prediction {
        let spec = &self.spec;
        let [mut h, mut w] = spec.input_size;
        assert_eq!(
            pixels.len(),
            spec.in_channels * h * w,
            "image of the wrong size"
        );
        let acc = ternary_conv(
            pixels,
            spec.in_channels,
            h,
            w,
            &self.stem.codes,
            self.stem.out,
            self.stem.k,
            1,
        );
        let mut x = requantize(&acc, h * w, &self.stem_out);
        if let Some(t) = trace.as_deref_mut() {
            t.codes.push(("stem".into(), x.clone()));
        }
        let fixed_gate = self.fixed_gate();
        for (si, stage) in self.stages.iter().enumerate() {
            let s = si + 1;
            if si > 0 {
                x = max_pool2x2(&x, stage.first.pw1.inputs, h, w);
                h /= 2;
                w /= 2;
                if let Some(t) = trace.as_deref_mut() {
                    t.codes.push((format!("s{s}.pool"), x.clone()));
                }
            }
            x = cflog(&stage.first, &x, h, w, &format!("s{s}.b0"), &mut trace);
            for (bi, block) in stage.blocks.iter().enumerate() {
                let name = format!("s{s}.b{}", bi + 1);
                let f = cflog(&block.cflog, &x, h, w, &name, &mut trace);
                let gate = match fixed_gate {
                    Some(on) => vec![on; block.cflog.pw2.rows],
                    None => gate_bits(&x, h * w, &block.gate),
                };
                x = mux(&x, &f, h * w, &gate, self.mux());
                if let Some(t) = trace.as_deref_mut() {
                    t.codes.push((format!("{name}.gate"), x.clone()));
                    t.gates.push((format!("{name}.gate"), gate));
                }
            }
        }
        let head = &self.head;
        let acc = ternary_conv(
            &x,
            head.weights.inputs,
            h,
            w,
            &head.weights.codes,
            head.weights.out,
            1,
            1,
        );
        let sums = spatial_sums(&acc, h * w);
        let logits = logits(&sums, &head.multipliers, &head.offsets);
        if let Some(t) = trace {
            t.head_sums = sums;
        }
        Prediction {
            class: argmax(&logits),
            logits,
        }
    }

    /// Real-valued logits of a prediction.
    pub fn real_logits(&self, p: &Prediction) -> Vec<f64> {
        let scale = (self.head.shift as f64).exp2();
        p.logits.iter().map(|&l| l as f64 / scale).collect()
    }
}
