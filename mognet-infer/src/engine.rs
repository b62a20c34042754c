//! The integer network on one image, with the scalar reference kernels.

use crate::kernels::ca::ca_pointwise;
use crate::kernels::conv::ternary_conv;
use crate::kernels::head::{argmax, logits, spatial_sums};
use crate::kernels::mrb::{gate_bits, mux};
use crate::kernels::pool::max_pool2x2;
use crate::kernels::requant::requantize;
use mognet_arch::{BlockNode, Node, pool_name};

use crate::input::{InputError, check_image};
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
    /// Smallest and largest accumulator of each convolution (`stem`, `sX.bY.pw1`, `.gconv`,
    /// `.pw2`, `head`), in the order they ran.
    pub accumulators: Vec<(String, [i32; 2])>,
}

impl IntTrace {
    /// Keeps what `event` reports.
    fn record(&mut self, event: Event) {
        match event {
            Event::Codes(name, codes, gate) => {
                self.codes.push((name.clone(), codes.to_vec()));
                if let Some(gate) = gate {
                    self.gates.push((name, gate));
                }
            }
            Event::Accumulators(name, acc) => {
                let lo = acc.iter().copied().min().unwrap_or(0);
                let hi = acc.iter().copied().max().unwrap_or(0);
                self.accumulators.push((name, [lo, hi]));
            }
        }
    }
}

/// What the network reports as it runs, for a trace.
enum Event<'a> {
    /// A layer's codes, and an MRB's gate bits.
    Codes(String, &'a [u8], Option<Vec<bool>>),
    /// A convolution's accumulators.
    Accumulators(String, &'a [i32]),
}

/// A CFLOG block on `x` (`h x w`), its codes recorded under `name.gconv` and `name.pw2`.
fn cflog(
    block: &CflogInt,
    x: &[u8],
    h: usize,
    w: usize,
    name: &str,
    record: &mut impl FnMut(Event),
) -> Vec<u8> {
    let hw = h * w;
    let (pw1, gconv, pw2) = (&block.pw1, &block.gconv, &block.pw2);
    let acc1 = ternary_conv(x, pw1.inputs, h, w, &pw1.codes, pw1.out, 1, 1);
    let acc2 = ternary_conv(
        &acc1,
        gconv.inputs,
        h,
        w,
        &gconv.codes,
        gconv.out,
        gconv.k,
        gconv.groups,
    );
    record(Event::Accumulators(format!("{name}.pw1"), &acc1));
    record(Event::Accumulators(format!("{name}.gconv"), &acc2));
    let acc3 = match &block.inner {
        Some(inner) => {
            let codes = requantize(&acc2, hw, inner);
            record(Event::Codes(format!("{name}.gconv"), &codes, None));
            let as_i32: Vec<i32> = codes.iter().map(|&c| c as i32).collect();
            ca_pointwise(&as_i32, pw2.width, hw, &pw2.weights, pw2.rows)
        }
        None => ca_pointwise(&acc2, pw2.width, hw, &pw2.weights, pw2.rows),
    };
    record(Event::Accumulators(format!("{name}.pw2"), &acc3));
    let out = requantize(&acc3, hw, &block.out);
    record(Event::Codes(format!("{name}.pw2"), &out, None));
    out
}

impl IntModel {
    /// Classifies one image of u8 pixels `[c][y][x]`; an image of the wrong size is an error.
    pub fn predict(&self, pixels: &[u8]) -> Result<Prediction, InputError> {
        check_image(self.input_shape(), pixels)?;
        Ok(self.run(pixels, None))
    }

    /// Classifies one image and records every layer's codes.
    pub fn predict_trace(&self, pixels: &[u8]) -> Result<(Prediction, IntTrace), InputError> {
        check_image(self.input_shape(), pixels)?;
        let mut trace = IntTrace::default();
        let p = self.run(pixels, Some(&mut trace));
        Ok((p, trace))
    }

    /// The input image's `[channels, height, width]`.
    pub fn input_shape(&self) -> [usize; 3] {
        let [h, w] = self.spec.input_size;
        [self.spec.in_channels, h, w]
    }

    /// Bytes per input image (`in_channels x h x w`).
    pub fn image_len(&self) -> usize {
        self.input_shape().iter().product()
    }

    /// An MRB's output: its gate's choice per channel between the block's input `x` and its
    /// CFLOG's output `f`, both `b.size`; recorded under `sX.bY.gate` with the gate bits.
    fn mrb_output(
        &self,
        b: &BlockNode,
        x: &[u8],
        f: &[u8],
        record: &mut impl FnMut(Event),
    ) -> Vec<u8> {
        let hw = b.size[0] * b.size[1];
        let gate = match self.fixed_gate() {
            Some(on) => vec![on; b.n],
            None => gate_bits(x, hw, &self.blocks[b.index].gate),
        };
        let y = mux(x, f, hw, &gate, self.mux());
        record(Event::Codes(b.id.layer("gate"), &y, Some(gate)));
        y
    }

    fn run(&self, pixels: &[u8], mut trace: Option<&mut IntTrace>) -> Prediction {
        let spec = &self.spec;
        let mut x = pixels.to_vec();
        // The head's spatial sums: what the topology's last step leaves.
        let mut sums = Vec::new();
        let mut record = |event: Event| {
            if let Some(t) = trace.as_deref_mut() {
                t.record(event);
            }
        };
        for node in spec.topology() {
            match node {
                Node::Stem { input, out, kernel } => {
                    let [c, h, w] = input;
                    let acc = ternary_conv(&x, c, h, w, &self.stem.codes, out, kernel, 1);
                    record(Event::Accumulators("stem".into(), &acc));
                    x = requantize(&acc, h * w, &self.stem_out);
                    record(Event::Codes("stem".into(), &x, None));
                }
                Node::Pool { stage, input } => {
                    let [c, h, w] = input;
                    x = max_pool2x2(&x, c, h, w);
                    record(Event::Codes(pool_name(stage), &x, None));
                }
                Node::Block(b) => {
                    let block = &self.blocks[b.index];
                    let [h, w] = b.size;
                    let f = cflog(&block.cflog, &x, h, w, &b.id.to_string(), &mut record);
                    x = match b.residual {
                        None => f,
                        Some(_) => self.mrb_output(&b, &x, &f, &mut record),
                    };
                }
                Node::Head { input, classes } => {
                    let [c, h, w] = input;
                    let acc = ternary_conv(&x, c, h, w, &self.head.weights.codes, classes, 1, 1);
                    record(Event::Accumulators("head".into(), &acc));
                    sums = spatial_sums(&acc, h * w);
                }
            }
        }
        let logits = logits(&sums, &self.head.multipliers, &self.head.offsets);
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
