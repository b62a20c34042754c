//! The CPU kernels of training-mode batch norm + QReLU on dense NCHW `f32` slices: one pass for
//! the batch statistics and one for the codes, and two for the backward pass, in place of the
//! dozen element-wise passes (and their autodiff records) of the composed layers.
//!
//! `y = scale * acc`; per channel `mean`, biased `var` of `y` (accumulated in `f64`);
//! `z = y * a + b` with `a = gamma / sqrt(var + eps)`, `b = beta - mean * a`; the codes are
//! `clamp(floor(q z + 0.5), 0, q)`. The straight-through gradient of a code is `q` where
//! `0 <= z <= 1`, 0 elsewhere; behind it is batch norm's exact gradient.

use rayon::prelude::*;

use super::zeroed::zeroed;

/// The layout of a `[batch, channels, h, w]` tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planes {
    /// Images.
    pub batch: usize,
    /// Channels.
    pub channels: usize,
    /// `h * w`.
    pub plane: usize,
}

/// The layer's constants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BnQReluParams {
    /// The accumulator's scale.
    pub scale: f32,
    /// Batch norm's epsilon.
    pub epsilon: f32,
    /// The largest code, `2^bits - 1`.
    pub levels: f32,
}

/// What the forward pass computes besides the codes.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchStats {
    /// Per-channel mean of `scale * acc`.
    pub mean: Vec<f32>,
    /// Per-channel biased variance of `scale * acc`.
    pub var: Vec<f32>,
}

impl Planes {
    /// Elements in all.
    pub fn elements(&self) -> usize {
        self.batch * self.channels * self.plane
    }

    /// The planes of channel `c`, one per image.
    fn channel<'a>(&self, data: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> + 'a {
        let (plane, stride) = (self.plane, self.channels * self.plane);
        (0..self.batch).map(move |b| &data[b * stride + c * plane..][..plane])
    }

    fn count(&self) -> f64 {
        (self.batch * self.plane) as f64
    }
}

/// Each channel's affine `z = y * a + b` and the statistics it came from.
fn channel_affines(
    stats: &BatchStats,
    gamma: &[f32],
    beta: &[f32],
    p: BnQReluParams,
) -> Vec<ChannelAffine> {
    (0..gamma.len())
        .map(|c| {
            let inv_std = 1.0 / (stats.var[c] + p.epsilon).sqrt();
            let a = gamma[c] * inv_std;
            ChannelAffine {
                a,
                b: beta[c] - stats.mean[c] * a,
                mean: stats.mean[c],
                inv_std,
            }
        })
        .collect()
}

/// Lanes of the per-plane partial sums: independent `f32` accumulators the compiler keeps in
/// vector registers; each plane's lanes are then added in `f64`.
const LANES: usize = 16;

/// `(sum, sum of squares)` of `scale * v` over one plane.
fn moments(plane: &[f32], scale: f32) -> (f64, f64) {
    let (mut sums, mut squares) = ([0.0f32; LANES], [0.0f32; LANES]);
    let chunks = plane.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for j in 0..LANES {
            let y = chunk[j] * scale;
            sums[j] += y;
            squares[j] += y * y;
        }
    }
    let mut sum: f64 = sums.iter().map(|&v| v as f64).sum();
    let mut square: f64 = squares.iter().map(|&v| v as f64).sum();
    for &v in rest {
        let y = (v * scale) as f64;
        sum += y;
        square += y * y;
    }
    (sum, square)
}

/// One channel's batch-norm constants.
#[derive(Debug, Clone, Copy)]
struct ChannelAffine {
    /// `z = y * a + b`.
    a: f32,
    b: f32,
    mean: f32,
    inv_std: f32,
}

impl ChannelAffine {
    /// The straight-through gradient reaching `z` (`levels` inside `[0, 1]`, else 0) and the
    /// normalized input, for accumulator `v` and code gradient `g`.
    #[inline]
    fn at(&self, v: f32, g: f32, p: &BnQReluParams) -> (f32, f32) {
        let y = v * p.scale;
        let z = y * self.a + self.b;
        let gz = if (0.0..=1.0).contains(&z) {
            g * p.levels
        } else {
            0.0
        };
        (gz, (y - self.mean) * self.inv_std)
    }

    /// `(sum gz, sum gz * normalized)` over one plane.
    fn sums(&self, xs: &[f32], gs: &[f32], p: &BnQReluParams) -> (f64, f64) {
        let (mut dbeta, mut dgamma) = ([0.0f32; LANES], [0.0f32; LANES]);
        let (xc, gc) = (xs.chunks_exact(LANES), gs.chunks_exact(LANES));
        let (xr, gr) = (xc.remainder(), gc.remainder());
        for (x, g) in xc.zip(gc) {
            for j in 0..LANES {
                let (gz, normalized) = self.at(x[j], g[j], p);
                dbeta[j] += gz;
                dgamma[j] += gz * normalized;
            }
        }
        let mut sums = (
            dbeta.iter().map(|&v| v as f64).sum::<f64>(),
            dgamma.iter().map(|&v| v as f64).sum::<f64>(),
        );
        for (&x, &g) in xr.iter().zip(gr) {
            let (gz, normalized) = self.at(x, g, p);
            sums.0 += gz as f64;
            sums.1 += (gz * normalized) as f64;
        }
        sums
    }
}

/// `clamp(floor(v), 0, levels)` without a libm call: for `v >= 0` truncation is the floor.
#[inline]
fn code(v: f32, levels: f32) -> f32 {
    (v.clamp(0.0, levels + 0.5) as i32 as f32).min(levels)
}

/// Codes and batch statistics.
///
/// # Panics
/// If the slice lengths do not match `planes` (programming errors).
pub fn forward(
    planes: &Planes,
    acc: &[f32],
    gamma: &[f32],
    beta: &[f32],
    p: BnQReluParams,
) -> (Vec<f32>, BatchStats) {
    assert_eq!(acc.len(), planes.elements());
    assert!(gamma.len() == planes.channels && beta.len() == planes.channels);
    let moments: Vec<(f32, f32)> = (0..planes.channels)
        .into_par_iter()
        .map(|c| {
            let (mut sum, mut squares) = (0.0f64, 0.0f64);
            for plane in planes.channel(acc, c) {
                let (s, q) = moments(plane, p.scale);
                sum += s;
                squares += q;
            }
            let mean = sum / planes.count();
            let var = (squares / planes.count() - mean * mean).max(0.0);
            (mean as f32, var as f32)
        })
        .collect();
    let stats = BatchStats {
        mean: moments.iter().map(|m| m.0).collect(),
        var: moments.iter().map(|m| m.1).collect(),
    };
    let channels = channel_affines(&stats, gamma, beta, p);
    let mut codes = zeroed(acc.len());
    codes
        .par_chunks_mut(planes.plane)
        .zip(acc.par_chunks(planes.plane))
        .enumerate()
        .for_each(|(i, (out, input))| {
            let ChannelAffine { a, b, .. } = channels[i % planes.channels];
            for (o, &v) in out.iter_mut().zip(input) {
                let z = v * p.scale * a + b;
                *o = code(z * p.levels + 0.5, p.levels);
            }
        });
    (codes, stats)
}

/// Gradients of the codes' loss for `acc`, `gamma` and `beta`, given the codes' gradient `grad`
/// and the statistics of the forward pass.
///
/// # Panics
/// If the slice lengths do not match `planes` (programming errors).
pub fn backward(
    planes: &Planes,
    acc: &[f32],
    gamma: &[f32],
    beta: &[f32],
    stats: &BatchStats,
    grad: &[f32],
    p: BnQReluParams,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert!(acc.len() == planes.elements() && grad.len() == planes.elements());
    let channels = channel_affines(stats, gamma, beta, p);
    let sums: Vec<(f32, f32)> = (0..planes.channels)
        .into_par_iter()
        .map(|c| {
            let (mut dbeta, mut dgamma) = (0.0f64, 0.0f64);
            for (xs, gs) in planes.channel(acc, c).zip(planes.channel(grad, c)) {
                let (b, g) = channels[c].sums(xs, gs, &p);
                dbeta += b;
                dgamma += g;
            }
            (dbeta as f32, dgamma as f32)
        })
        .collect();
    let n = planes.count() as f32;
    let mut acc_grad = zeroed(acc.len());
    acc_grad
        .par_chunks_mut(planes.plane)
        .zip(
            acc.par_chunks(planes.plane)
                .zip(grad.par_chunks(planes.plane)),
        )
        .enumerate()
        .for_each(|(i, (out, (xs, gs)))| {
            let c = i % planes.channels;
            let ch = channels[c];
            let (mean_dbeta, mean_dgamma) = (sums[c].0 / n, sums[c].1 / n);
            let k = p.scale * gamma[c] * ch.inv_std;
            for (o, (&v, &g)) in out.iter_mut().zip(xs.iter().zip(gs)) {
                let (gz, normalized) = ch.at(v, g, &p);
                *o = k * (gz - mean_dbeta - normalized * mean_dgamma);
            }
        });
    let beta_grad = sums.iter().map(|s| s.0).collect();
    let gamma_grad = sums.iter().map(|s| s.1).collect();
    (acc_grad, gamma_grad, beta_grad)
}
