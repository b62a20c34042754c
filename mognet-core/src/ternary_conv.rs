//! `TernaryConv2d`: a bias-free 2-D convolution whose weights are ternarized by BTQ.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};

use crate::btq::{BtqConfig, Occupancy, Ternarized};
use crate::init::uniform_param;
use crate::ops::{self, ConvParams};

/// [`TernaryConv2d`] configuration.
#[derive(Config, Debug)]
pub struct TernaryConv2dConfig {
    /// `[in, out]` channels.
    pub channels: [usize; 2],
    /// Square kernel size. Default: 1.
    #[config(default = 1)]
    pub kernel_size: usize,
    /// Stride. Default: 1.
    #[config(default = 1)]
    pub stride: usize,
    /// Zero padding on each side. Default: 0.
    #[config(default = 0)]
    pub padding: usize,
    /// Groups; must divide both channel counts. Default: 1.
    #[config(default = 1)]
    pub groups: usize,
    /// Ternarizer. Default: `BtqConfig::new()` (delta 0.7).
    #[config(default = "BtqConfig::new()")]
    pub btq: BtqConfig,
    /// Seed of the proxy-weight initialisation (uniform in `+-1/sqrt(fan_in)`). Default: 0.
    #[config(default = 0)]
    pub seed: u64,
}

/// A convolution with ternary weights `alpha * t`, `t in {-1, 0, +1}`, and no bias.
#[derive(Module, Debug)]
pub struct TernaryConv2d {
    /// Real proxy weights `[out, in/groups, k, k]`.
    pub weight: Param<Tensor<4>>,
    /// Stride.
    pub stride: usize,
    /// Zero padding on each side.
    pub padding: usize,
    /// Groups.
    pub groups: usize,
    /// The ternarizer.
    #[module(skip)]
    pub btq: BtqConfig,
}

impl TernaryConv2dConfig {
    /// Builds the layer on `device`.
    ///
    /// # Panics
    /// If `groups` does not divide both channel counts, or a size is 0 (programming errors: the
    /// model config is validated before layers are built).
    pub fn init(&self, device: &Device) -> TernaryConv2d {
        let [c_in, c_out] = self.channels;
        assert!(
            self.groups > 0 && c_in % self.groups == 0 && c_out % self.groups == 0,
            "groups {} must divide channels {c_in} -> {c_out}",
            self.groups
        );
        assert!(self.kernel_size > 0 && self.stride > 0 && c_in > 0 && c_out > 0);
        let k = self.kernel_size;
        let fan_in = c_in / self.groups * k * k;
        let bound = 1.0 / (fan_in as f64).sqrt();
        TernaryConv2d {
            weight: uniform_param([c_out, c_in / self.groups, k, k], bound, self.seed, device),
            stride: self.stride,
            padding: self.padding,
            groups: self.groups,
            btq: self.btq.clone(),
        }
    }
}

impl TernaryConv2d {
    /// `[in, out]` channels.
    pub fn channels(&self) -> [usize; 2] {
        let [out, in_per_group, _, _] = self.weight.shape().dims();
        [in_per_group * self.groups, out]
    }

    /// Kernel size.
    pub fn kernel_size(&self) -> usize {
        self.weight.shape().dims::<4>()[2]
    }

    /// Stride, padding and groups.
    pub fn params(&self) -> ConvParams {
        ConvParams {
            stride: self.stride,
            padding: self.padding,
            groups: self.groups,
        }
    }

    /// The ternary codes and scale of the current weights.
    pub fn ternarized(&self) -> Ternarized<4> {
        self.btq.ternarize(self.weight.val())
    }

    /// Integer-valued accumulators `sum t * x` (exact in f32 when `x` holds small integers and
    /// the sums stay below 2^24) and the scale `alpha`: the layer's output is `alpha * acc`.
    ///
    /// # Shapes
    /// - `x`: `[batch, in, h, w]`
    /// - `acc`: `[batch, out, h', w']`, `alpha`: `[1]`
    pub fn accumulate(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<1>) {
        let Ternarized { codes, alpha } = self.ternarized();
        (ops::conv2d(x, codes, self.params()), alpha)
    }

    /// The convolution with ternary weights: `alpha * conv(x, t)`.
    ///
    /// # Shapes
    /// - `x`: `[batch, in, h, w]`
    /// - output: `[batch, out, h', w']`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let (acc, alpha) = self.accumulate(x);
        acc * alpha.reshape([1, 1, 1, 1])
    }

    /// The level-balancing regularizer of this layer's weights, shape `[1]`.
    pub fn regularizer(&self) -> Tensor<1> {
        self.btq.regularizer(self.weight.val())
    }

    /// Real occupancy of -1/0/+1 (reads back to the host).
    pub fn occupancy(&self) -> Occupancy {
        crate::btq::occupancy(self.ternarized().codes)
    }

    /// Number of ternary weights stored for this layer.
    pub fn num_weights(&self) -> usize {
        self.weight.shape().num_elements()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    /// A grouped 3x3 layer with hand-set weights against a direct scalar convolution.
    #[test]
    fn grouped_forward_matches_scalar_reference() {
        let device = Device::flex();
        let layer = TernaryConv2dConfig::new([4, 4])
            .with_kernel_size(3)
            .with_padding(1)
            .with_groups(2)
            .with_seed(5)
            .init(&device);
        let (h, w) = (5, 4);
        let x_host: Vec<f32> = (0..2 * 4 * h * w).map(|i| ((i * 7) % 8) as f32).collect();
        let x = Tensor::<4>::from_data(TensorData::new(x_host.clone(), [2, 4, h, w]), &device);
        let t = layer.ternarized();
        let codes: Vec<f32> = t.codes.into_data().try_into_vec_as::<f32>().unwrap();
        let alpha: f32 = t.alpha.into_data().try_into_vec_as::<f32>().unwrap()[0];
        let acc: Vec<f32> = layer
            .accumulate(x.clone())
            .0
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap();
        let out: Vec<f32> = layer
            .forward(x)
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap();
        for b in 0..2 {
            for o in 0..4 {
                let g = o / 2;
                for y in 0..h {
                    for xx in 0..w {
                        let mut s = 0.0f32;
                        for ci in 0..2 {
                            let c = g * 2 + ci;
                            for ky in 0..3 {
                                for kx in 0..3 {
                                    let (iy, ix) = (y as isize + ky - 1, xx as isize + kx - 1);
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                        continue;
                                    }
                                    let xi =
                                        x_host[((b * 4 + c) * h + iy as usize) * w + ix as usize];
                                    let wi =
                                        codes[((o * 2 + ci) * 3 + ky as usize) * 3 + kx as usize];
                                    s += xi * wi;
                                }
                            }
                        }
                        let idx = ((b * 4 + o) * h + y) * w + xx;
                        assert_eq!(acc[idx], s);
                        assert!((out[idx] - alpha * s).abs() < 1e-4);
                    }
                }
            }
        }
        assert!(codes.iter().all(|c| [-1.0, 0.0, 1.0].contains(c)));
        assert_eq!(layer.channels(), [4, 4]);
        assert_eq!(layer.num_weights(), 4 * 2 * 9);
    }

    #[test]
    fn same_seed_same_weights() {
        let device = Device::flex();
        let a = TernaryConv2dConfig::new([3, 8]).with_seed(1).init(&device);
        let b = TernaryConv2dConfig::new([3, 8]).with_seed(1).init(&device);
        assert_eq!(a.weight.val().into_data(), b.weight.val().into_data());
    }
}
