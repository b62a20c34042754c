//! CFLOG: PW1 (1x1 ternary) -> grouped kxk ternary conv -> CA pointwise -> BN -> QReLU_k.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::bn_qrelu::{BnQRelu, BnQReluConfig};
use crate::btq::BtqConfig;
use crate::ca_pointwise::CaPointwiseConfig;
use crate::pw2::Pw2;
use crate::ternary_conv::{TernaryConv2d, TernaryConv2dConfig};
use mognet_arch::Pw2Kind;
use mognet_arch::ca::CaError;
use mognet_arch::rng::derive_seed;

/// [`Cflog`] configuration.
#[derive(Config, Debug)]
pub struct CflogConfig {
    /// `[c_in, m, n]`: input, inner and output widths.
    pub channels: [usize; 3],
    /// Groups of the grouped convolution (divides `m`).
    pub groups: usize,
    /// Kernel of the grouped convolution (odd; padding `k/2`). Default: 3.
    #[config(default = 3)]
    pub kernel_size: usize,
    /// BN + QReLU after the grouped convolution. Default: false (SPEC).
    #[config(default = false)]
    pub inner_norm: bool,
    /// Activation bits. Default: 3.
    #[config(default = 3)]
    pub bits: u32,
    /// Ternarizer of PW1 and the grouped convolution. Default: `BtqConfig::new()`.
    #[config(default = "BtqConfig::new()")]
    pub btq: BtqConfig,
    /// CA rule of PW2. Default: 30.
    #[config(default = 30)]
    pub ca_rule: u8,
    /// CA seed of PW2. Default: 0.
    #[config(default = 0)]
    pub ca_seed: u64,
    /// CA warmup of PW2 (`None`: the width `m`). Default: `None`.
    #[config(default = "None")]
    pub ca_warmup: Option<usize>,
    /// Generator of PW2's weights (with `Prng`, `ca_seed` seeds the stream). Default: CA.
    #[config(default = "Pw2Kind::Ca")]
    pub pw2: Pw2Kind,
    /// Seeds of the PW1 and grouped-conv initialisation. Default: `[0, 1]`.
    #[config(default = "[0, 1]")]
    pub init_seeds: [u64; 2],
    /// Batch-norm momentum. Default: 0.1.
    #[config(default = 0.1)]
    pub bn_momentum: f64,
    /// Batch-norm epsilon. Default: 1e-5.
    #[config(default = 1e-5)]
    pub bn_epsilon: f64,
}

/// Stream of PW2's initialisation seed when PW2 is ternary (derived from the grouped
/// convolution's, so that the other layers' seeds stay as they are).
const PW2_INIT_STREAM: u64 = 0x9E2;

/// `scale`, times `alpha` when there is one.
fn times(scale: Tensor<1>, alpha: Option<Tensor<1>>) -> Tensor<1> {
    match alpha {
        Some(a) => scale * a,
        None => scale,
    }
}

/// A CFLOG block.
#[derive(Module, Debug)]
pub struct Cflog {
    /// PW1, `c_in -> m`.
    pub pw1: TernaryConv2d,
    /// Grouped kxk, `m -> m`.
    pub gconv: TernaryConv2d,
    /// Optional BN + QReLU after the grouped convolution.
    pub inner: Option<BnQRelu>,
    /// PW2, `m -> n`: CA-generated (or an ablation's PRNG rows or ternary weights).
    pub pw2: Pw2,
    /// BN + QReLU on PW2's accumulators.
    pub out: BnQRelu,
    /// `Q`.
    pub levels: u32,
}

/// Per-layer codes the block computed, for parity checks and metrics.
#[derive(Debug, Clone)]
pub struct CflogTrace {
    /// Codes after the grouped conv's BN + QReLU, when `inner_norm`.
    pub inner: Option<Tensor<4>>,
    /// Output codes.
    pub out: Tensor<4>,
}

impl CflogConfig {
    /// Builds the block; fails if the CA (rule, seed) pair is degenerate for `[n, m]`.
    pub fn init(&self, device: &Device) -> Result<Cflog, CaError> {
        let [c_in, m, n] = self.channels;
        let bn = |channels| {
            BnQReluConfig::new(channels)
                .with_bits(self.bits)
                .with_momentum(self.bn_momentum)
                .with_epsilon(self.bn_epsilon)
                .init(device)
        };
        Ok(Cflog {
            pw1: TernaryConv2dConfig::new([c_in, m])
                .with_btq(self.btq.clone())
                .with_seed(self.init_seeds[0])
                .init(device),
            gconv: TernaryConv2dConfig::new([m, m])
                .with_kernel_size(self.kernel_size)
                .with_padding(self.kernel_size / 2)
                .with_groups(self.groups)
                .with_btq(self.btq.clone())
                .with_seed(self.init_seeds[1])
                .init(device),
            inner: self.inner_norm.then(|| bn(m)),
            pw2: match self.pw2 {
                Pw2Kind::Ternary => Pw2::Ternary(
                    TernaryConv2dConfig::new([m, n])
                        .with_btq(self.btq.clone())
                        .with_seed(derive_seed(self.init_seeds[1], PW2_INIT_STREAM))
                        .init(device),
                ),
                kind => Pw2::Fixed(
                    CaPointwiseConfig::new([m, n])
                        .with_rule(self.ca_rule)
                        .with_seed(self.ca_seed)
                        .with_warmup(self.ca_warmup)
                        .with_kind(kind)
                        .init(device)?,
                ),
            },
            out: bn(n),
            levels: (1u32 << self.bits) - 1,
        })
    }
}

impl Cflog {
    /// Output codes.
    ///
    /// # Shapes
    /// - `x`: `[batch, c_in, h, w]` codes in `0..=Q`
    /// - output: `[batch, n, h, w]` codes in `0..=Q`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_trace(x).out
    }

    /// Output codes and the inner codes (when `inner_norm`).
    ///
    /// # Shapes
    /// - `x`: `[batch, c_in, h, w]`; `out`: `[batch, n, h, w]`; `inner`: `[batch, m, h, w]`
    pub fn forward_trace(&self, x: Tensor<4>) -> CflogTrace {
        let (acc1, alpha1) = self.pw1.accumulate(x);
        let (acc2, alpha2) = self.gconv.accumulate(acc1);
        let scale = self.chain_scale(alpha1, alpha2);
        match &self.inner {
            Some(inner) => {
                let codes = inner.forward(acc2, scale);
                let (acc3, alpha3) = self.pw2.accumulate(codes.clone());
                let scale = times(self.code_scale(&codes.device()), alpha3);
                CflogTrace {
                    inner: Some(codes),
                    out: self.out.forward(acc3, scale),
                }
            }
            None => {
                let (acc3, alpha3) = self.pw2.accumulate(acc2);
                CflogTrace {
                    inner: None,
                    out: self.out.forward(acc3, times(scale, alpha3)),
                }
            }
        }
    }

    /// The real value of one unit of PW2's (or, with `inner_norm`, the grouped conv's)
    /// accumulator: `alpha1 * alpha2 / Q`, since codes carry `1/Q`.
    pub fn chain_scale(&self, alpha1: Tensor<1>, alpha2: Tensor<1>) -> Tensor<1> {
        (alpha1 * alpha2).div_scalar(self.levels as f64)
    }

    /// The value of one code unit, `1/Q` (PW2's scale with `inner_norm`).
    pub fn code_scale(&self, device: &burn::tensor::Device) -> Tensor<1> {
        Tensor::ones([1], device).div_scalar(self.levels as f64)
    }

    /// The folded eval affines `(A, B)` of the inner requantization (with `inner_norm`) and of
    /// the output one: the very tensors the eval forward uses, for the exporter.
    pub fn requant_affines(
        &self,
        device: &burn::tensor::Device,
    ) -> (Option<(Tensor<1>, Tensor<1>)>, (Tensor<1>, Tensor<1>)) {
        let scale = self.chain_scale(self.pw1.ternarized().alpha, self.gconv.ternarized().alpha);
        match &self.inner {
            Some(inner) => (
                Some(inner.folded(scale)),
                self.out.folded(self.pw2.scaled(self.code_scale(device))),
            ),
            None => (None, self.out.folded(self.pw2.scaled(scale))),
        }
    }

    /// Sum of the BTQ regularizers of the block's ternary layers (PW1, the grouped
    /// convolution, and PW2 when it is ternary), `[1]`.
    pub fn regularizer(&self) -> Tensor<1> {
        let pw = self.pw1.regularizer() + self.gconv.regularizer();
        match self.pw2.regularizer() {
            Some(r) => pw + r,
            None => pw,
        }
    }
}
