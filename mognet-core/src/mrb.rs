//! MRB: the MUX residual block around a CFLOG with `c_in == n`.
//!
//! `r = floor((x + f) / 2)` on codes keeps the residual sum k-bit; a per-channel gate
//! `s_c = [sum_hw(x_c) >= ceil(tau_c * Q * H * W)]` (the global average of the input against a
//! learned threshold, written on integer sums so it is exact) drives the 2:1 multiplexer
//! `y = s * r + (1 - s) * f`.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};
use mognet_arch::ca::CaError;
use mognet_arch::{GateMode, MuxInputs};

use crate::cflog::{Cflog, CflogConfig, CflogTrace};
use crate::ops;
use crate::qrelu::straight_through;

/// [`Mrb`] configuration.
#[derive(Config, Debug)]
pub struct MrbConfig {
    /// The CFLOG inside; its `c_in` must equal its `n`.
    pub cflog: CflogConfig,
    /// Gate mode. Default: `Tgap`.
    #[config(default = "GateMode::Tgap")]
    pub gate: GateMode,
    /// Multiplexer inputs. Default: `Avg`.
    #[config(default = "MuxInputs::Avg")]
    pub mux: MuxInputs,
    /// Initial gate threshold `tau` for every channel. Default: 0.5.
    #[config(default = 0.5)]
    pub tau_init: f64,
    /// Temperature of the sigmoid whose derivative is the gate's backward. Default: 0.1.
    #[config(default = 0.1)]
    pub gate_temperature: f64,
}

/// A MUX residual block.
#[derive(Module, Debug)]
pub struct Mrb {
    /// The main path.
    pub cflog: Cflog,
    /// Per-channel gate thresholds `tau`, `[n]`.
    pub tau: Param<Tensor<1>>,
    /// Gate mode.
    #[module(skip)]
    pub gate: GateMode,
    /// Multiplexer inputs.
    #[module(skip)]
    pub mux: MuxInputs,
    /// Gate surrogate temperature.
    pub gate_temperature: f64,
}

/// What the block computed.
#[derive(Debug, Clone)]
pub struct MrbTrace {
    /// The CFLOG's codes.
    pub cflog: CflogTrace,
    /// Gate bits `s`, `[batch, n]` in `{0, 1}`.
    pub gate: Tensor<2>,
    /// Output codes.
    pub out: Tensor<4>,
}

impl MrbConfig {
    /// Builds the block.
    ///
    /// # Panics
    /// If the CFLOG's input and output widths differ (a programming error).
    pub fn init(&self, device: &Device) -> Result<Mrb, CaError> {
        let [c_in, _, n] = self.cflog.channels;
        assert_eq!(c_in, n, "an MRB needs c_in == n, got {c_in} -> {n}");
        Ok(Mrb {
            cflog: self.cflog.init(device)?,
            tau: Param::from_tensor(Tensor::from_data(
                TensorData::new(vec![self.tau_init as f32; n], [n]),
                device,
            )),
            gate: self.gate,
            mux: self.mux,
            gate_temperature: self.gate_temperature,
        })
    }
}

impl Mrb {
    /// Output codes.
    ///
    /// # Shapes
    /// - `x`: `[batch, n, h, w]` codes; output: same shape, codes
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_trace(x).out
    }

    /// The gate bits for input `x`, with the sigmoid surrogate's gradient when on autodiff.
    ///
    /// # Shapes
    /// - `x`: `[batch, n, h, w]`; output: `[batch, n]`
    pub fn gate_bits(&self, x: Tensor<4>) -> Tensor<2> {
        let [b, c, h, w] = x.dims();
        let device = x.device();
        match self.gate {
            GateMode::Always => return Tensor::ones([b, c], &device),
            GateMode::Never => return Tensor::zeros([b, c], &device),
            GateMode::Tgap => {}
        }
        let full = self.cflog.levels as f64 * (h * w) as f64;
        let sums = x.reshape([b, c, h * w]).sum_dim(2).reshape([b, c]);
        let tau = self.tau.val().reshape([1, c]);
        let threshold = self.gate_thresholds(h * w).reshape([1, c]);
        let step = (sums.clone().detach() - threshold)
            .greater_equal_elem(0.0)
            .float();
        if !device.is_autodiff() {
            return step;
        }
        let surrogate = sigmoid((sums.div_scalar(full) - tau).div_scalar(self.gate_temperature));
        straight_through(surrogate, step)
    }

    /// The integer gate thresholds `ceil(tau * Q * H * W)` on the spatial sums of the input
    /// codes, `[n]`: what the forward compares with, and what the integer engine stores.
    pub fn gate_thresholds(&self, hw: usize) -> Tensor<1> {
        let full = self.cflog.levels as f64 * hw as f64;
        self.tau.val().detach().mul_scalar(full).ceil()
    }

    /// Output codes, the CFLOG's codes and the gate bits.
    ///
    /// # Shapes
    /// - `x`: `[batch, n, h, w]`; `out`: `[batch, n, h, w]`; `gate`: `[batch, n]`
    pub fn forward_trace(&self, x: Tensor<4>) -> MrbTrace {
        let [b, c, _, _] = x.dims();
        let cflog = self.cflog.forward_trace(x.clone());
        let f = cflog.out.clone();
        let gate = self.gate_bits(x.clone());
        if !ops::reference_kernels() {
            let out = ops::mrb_mux::mrb_mux(x, f, gate.clone(), self.mux == MuxInputs::Avg);
            return MrbTrace { cflog, gate, out };
        }
        let s = gate.clone().reshape([b, c, 1, 1]);
        let residual = match self.mux {
            MuxInputs::Avg => {
                let sum = x + f.clone();
                straight_through(
                    sum.clone().div_scalar(2.0),
                    sum.detach().div_scalar(2.0).floor(),
                )
            }
            MuxInputs::Skip => x,
        };
        let out = s.clone() * residual + (s.neg().add_scalar(1.0)) * f;
        MrbTrace { cflog, gate, out }
    }
}
