//! The `exact` ONNX graph: standard operators (opset 13) that compute what the integer engine
//! computes, on float tensors holding integers.
//!
//! - Input `image`: `[N, C, H, W]` pixels 0..=255 as floats. Outputs: `logits` (int64 `[N,
//!   classes]`, the engine's fixed-point logits) and `class` (int64 `[N]`).
//! - Convolutions are float `Conv`s with the ternary (or +-1) weights as integer values: every
//!   accumulator is an integer, exact in f32 while its worst case stays below 2^24
//!   ([`OnnxExport::inexact`] lists the layers where it does not).
//! - A requantization counts the thresholds an accumulator passes: `Mul` by the channel's
//!   direction (+1 up, -1 down, 0 constant), `GreaterOrEqual` against the signed thresholds
//!   (`[Q, 1, C, 1, 1]`, clamped to +-2^24 where the accumulator cannot reach anyway), `Cast`,
//!   `ReduceSum` over the Q thresholds. A constant channel's thresholds are 0 for its first `v`
//!   places and 1 after, so that it counts `v`.
//! - An MRB gate compares the input's spatial sum (`ReduceSum`) with its thresholds and
//!   `Where` selects the residual (`Floor((x + f) / 2)`, or `x`) or the block's output.
//! - The head sums its 1x1 convolution over space, casts to int64 and applies the engine's
//!   `S * M + C`; `ArgMax` (on the logits cast to f64, exact below 2^53) picks the first
//!   largest logit, as the engine does.

use mognet_arch::{GateMode, MuxInputs, NetSpec, Node, pool_name};

use super::proto::{self, Attr, Dim, ElemType, Message};
use crate::kernels::requant::ChannelRequant;
use crate::model::{CflogInt, HeadInt, IntModel, TernaryWeights};

/// Largest integer below which every f32 integer is exact.
const F32_EXACT: i64 = 1 << 24;

/// The opset the graph uses.
pub const OPSET: i64 = 13;

/// An exported graph and what the export found.
#[derive(Debug, Clone)]
pub struct OnnxExport {
    /// The ONNX model.
    pub bytes: Vec<u8>,
    /// Layers whose worst-case accumulator reaches 2^24, where f32 may round (a runtime with
    /// f64 or integer convolutions would be exact there), with the bound.
    pub inexact: Vec<(String, u64)>,
    /// For the `qdq` graph: each convolution's int8 output scale (1 where the layer is
    /// exact); empty for the others.
    pub scales: Vec<(String, f32)>,
}

/// The trained float model's folded parts, for the `float` graph: per requantized layer (by
/// name: `stem`, `sX.bY.gconv`, `sX.bY.pw2`) its per-channel affine `(A, B)`, code =
/// `clamp(floor(acc * A + B), 0, Q)`; and the head's per-class `(a, b)`, logit = `S * a + b` on
/// the spatial sums `S`.
#[derive(Debug, Clone, Default)]
pub struct FloatParts {
    /// Affines by layer name.
    pub affines: std::collections::HashMap<String, (Vec<f32>, Vec<f32>)>,
    /// The head's affine.
    pub head: (Vec<f32>, Vec<f32>),
}

/// A graph under construction: nodes, constants, and fresh value names.
#[derive(Default)]
pub(super) struct Graph<'a> {
    pub(super) nodes: Vec<Message>,
    pub(super) constants: Vec<Message>,
    /// The float model's parts, for the `float` graph; none for `exact`.
    float: Option<&'a FloatParts>,
    /// For the `qdq` graph: the int8 scale of each convolution's output (by layer name), and
    /// the scale of every value that holds dequantized accumulators.
    pub(super) qdq: Option<super::qdq::QdqState>,
}

impl Graph<'_> {
    /// Adds node `op` named `name`, whose one output is `name`; returns it.
    pub(super) fn op(
        &mut self,
        name: &str,
        op: &str,
        inputs: &[&str],
        attrs: &[(&str, Attr)],
    ) -> String {
        self.nodes
            .push(proto::node(name, op, inputs, &[name], attrs));
        name.to_string()
    }

    pub(super) fn float(&mut self, name: &str, dims: &[i64], values: &[f32]) -> String {
        self.constants.push(proto::float_tensor(name, dims, values));
        name.to_string()
    }

    fn int64(&mut self, name: &str, dims: &[i64], values: &[i64]) -> String {
        self.constants.push(proto::int64_tensor(name, dims, values));
        name.to_string()
    }

    /// A same-padded, stride-1 convolution of `x` with ternary weights.
    fn conv(&mut self, name: &str, x: &str, w: &TernaryWeights) -> String {
        if self.qdq.is_some() {
            return self.qdq_conv(name, x, w);
        }
        let values: Vec<f32> = w.codes.iter().map(|&c| c as f32).collect();
        let weights = self.float(&format!("{name}.weight"), &conv_dims(w), &values);
        self.conv_node(name, x, &weights, w)
    }

    /// The `Conv` node of `x` with the constant `weights` of the shape of `w`.
    pub(super) fn conv_node(
        &mut self,
        name: &str,
        x: &str,
        weights: &str,
        w: &TernaryWeights,
    ) -> String {
        let p = (w.k / 2) as i64;
        let k = w.k as i64;
        self.op(
            name,
            "Conv",
            &[x, weights],
            &[
                ("kernel_shape", Attr::Ints(vec![k, k])),
                ("pads", Attr::Ints(vec![p, p, p, p])),
                ("strides", Attr::Ints(vec![1, 1])),
                ("group", Attr::Int(w.groups as i64)),
            ],
        )
    }
}

/// ONNX's `[out, in / groups, k, k]` weight shape of `w`.
pub(super) fn conv_dims(w: &TernaryWeights) -> [i64; 4] {
    [
        w.out as i64,
        (w.inputs / w.groups) as i64,
        w.k as i64,
        w.k as i64,
    ]
}

/// The threshold form of `channels` for ONNX: one sign per channel (+1 rising, -1 falling, 0
/// constant) and the `q` thresholds of every channel, laid out `[q, c]`, which the signed
/// accumulator must reach for each code step. A falling channel's thresholds are negated so
/// that `sign * acc >= t` counts its steps; a constant channel `v` gets thresholds 0 (its first
/// `v` steps, always passed by `0 * acc`) and 1 (never passed). Thresholds are clamped to the
/// integers f32 holds exactly, beyond any reachable accumulator.
fn threshold_table(channels: &[ChannelRequant], q: usize) -> (Vec<f32>, Vec<f32>) {
    let c = channels.len();
    let mut sign = Vec::with_capacity(c);
    let mut thresholds = vec![0f32; q * c];
    let clamp = |t: i32| (t as i64).clamp(-F32_EXACT, F32_EXACT) as f32;
    for (ch, rq) in channels.iter().enumerate() {
        let (s, t): (f32, Vec<f32>) = match rq {
            ChannelRequant::Up(t) => (1.0, t.iter().map(|&v| clamp(v)).collect()),
            ChannelRequant::Down(t) => (-1.0, t.iter().map(|&v| -clamp(v)).collect()),
            ChannelRequant::Constant(v) => {
                let steps = (0..q).map(|j| if j < *v as usize { 0.0 } else { 1.0 });
                (0.0, steps.collect())
            }
        };
        sign.push(s);
        for (j, tj) in t.into_iter().enumerate() {
            thresholds[j * c + ch] = tj;
        }
    }
    (sign, thresholds)
}

impl Graph<'_> {
    /// Codes of the accumulators `acc` of `layer`: the thresholds `channels` (`q` each), or
    /// with the float model's parts its affine, `Floor` and `Clip`.
    fn requant(&mut self, layer: &str, acc: &str, channels: &[ChannelRequant], q: usize) -> String {
        let name = &format!("{layer}.rq");
        if let Some(parts) = self.float {
            let (a, b) = &parts.affines[layer];
            return self.affine_requant(name, acc, (a, b), q);
        }
        let (sign, thresholds) = threshold_table(channels, q);
        self.threshold_requant(name, acc, &sign, &thresholds, q)
    }

    /// `sum_j [sign * acc >= t_j]` per channel: the signed accumulators, lifted to a leading
    /// axis, compared with the `[q, 1, c, 1, 1]` table and counted along that axis.
    fn threshold_requant(
        &mut self,
        name: &str,
        acc: &str,
        sign: &[f32],
        thresholds: &[f32],
        q: usize,
    ) -> String {
        let c = sign.len() as i64;
        let sign = self.float(&format!("{name}.sign"), &[1, c, 1, 1], sign);
        let table = self.float(
            &format!("{name}.thresholds"),
            &[q as i64, 1, c, 1, 1],
            thresholds,
        );
        let axis0 = self.int64(&format!("{name}.axis0"), &[1], &[0]);
        let signed = self.op(&format!("{name}.signed"), "Mul", &[acc, &sign], &[]);
        let lifted = self.op(
            &format!("{name}.lifted"),
            "Unsqueeze",
            &[&signed, &axis0],
            &[],
        );
        let passed = self.op(
            &format!("{name}.passed"),
            "GreaterOrEqual",
            &[&lifted, &table],
            &[],
        );
        let ones = self.op(
            &format!("{name}.counted"),
            "Cast",
            &[&passed],
            &[("to", Attr::Int(ElemType::Float as i64))],
        );
        self.op(
            &format!("{name}.codes"),
            "ReduceSum",
            &[&ones, &axis0],
            &[("keepdims", Attr::Int(0))],
        )
    }

    /// `clamp(floor(acc * A + B), 0, Q)`, the float model's eval requantization.
    fn affine_requant(
        &mut self,
        name: &str,
        acc: &str,
        (a, b): (&[f32], &[f32]),
        q: usize,
    ) -> String {
        let c = a.len() as i64;
        let a = self.float(&format!("{name}.scale"), &[1, c, 1, 1], a);
        let b = self.float(&format!("{name}.shift"), &[1, c, 1, 1], b);
        let zero = self.float(&format!("{name}.zero"), &[], &[0.0]);
        let top = self.float(&format!("{name}.top"), &[], &[q as f32]);
        let scaled = self.op(&format!("{name}.scaled"), "Mul", &[acc, &a], &[]);
        let shifted = self.op(&format!("{name}.shifted"), "Add", &[&scaled, &b], &[]);
        let floor = self.op(&format!("{name}.floor"), "Floor", &[&shifted], &[]);
        self.op(
            &format!("{name}.codes"),
            "Clip",
            &[&floor, &zero, &top],
            &[],
        )
    }

    /// A CFLOG block on codes `x`.
    fn cflog(&mut self, name: &str, x: &str, c: &CflogInt, q: usize) -> String {
        let acc1 = self.conv(&format!("{name}.pw1"), x, &c.pw1);
        let acc2 = self.conv(&format!("{name}.gconv"), &acc1, &c.gconv);
        let pw2_in = match &c.inner {
            Some(inner) => self.requant(&format!("{name}.gconv"), &acc2, inner, q),
            None => acc2,
        };
        let pw2 = TernaryWeights {
            out: c.pw2.rows,
            inputs: c.pw2.width,
            k: 1,
            groups: 1,
            codes: c.pw2.weights.clone(),
        };
        let acc3 = self.conv(&format!("{name}.pw2"), &pw2_in, &pw2);
        self.requant(&format!("{name}.pw2"), &acc3, &c.out, q)
    }

    /// An MRB's gate and multiplexer on its input `x` and CFLOG output `f`.
    fn gate(
        &mut self,
        name: &str,
        (x, f): (&str, &str),
        thresholds: &[i32],
        gate: GateMode,
        mux: MuxInputs,
    ) -> String {
        if gate == GateMode::Never {
            return f.to_string();
        }
        let residual = match mux {
            MuxInputs::Skip => x.to_string(),
            MuxInputs::Avg => {
                let half = self.float(&format!("{name}.half"), &[], &[0.5]);
                let sum = self.op(&format!("{name}.sum"), "Add", &[x, f], &[]);
                let halved = self.op(&format!("{name}.halved"), "Mul", &[&sum, &half], &[]);
                self.op(&format!("{name}.avg"), "Floor", &[&halved], &[])
            }
        };
        if gate == GateMode::Always {
            return residual;
        }
        let c = thresholds.len() as i64;
        let values: Vec<f32> = thresholds.iter().map(|&t| t as f32).collect();
        let table = self.float(&format!("{name}.thresholds"), &[1, c, 1, 1], &values);
        let axes = self.int64(&format!("{name}.axes"), &[2], &[2, 3]);
        let sums = self.op(
            &format!("{name}.sums"),
            "ReduceSum",
            &[x, &axes],
            &[("keepdims", Attr::Int(1))],
        );
        let on = self.op(
            &format!("{name}.on"),
            "GreaterOrEqual",
            &[&sums, &table],
            &[],
        );
        self.op(&format!("{name}.out"), "Where", &[&on, &residual, f], &[])
    }

    /// The head on codes `x`: the outputs `logits` and `class`.
    fn head(&mut self, model: &IntModel, x: &str) {
        let acc = self.conv("head", x, &model.head.weights);
        let axes = self.int64("head.axes", &[2], &[2, 3]);
        let sums = self.op(
            "head.sums",
            "ReduceSum",
            &[&acc, &axes],
            &[("keepdims", Attr::Int(0))],
        );
        let (scaled, shift) = match self.float {
            Some(parts) => self.float_scale(&sums, &parts.head),
            None => self.int_scale(&sums, &model.head),
        };
        let logits = proto::node("logits", "Add", &[&scaled, &shift], &["logits"], &[]);
        self.nodes.push(logits);
        let argmax_input = match self.float {
            Some(_) => "logits".to_string(),
            // ArgMax on f64 (exact: |logit| stays far below 2^53), which every runtime takes.
            None => self.op(
                "head.f64_logits",
                "Cast",
                &["logits"],
                &[("to", Attr::Int(ElemType::Double as i64))],
            ),
        };
        self.nodes.push(proto::node(
            "class",
            "ArgMax",
            &[&argmax_input],
            &["class"],
            &[("axis", Attr::Int(1)), ("keepdims", Attr::Int(0))],
        ));
    }

    /// The float head's `sums x scale` and its shift, both f32 (`(scale, shift)` per class).
    fn float_scale(&mut self, sums: &str, (a, b): &(Vec<f32>, Vec<f32>)) -> (String, String) {
        let k = a.len() as i64;
        let a = self.float("head.scale", &[k], a);
        let b = self.float("head.shift", &[k], b);
        (self.op("head.scaled", "Mul", &[sums, &a], &[]), b)
    }

    /// The integer head's `sums x multiplier` and its offsets, both i64, as the engine computes
    /// them.
    fn int_scale(&mut self, sums: &str, h: &HeadInt) -> (String, String) {
        let ints = self.op(
            "head.int_sums",
            "Cast",
            &[sums],
            &[("to", Attr::Int(ElemType::Int64 as i64))],
        );
        let k = h.multipliers.len() as i64;
        let m: Vec<i64> = h.multipliers.iter().map(|&v| v as i64).collect();
        let c: Vec<i64> = h.offsets.iter().map(|&v| v as i64).collect();
        let m = self.int64("head.multipliers", &[k], &m);
        let c = self.int64("head.offsets", &[k], &c);
        (self.op("head.scaled", "Mul", &[&ints, &m], &[]), c)
    }
}

/// The `exact` graph of `model`.
pub fn export_exact(model: &IntModel) -> OnnxExport {
    export_with(model, None, None)
}

/// The `float` graph: `model`'s weights and gates with the trained float model's affines
/// (`parts`, from `mognet_core::onnx::float_parts`): what Burn's eval path computes, with
/// float `logits`.
pub fn export_float(model: &IntModel, parts: &FloatParts) -> OnnxExport {
    export_with(model, Some(parts), None)
}

/// The graph of `model`: `exact`, or `float` with the float model's parts, or `qdq` with its
/// scales.
pub(super) fn export_with(
    model: &IntModel,
    float: Option<&FloatParts>,
    qdq: Option<super::qdq::QdqState>,
) -> OnnxExport {
    let graph_name = match (&float, &qdq) {
        (Some(_), _) => "mognet-float",
        (None, Some(_)) => "mognet-qdq",
        (None, None) => "mognet-exact",
    };
    let mut g = Graph {
        float,
        qdq,
        ..Graph::default()
    };
    g.network(model);
    let graph = g.into_message(graph_name, &model.spec);
    let inexact = model
        .spec
        .accumulator_bounds()
        .into_iter()
        .filter(|(_, b)| *b >= F32_EXACT as u64)
        .collect();
    OnnxExport {
        bytes: proto::model(&graph, OPSET, "mognet"),
        inexact,
        scales: Vec::new(),
    }
}

impl Graph<'_> {
    /// The nodes of the whole network, from `image` to `logits` and `class`.
    fn network(&mut self, model: &IntModel) {
        let q = model.spec.levels() as usize;
        let mut x = "image".to_string();
        for node in model.spec.topology() {
            x = match node {
                Node::Stem { .. } => {
                    let acc = self.conv("stem", &x, &model.stem);
                    self.requant("stem", &acc, &model.stem_out, q)
                }
                Node::Pool { stage, .. } => {
                    let two = Attr::Ints(vec![2, 2]);
                    self.op(
                        &pool_name(stage),
                        "MaxPool",
                        &[&x],
                        &[("kernel_shape", two.clone()), ("strides", two)],
                    )
                }
                Node::Block(b) => {
                    let block = &model.blocks[b.index];
                    let f = self.cflog(&b.id.to_string(), &x, &block.cflog, q);
                    match b.residual {
                        None => f,
                        Some(r) => {
                            let name = b.id.layer("gate");
                            self.gate(&name, (&x, &f), &block.gate, r.gate, r.mux)
                        }
                    }
                }
                Node::Head { .. } => {
                    self.head(model, &x);
                    String::new()
                }
            };
        }
    }

    /// The `GraphProto`: nodes, constants, and the input and outputs with their types.
    fn into_message(self, name: &str, spec: &NetSpec) -> Message {
        let [h, w] = spec.input_size;
        let batch = Dim::Param("N");
        let channels = Dim::Value(spec.in_channels as i64);
        let (h, w) = (Dim::Value(h as i64), Dim::Value(w as i64));
        let image = proto::value_info("image", ElemType::Float, &[batch.clone(), channels, h, w]);
        let logit_type = match self.float {
            Some(_) => ElemType::Float,
            None => ElemType::Int64,
        };
        let classes = Dim::Value(spec.num_classes as i64);
        let logits = proto::value_info("logits", logit_type, &[batch.clone(), classes]);
        let class = proto::value_info("class", ElemType::Int64, &[batch]);
        let mut graph = Message::default();
        for n in &self.nodes {
            graph.message(1, n);
        }
        graph.string(2, name);
        for t in &self.constants {
            graph.message(5, t);
        }
        graph
            .message(11, &image)
            .message(12, &logits)
            .message(12, &class);
        graph
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_table_counts_the_codes_the_engine_gives() {
        let channels = [
            ChannelRequant::Up(vec![-40, -3, 0, 0, 7, 90, 200]),
            ChannelRequant::Down(vec![150, 20, 5, -1, -1, -60, -250]),
            ChannelRequant::Constant(0),
            ChannelRequant::Constant(4),
            ChannelRequant::Constant(7),
            // Beyond f32's exact integers: clamped, still never reached.
            ChannelRequant::Up(vec![-5, 0, 5, i32::MAX, i32::MAX, i32::MAX, i32::MAX]),
        ];
        let (q, c) = (7, channels.len());
        let (sign, table) = threshold_table(&channels, q);
        assert_eq!(sign, [1.0, -1.0, 0.0, 0.0, 0.0, 1.0]);
        for acc in -300..=300 {
            for (ch, rq) in channels.iter().enumerate() {
                let signed = sign[ch] * acc as f32;
                let code = (0..q).filter(|&j| signed >= table[j * c + ch]).count();
                assert_eq!(code, rq.code(acc) as usize, "channel {ch}, acc {acc}");
            }
        }
    }
}
