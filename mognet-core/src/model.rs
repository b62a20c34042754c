//! The MOGNET network: stem, stages of CFLOG + MRBs with 2x2 max pooling between them, head.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Tensor};
use mognet_arch::Pw2Kind;
use mognet_arch::ca::CaError;
use mognet_arch::{
    BlockId, BlockNode, GateMode, MuxInputs, NetSpec, Node, SpecError, StageSpec, StorageWidths,
    Summary, pool_name,
};

use crate::bn_qrelu::BnQReluConfig;
use crate::btq::{BtqConfig, Occupancy};
use crate::ca_pointwise::fixed_generator;
use crate::cflog::{Cflog, CflogConfig};
use crate::head::Head;
use crate::init::derive_seed;
use crate::mrb::{Mrb, MrbConfig};
use crate::stem::Stem;
use crate::ternary_conv::TernaryConv2dConfig;
use mognet_arch::Preset;

/// Stream ids separating the seed derivations of different purposes.
const INIT_STREAM: u64 = 0x1000;
const CA_STREAM: u64 = 0x2000;
/// CA seeds tried per layer before giving up on a (rule, warmup) choice.
const CA_ATTEMPTS: u64 = 16;

/// Why a model cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The shape description is invalid.
    #[error("invalid model config: {0}")]
    Spec(#[from] SpecError),
    /// No CA seed gives valid weights for a layer.
    #[error("layer {layer}: no valid CA weights in {attempts} seeds ({source})")]
    Ca {
        /// The layer.
        layer: String,
        /// Seeds tried.
        attempts: u64,
        /// The last failure.
        source: CaError,
    },
    /// A config file could not be read or parsed.
    #[error("model config {path}: {message}")]
    ConfigFile {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// [`Mognet`] configuration. Every SPEC **\[choice\]** is a field.
#[derive(Config, Debug)]
pub struct MognetConfig {
    /// Stem output width.
    pub stem_width: usize,
    /// Stages `(n, m, groups, blocks)`.
    pub stages: Vec<StageSpec>,
    /// Input channels: 1 (grayscale) or 3 (colour). Default: 3.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Classes. Default: 10.
    #[config(default = 10)]
    pub num_classes: usize,
    /// Input height and width (used for the summary and the export). Default: `[32, 32]`.
    #[config(default = "[32, 32]")]
    pub input_size: [usize; 2],
    /// Activation bits `k`. Default: 3.
    #[config(default = 3)]
    pub bits: u32,
    /// Kernel of the stem and grouped convolutions. Default: 3.
    #[config(default = 3)]
    pub kernel_size: usize,
    /// BN + QReLU after each grouped conv. Default: false.
    #[config(default = false)]
    pub inner_norm: bool,
    /// MRB gate mode. Default: `Tgap`.
    #[config(default = "GateMode::Tgap")]
    pub gate: GateMode,
    /// MRB multiplexer inputs. Default: `Avg`.
    #[config(default = "MuxInputs::Avg")]
    pub mux: MuxInputs,
    /// Initial MRB gate threshold. Default: 0.5.
    #[config(default = 0.5)]
    pub tau_init: f64,
    /// MRB gate surrogate temperature. Default: 0.1.
    #[config(default = 0.1)]
    pub gate_temperature: f64,
    /// Ternarizer of every ternary layer. Default: `BtqConfig::new()` (delta 0.7).
    #[config(default = "BtqConfig::new()")]
    pub btq: BtqConfig,
    /// CA rule of every PW2. Default: 30.
    #[config(default = 30)]
    pub ca_rule: u8,
    /// CA warmup (`None`: the ring width). Default: `None`.
    #[config(default = "None")]
    pub ca_warmup: Option<usize>,
    /// Where every PW2's +-1 weights come from: the CA, or (an ablation) a plain PRNG stream.
    /// Default: CA.
    #[config(default = "Pw2Kind::Ca")]
    pub pw2: Pw2Kind,
    /// Batch-norm momentum. Default: 0.1.
    #[config(default = 0.1)]
    pub bn_momentum: f64,
    /// Batch-norm epsilon. Default: 1e-5.
    #[config(default = 1e-5)]
    pub bn_epsilon: f64,
    /// Initial gamma of the head's batch norm. The head averages normalized class maps over
    /// space, which shrinks their spread by up to `sqrt(h * w)`; starting gamma at 8 (the side of
    /// the 8x8 head map of a 32x32 input) starts the logits at about unit spread. Default: 8.0.
    #[config(default = 8.0)]
    pub head_gamma_init: f64,
    /// Seed of the weight initialisation and of the CA seeds. Default: 0.
    #[config(default = 0)]
    pub seed: u64,
}

/// One stage: a width-changing CFLOG, then MRBs.
#[derive(Module, Debug)]
pub struct Stage {
    /// The first CFLOG (no residual).
    pub first: Cflog,
    /// The MRBs.
    pub blocks: Vec<Mrb>,
}

/// The MOGNET network.
#[derive(Module, Debug)]
pub struct Mognet {
    /// Stem.
    pub stem: Stem,
    /// Stages, 2x2 max pooling between consecutive ones.
    pub stages: Vec<Stage>,
    /// Head.
    pub head: Head,
    /// The network's description, from the config (not saved with the weights).
    #[module(skip)]
    pub spec: NetSpec,
}

/// Every intermediate result of a forward pass, named as in [`NetSpec::layers`].
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// Codes after every requantization, MRB multiplexer and pooling, in order.
    pub codes: Vec<(String, Tensor<4>)>,
    /// Gate bits of every MRB, `[batch, n]`.
    pub gates: Vec<(String, Tensor<2>)>,
    /// Spatial sums of the head's accumulators, `[batch, classes]`.
    pub head_sums: Option<Tensor<2>>,
}

impl MognetConfig {
    /// A preset with the given input channels and classes.
    pub fn preset(preset: Preset, in_channels: usize, num_classes: usize) -> Self {
        MognetConfig::new(preset.stem_width(), preset.stages())
            .with_in_channels(in_channels)
            .with_num_classes(num_classes)
    }

    /// The Burn-free shape description.
    pub fn spec(&self) -> NetSpec {
        NetSpec {
            in_channels: self.in_channels,
            num_classes: self.num_classes,
            input_size: self.input_size,
            bits: self.bits,
            stem_width: self.stem_width,
            kernel_size: self.kernel_size,
            stages: self.stages.clone(),
            inner_norm: self.inner_norm,
            gate: self.gate,
            mux: self.mux,
            pw2: self.pw2,
        }
    }

    /// The size summary with the exporter's default storage widths.
    pub fn summary(&self) -> Summary {
        Summary::new(&self.spec(), &StorageWidths::default())
    }

    /// Reads a config from JSON, naming the file in errors.
    pub fn from_file(path: &std::path::Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::ConfigFile {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let error = |message: String| ModelError::ConfigFile {
            path: path.display().to_string(),
            message,
        };
        let value = serde_json::from_str(&text).map_err(|e| error(e.to_string()))?;
        let config = Self::from_json(value).map_err(|e| error(e.to_string()))?;
        config.spec().validate()?;
        Ok(config)
    }

    /// A config from its JSON form; fields added after it was written (absent keys) take their
    /// documented defaults, so configs of older runs still load.
    pub fn from_json(mut value: serde_json::Value) -> Result<Self, serde_json::Error> {
        let required = (
            value.get("stem_width").cloned(),
            value.get("stages").cloned(),
        );
        if let (Some(sw), Some(st)) = required
            && let (Ok(sw), Ok(st)) = (serde_json::from_value(sw), serde_json::from_value(st))
            && let Ok(serde_json::Value::Object(defaults)) =
                serde_json::to_value(MognetConfig::new(sw, st))
            && let serde_json::Value::Object(fields) = &mut value
        {
            for (k, v) in defaults {
                fields.entry(k).or_insert(v);
            }
        }
        serde_json::from_value(value)
    }

    /// The first valid PW2 generator seed for the `index`-th CFLOG of shape `[n, m]`.
    fn ca_generator(&self, index: u64, name: &str, n: usize, m: usize) -> Result<u64, ModelError> {
        let mut last = None;
        for attempt in 0..CA_ATTEMPTS {
            let seed = derive_seed(self.seed, CA_STREAM + index * CA_ATTEMPTS + attempt);
            let generator = match fixed_generator(self.pw2, self.ca_rule, seed, self.ca_warmup) {
                Ok(generator) => generator,
                // Only a ternary PW2 names no generator: its weights are trained, the seed unused.
                Err(_) => return Ok(seed),
            };
            match generator.weights(n, m) {
                Ok(_) => return Ok(seed),
                Err(e) => last = Some(e),
            }
        }
        Err(ModelError::Ca {
            layer: name.to_string(),
            attempts: CA_ATTEMPTS,
            source: last.expect("at least one attempt"),
        })
    }

    /// The configuration of block `b`, with its CA seed and its two initialisation seeds.
    fn cflog_config(&self, b: &BlockNode, seeds: [u64; 2]) -> Result<CflogConfig, ModelError> {
        let name = b.id.layer("pw2");
        let ca_seed = self.ca_generator(b.index as u64, &name, b.n, b.m)?;
        Ok(CflogConfig::new([b.c_in, b.m, b.n], b.groups)
            .with_kernel_size(b.kernel)
            .with_inner_norm(b.inner_norm)
            .with_bits(self.bits)
            .with_btq(self.btq.clone())
            .with_ca_rule(self.ca_rule)
            .with_ca_seed(ca_seed)
            .with_ca_warmup(self.ca_warmup)
            .with_pw2(self.pw2)
            .with_init_seeds(seeds)
            .with_bn_momentum(self.bn_momentum)
            .with_bn_epsilon(self.bn_epsilon))
    }

    /// Builds the network on `device`. The same config (seed included) gives the same weights,
    /// bit for bit, on every backend.
    pub fn init(&self, device: &Device) -> Result<Mognet, ModelError> {
        let spec = self.spec();
        spec.validate()?;
        // One seed per ternary layer, drawn in execution order.
        let mut stream = INIT_STREAM;
        let mut next_seed = || {
            stream += 1;
            derive_seed(self.seed, stream)
        };
        let (mut stem, mut head) = (None, None);
        let mut stages: Vec<Stage> = Vec::with_capacity(self.stages.len());
        for node in spec.topology() {
            match node {
                Node::Stem { input, out, kernel } => {
                    stem = Some(self.stem(input[0], out, kernel, next_seed(), device))
                }
                Node::Pool { .. } => {}
                Node::Block(b) => {
                    let config = self.cflog_config(&b, [next_seed(), next_seed()])?;
                    let ca_error = |e: CaError| ModelError::Ca {
                        layer: format!("stage {}", b.id.stage + 1),
                        attempts: 1,
                        source: e,
                    };
                    match b.residual {
                        None => stages.push(Stage {
                            first: config.init(device).map_err(ca_error)?,
                            blocks: Vec::new(),
                        }),
                        Some(residual) => {
                            let mrb = MrbConfig::new(config)
                                .with_gate(residual.gate)
                                .with_mux(residual.mux)
                                .with_tau_init(self.tau_init)
                                .with_gate_temperature(self.gate_temperature)
                                .init(device)
                                .map_err(ca_error)?;
                            let stage = stages.last_mut().expect("a stage starts with a CFLOG");
                            stage.blocks.push(mrb);
                        }
                    }
                }
                Node::Head { input, classes } => {
                    head = Some(self.head(input[0], classes, next_seed(), device))
                }
            }
        }
        Ok(Mognet {
            stem: stem.expect("a topology starts with its stem"),
            stages,
            head: head.expect("a topology ends with its head"),
            spec,
        })
    }

    fn ternary(&self, channels: [usize; 2], seed: u64) -> TernaryConv2dConfig {
        TernaryConv2dConfig::new(channels)
            .with_btq(self.btq.clone())
            .with_seed(seed)
    }

    /// The stem: a `kernel` x `kernel` ternary convolution, then BN + QReLU.
    fn stem(&self, c_in: usize, out: usize, kernel: usize, seed: u64, device: &Device) -> Stem {
        Stem {
            conv: self
                .ternary([c_in, out], seed)
                .with_kernel_size(kernel)
                .with_padding(kernel / 2)
                .init(device),
            out: BnQReluConfig::new(out)
                .with_bits(self.bits)
                .with_momentum(self.bn_momentum)
                .with_epsilon(self.bn_epsilon)
                .init(device),
        }
    }

    /// The head: a 1x1 ternary convolution to class maps and their batch norm (gamma starts at
    /// `head_gamma_init`).
    fn head(&self, c_in: usize, classes: usize, seed: u64, device: &Device) -> Head {
        let mut bn = BatchNormConfig::new(classes)
            .with_momentum(self.bn_momentum)
            .with_epsilon(self.bn_epsilon)
            .init(device);
        bn.gamma = Param::from_tensor(Tensor::full([classes], self.head_gamma_init, device));
        Head {
            conv: self.ternary([c_in, classes], seed).init(device),
            bn,
            levels: (1u32 << self.bits) - 1,
        }
    }
}

/// 2x2 max pooling, stride 2, on codes.
pub fn pool2x2(x: Tensor<4>) -> Tensor<4> {
    let mut options = MaxPoolOptions::new([2, 2]);
    options.stride = [2, 2];
    max_pool2d(x, options)
}

impl Mognet {
    /// Block `id`'s CFLOG and, for an MRB (any block after a stage's first), the MRB.
    ///
    /// # Panics
    /// If the model has no such block (an id from another network's topology).
    pub fn block(&self, id: BlockId) -> (&Cflog, Option<&Mrb>) {
        let stage = &self.stages[id.stage];
        match id.block {
            0 => (&stage.first, None),
            b => {
                let mrb = &stage.blocks[b - 1];
                (&mrb.cflog, Some(mrb))
            }
        }
    }

    /// Logits.
    ///
    /// # Shapes
    /// - `x`: `[batch, in_channels, h, w]`, pixel values `p / 255`
    /// - output: `[batch, num_classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.run(x, None)
    }

    /// Logits and every intermediate code tensor.
    ///
    /// # Shapes
    /// - `x`: `[batch, in_channels, h, w]`; logits: `[batch, num_classes]`
    pub fn forward_trace(&self, x: Tensor<4>) -> (Tensor<2>, Trace) {
        let mut trace = Trace::default();
        let logits = self.run(x, Some(&mut trace));
        (logits, trace)
    }

    fn run(&self, x: Tensor<4>, mut trace: Option<&mut Trace>) -> Tensor<2> {
        let mut record = |name: String, t: &Tensor<4>| {
            if let Some(tr) = trace.as_deref_mut() {
                tr.codes.push((name, t.clone()));
            }
        };
        let (mut x, mut gates, mut out) = (x, Vec::new(), None);
        for node in self.spec.topology() {
            match node {
                Node::Stem { .. } => {
                    x = self.stem.forward(x);
                    record("stem".into(), &x);
                }
                Node::Pool { stage, .. } => {
                    x = pool2x2(x);
                    record(pool_name(stage), &x);
                }
                Node::Block(b) => {
                    let (t, gated) = match self.block(b.id) {
                        (_, Some(mrb)) => {
                            let t = mrb.forward_trace(x);
                            (t.cflog, Some((t.gate, t.out)))
                        }
                        (cflog, None) => (cflog.forward_trace(x), None),
                    };
                    if let Some(inner) = &t.inner {
                        record(b.id.layer("gconv"), inner);
                    }
                    record(b.id.layer("pw2"), &t.out);
                    x = match gated {
                        Some((gate, y)) => {
                            record(b.id.layer("gate"), &y);
                            gates.push((b.id.layer("gate"), gate));
                            y
                        }
                        None => t.out,
                    };
                }
                Node::Head { .. } => out = Some(self.head.forward_sums(x.clone())),
            }
        }
        let (logits, sums) = out.expect("a topology ends with its head");
        if let Some(tr) = trace {
            tr.gates = gates;
            tr.head_sums = Some(sums);
        }
        logits
    }

    /// Every batch norm of the network, in execution order.
    pub fn batch_norms_mut(&mut self) -> Vec<&mut BatchNorm> {
        let Mognet {
            stem,
            stages,
            head,
            spec,
        } = self;
        // The CFLOGs in block order: the topology's blocks take them one by one.
        let mut cflogs = stages.iter_mut().flat_map(|s| {
            std::iter::once(&mut s.first).chain(s.blocks.iter_mut().map(|b| &mut b.cflog))
        });
        // Stem and head are taken once each, as the topology reaches them.
        let (mut stem, mut head) = (Some(stem), Some(head));
        let mut out = Vec::new();
        for node in spec.topology() {
            match node {
                Node::Stem { .. } => out.push(&mut stem.take().expect("one stem").out.bn),
                Node::Pool { .. } => {}
                Node::Block(_) => {
                    let cflog = cflogs.next().expect("one CFLOG per block");
                    if let Some(inner) = &mut cflog.inner {
                        out.push(&mut inner.bn);
                    }
                    out.push(&mut cflog.out.bn);
                }
                Node::Head { .. } => out.push(&mut head.take().expect("one head").bn),
            }
        }
        out
    }

    /// Re-estimates every batch norm's running statistics as the plain average of its batch
    /// statistics over `batches` (training-mode forwards on an autodiff device, no gradient
    /// step). During training the running averages trail weights that move quickly; after this
    /// the eval-mode model (and so the exported integer model) normalizes with statistics of the
    /// final weights. Parameters and momentum are left as they were.
    ///
    /// The forwards run on a copy whose parameters record no autodiff graph: with tracked
    /// parameters, each forward's saved activations stay alive until a backward that never
    /// comes (about 300 MB a batch of 128 for mognet-s, so gigabytes per recalibration).
    ///
    /// # Shapes
    /// - each batch: `[batch, in_channels, h, w]`, pixel values `p / 255`
    pub fn recalibrate_batch_norms(&mut self, batches: impl IntoIterator<Item = Tensor<4>>) {
        let mut probe = self.clone().no_grad();
        for (k, x) in batches.into_iter().enumerate() {
            assert!(
                x.device().is_autodiff(),
                "batch statistics need the training path"
            );
            for bn in probe.batch_norms_mut() {
                // 1/(k+1): the running value becomes the mean of the k+1 batches seen.
                bn.momentum = 1.0 / (k as f64 + 1.0);
            }
            let _ = probe.forward(x.detach());
        }
        // Burn's clones may share running state; copying makes the result not depend on it.
        for (bn, fresh) in self
            .batch_norms_mut()
            .into_iter()
            .zip(probe.batch_norms_mut())
        {
            bn.running_mean = fresh.running_mean.clone();
            bn.running_var = fresh.running_var.clone();
        }
    }

    /// Sum of every ternary layer's level-balancing regularizer, `[1]`: stem and head first,
    /// then the blocks in order.
    pub fn regularizer(&self) -> Tensor<1> {
        let mut total = self.stem.conv.regularizer() + self.head.conv.regularizer();
        for node in self.spec.topology() {
            match node {
                // Counted first, above.
                Node::Stem { .. } | Node::Head { .. } => {}
                Node::Pool { .. } => {}
                Node::Block(b) => total = total + self.block(b.id).0.regularizer(),
            }
        }
        total
    }

    /// The ternary layers with their names, in execution order.
    pub fn ternary_layers(&self) -> Vec<(String, &crate::ternary_conv::TernaryConv2d)> {
        let mut out = Vec::new();
        for node in self.spec.topology() {
            match node {
                Node::Stem { .. } => out.push(("stem".to_string(), &self.stem.conv)),
                Node::Pool { .. } => {}
                Node::Block(b) => {
                    let cflog = self.block(b.id).0;
                    out.push((b.id.layer("pw1"), &cflog.pw1));
                    out.push((b.id.layer("gconv"), &cflog.gconv));
                    if let Some(pw2) = cflog.pw2.ternary() {
                        out.push((b.id.layer("pw2"), pw2));
                    }
                }
                Node::Head { .. } => out.push(("head".to_string(), &self.head.conv)),
            }
        }
        out
    }

    /// Real occupancy of -1/0/+1 per ternary layer (reads back to the host).
    pub fn occupancy(&self) -> Vec<(String, Occupancy)> {
        self.ternary_layers()
            .into_iter()
            .map(|(name, layer)| (name, layer.occupancy()))
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests;
