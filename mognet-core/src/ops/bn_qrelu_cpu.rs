//! The CPU kernels of training-mode batch norm + QReLU on dense NCHW `f32` slices: one pass for
//! the batch statistics and one for the codes, and two for the backward pass, in place of the
//! dozen element-wise passes (and their autodiff records) of the composed layers.
//!
//! The forward pass computes [`super::bn_qrelu`]'s reference operations in the same order: exact
//! `f64` sums of the integer accumulators for the statistics of `y = scale * acc`,
//! `z = y * a + b` with `a = gamma * (1 / sqrt(var + eps))`, `b = beta - mean * a`, and the codes
//! `clamp(floor(q z + 0.5), 0, q)`, so its codes and statistics are the reference's, bit for bit. The straight-through gradient of a code is `q` where
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

/// Lanes of the per-plane moments: independent `f64` accumulators the compiler keeps in vector
/// registers.
const MOMENT_LANES: usize = 8;

/// Lanes of the backward pass's per-plane partial sums (`f32`, each plane's lanes then added in
/// `f64`).
const LANES: usize = 16;

/// `(sum, sum of squares)` of one plane of accumulators, in `f64`: exact for integers (each
/// square has at most 48 significant bits), so the order of the additions does not matter.
fn moments(plane: &[f32]) -> (f64, f64) {
    let (mut sums, mut squares) = ([0.0f64; MOMENT_LANES], [0.0f64; MOMENT_LANES]);
    let chunks = plane.chunks_exact(MOMENT_LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for j in 0..MOMENT_LANES {
            let v = chunk[j] as f64;
            sums[j] += v;
            squares[j] += v * v;
        }
    }
    let mut sum: f64 = sums.iter().sum();
    let mut square: f64 = squares.iter().sum();
    for &v in rest {
        let v = v as f64;
        sum += v;
        square += v * v;
    }
    (sum, square)
}

/// The statistics of `scale * acc` from a channel's exact sums, in the reference's operations:
/// `mean = (s1 / n) * scale`, `var = max(s2 / n - (s1 / n)^2, 0) * scale * scale`.
fn statistics(sum: f64, squares: f64, count: f64, scale: f32) -> (f32, f32) {
    let scale = scale as f64;
    let mean = sum / count;
    let var = (squares / count - mean * mean).max(0.0);
    ((mean * scale) as f32, (var * scale * scale) as f32)
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
    /// The normalized pre-activation of accumulator `v`: `(v * scale) * a + b`.
    #[inline]
    fn z(&self, v: f32, p: &BnQReluParams) -> f32 {
        v * p.scale * self.a + self.b
    }

    /// The straight-through gradient reaching `z` (`levels` inside `[0, 1]`, else 0) and the
    /// normalized input, for accumulator `v` and code gradient `g`.
    #[inline]
    fn at(&self, v: f32, g: f32, p: &BnQReluParams) -> (f32, f32) {
        let z = self.z(v, p);
        let gz = if (0.0..=1.0).contains(&z) {
            g * p.levels
        } else {
            0.0
        };
        (gz, (v * p.scale - self.mean) * self.inv_std)
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
                let (s, q) = moments(plane);
                sum += s;
                squares += q;
            }
            statistics(sum, squares, planes.count(), p.scale)
        })
        .collect();
    let stats = BatchStats {
        mean: moments.iter().map(|m| m.0).collect(),
        var: moments.iter().map(|m| m.1).collect(),
    };
    let channels = channel_affines(&stats, gamma, beta, p);
    let codes = map_channels(planes, acc, &channels, |ch, v| {
        code(ch.z(v, &p) * p.levels + 0.5, p.levels)
    });
    (codes, stats)
}

/// `f(channel's affine, v)` for every accumulator `v`.
fn map_channels(
    planes: &Planes,
    acc: &[f32],
    channels: &[ChannelAffine],
    f: impl Fn(&ChannelAffine, f32) -> f32 + Sync,
) -> Vec<f32> {
    let mut out = zeroed(acc.len());
    out.par_chunks_mut(planes.plane)
        .zip(acc.par_chunks(planes.plane))
        .enumerate()
        .for_each(|(i, (out, input))| {
            let channel = &channels[i % planes.channels];
            for (o, &v) in out.iter_mut().zip(input) {
                *o = f(channel, v);
            }
        });
    out
}

/// The pre-activations `z` the forward pass quantizes, for tests against the reference's.
#[cfg(test)]
pub fn pre_activations(
    planes: &Planes,
    acc: &[f32],
    gamma: &[f32],
    beta: &[f32],
    stats: &BatchStats,
    p: BnQReluParams,
) -> Vec<f32> {
    let channels = channel_affines(stats, gamma, beta, p);
    map_channels(planes, acc, &channels, |ch, v| ch.z(v, &p))
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
