//! The CPU kernels of the ternary convolution: forward, input gradient and weight gradient of a
//! grouped 2-D convolution on dense NCHW `f32` slices, as per-image GEMMs (im2col for kernels
//! larger than 1x1) spread over images with rayon.
//!
//! Every result is independent of the thread count: images are split into fixed chunks and the
//! weight gradient's per-chunk partial sums are added in chunk order.

use rayon::prelude::*;

use super::matmul::{MatRef, matmul};
use super::zeroed::zeroed;

/// Images per task of the weight gradient: a fixed count, so that the order of the partial sums,
/// and so the bits of the result, do not depend on the number of threads.
const WEIGHT_GRAD_CHUNK: usize = 8;

/// The shape of one grouped convolution (square kernel, same stride and padding on both axes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Images.
    pub batch: usize,
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Groups; divides both channel counts.
    pub groups: usize,
    /// Kernel size.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on each side.
    pub padding: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
}

impl ConvGeometry {
    /// Output `[height, width]`.
    pub fn out_size(&self) -> [usize; 2] {
        let out = |n: usize| (n + 2 * self.padding - self.kernel) / self.stride + 1;
        [out(self.h), out(self.w)]
    }

    fn c_in_group(&self) -> usize {
        self.c_in / self.groups
    }

    fn c_out_group(&self) -> usize {
        self.c_out / self.groups
    }

    /// Rows of a group's im2col matrix: its input channels times the kernel's taps.
    fn patch(&self) -> usize {
        self.c_in_group() * self.kernel * self.kernel
    }

    fn plane_in(&self) -> usize {
        self.h * self.w
    }

    fn plane_out(&self) -> usize {
        let [oh, ow] = self.out_size();
        oh * ow
    }

    /// A 1x1 convolution with stride 1 and no padding reads its input as the im2col matrix.
    fn is_pointwise(&self) -> bool {
        self.kernel == 1 && self.stride == 1 && self.padding == 0
    }

    fn image_in(&self) -> usize {
        self.c_in * self.plane_in()
    }

    fn image_out(&self) -> usize {
        self.c_out * self.plane_out()
    }

    /// Element counts of input, weight and output.
    pub fn sizes(&self) -> [usize; 3] {
        [
            self.batch * self.image_in(),
            self.c_out * self.patch(),
            self.batch * self.image_out(),
        ]
    }

    /// Checks what the kernels assume (programming errors if broken).
    fn check(&self, lens: [usize; 3]) {
        assert!(
            self.groups > 0
                && self.c_in.is_multiple_of(self.groups)
                && self.c_out.is_multiple_of(self.groups)
        );
        assert!(self.kernel > 0 && self.stride > 0);
        assert!(
            self.h + 2 * self.padding >= self.kernel && self.w + 2 * self.padding >= self.kernel
        );
        assert_eq!(lens, self.sizes(), "tensor sizes do not match {self:?}");
    }

    /// The output columns `lo..hi` whose input column `ox * stride + kx - padding` lies inside
    /// the image, for kernel column `kx`.
    fn valid_columns(&self, kx: usize) -> (usize, usize) {
        let [_, ow] = self.out_size();
        let first = |ox: usize| ox * self.stride + kx;
        let lo = (0..ow).find(|&ox| first(ox) >= self.padding).unwrap_or(ow);
        let hi = (lo..ow)
            .find(|&ox| first(ox) - self.padding >= self.w)
            .unwrap_or(ow);
        (lo, hi)
    }

    /// The input row of output row `oy` for kernel row `ky`, if inside the image.
    fn input_row(&self, oy: usize, ky: usize) -> Option<usize> {
        (oy * self.stride + ky)
            .checked_sub(self.padding)
            .filter(|&iy| iy < self.h)
    }

    /// Stride 1 and `same` padding: each tap's im2col row is the input plane shifted by
    /// `(ky - padding, kx - padding)`, which [`same_tap`] copies as one block.
    fn is_same(&self) -> bool {
        self.stride == 1 && 2 * self.padding + 1 == self.kernel
    }

    /// Writes group `g`'s im2col matrix of one image, `patch x plane_out`, into `col`.
    fn im2col(&self, image: &[f32], g: usize, col: &mut [f32]) {
        if self.is_same() {
            let (k, plane) = (self.kernel, self.plane_in());
            for ci in 0..self.c_in_group() {
                let src = &image[(g * self.c_in_group() + ci) * plane..][..plane];
                for tap in 0..k * k {
                    let row = &mut col[(ci * k * k + tap) * plane..][..plane];
                    let tap = self.same_tap(tap);
                    tap.clear_outside(row);
                    row[tap.start..tap.end].copy_from_slice(&src[tap.shifted()]);
                    tap.clear_wrapped(row);
                }
            }
            return;
        }
        let [oh, ow] = self.out_size();
        let (k, s) = (self.kernel, self.stride);
        for ci in 0..self.c_in_group() {
            let plane = &image[(g * self.c_in_group() + ci) * self.plane_in()..][..self.plane_in()];
            for ky in 0..k {
                for kx in 0..k {
                    let (lo, hi) = self.valid_columns(kx);
                    let row = &mut col[((ci * k + ky) * k + kx) * oh * ow..][..oh * ow];
                    for (oy, out) in row.chunks_exact_mut(ow).enumerate() {
                        let Some(iy) = self.input_row(oy, ky) else {
                            out.fill(0.0);
                            continue;
                        };
                        out[..lo].fill(0.0);
                        out[hi..].fill(0.0);
                        let x0 = iy * self.w + lo * s + kx - self.padding;
                        if s == 1 {
                            out[lo..hi].copy_from_slice(&plane[x0..x0 + hi - lo]);
                        } else {
                            for (i, o) in out[lo..hi].iter_mut().enumerate() {
                                *o = plane[x0 + i * s];
                            }
                        }
                    }
                }
            }
        }
    }

    /// Adds group `g`'s im2col-shaped gradient `col` back onto the image gradient `image`
    /// (clearing, on the `same` path, the entries of `col` that fall outside the image).
    fn col2im(&self, col: &mut [f32], g: usize, image: &mut [f32]) {
        if self.is_same() {
            let (k, plane) = (self.kernel, self.plane_in());
            for ci in 0..self.c_in_group() {
                let dst = &mut image[(g * self.c_in_group() + ci) * plane..][..plane];
                for tap in 0..k * k {
                    let row = &mut col[(ci * k * k + tap) * plane..][..plane];
                    let tap = self.same_tap(tap);
                    tap.clear_wrapped(row);
                    for (d, v) in dst[tap.shifted()].iter_mut().zip(&row[tap.start..tap.end]) {
                        *d += v;
                    }
                }
            }
            return;
        }
        let [oh, ow] = self.out_size();
        let (k, s) = (self.kernel, self.stride);
        let plane_in = self.plane_in();
        for ci in 0..self.c_in_group() {
            let plane = &mut image[(g * self.c_in_group() + ci) * plane_in..][..plane_in];
            for ky in 0..k {
                for kx in 0..k {
                    let (lo, hi) = self.valid_columns(kx);
                    let row = &col[((ci * k + ky) * k + kx) * oh * ow..][..oh * ow];
                    for (oy, values) in row.chunks_exact(ow).enumerate() {
                        let Some(iy) = self.input_row(oy, ky) else {
                            continue;
                        };
                        let x0 = iy * self.w + lo * s + kx - self.padding;
                        if s == 1 {
                            let line = &mut plane[x0..x0 + hi - lo];
                            for (p, v) in line.iter_mut().zip(&values[lo..hi]) {
                                *p += v;
                            }
                        } else {
                            for (i, v) in values[lo..hi].iter().enumerate() {
                                plane[x0 + i * s] += v;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Images per parallel task of the forward and input-gradient kernels: about four tasks per
    /// thread. Each image is computed on its own, so this changes no result.
    fn images_per_task(&self) -> usize {
        self.batch.div_ceil(4 * rayon::current_num_threads()).max(1)
    }

    /// The im2col buffer of one task (none for a pointwise convolution).
    fn scratch(&self) -> Vec<f32> {
        if self.is_pointwise() {
            Vec::new()
        } else {
            vec![0.0; self.patch() * self.plane_out()]
        }
    }

    /// Group `g`'s weights, `c_out_group x patch`.
    fn group_weight<'a>(&self, weight: &'a [f32], g: usize) -> MatRef<'a> {
        let rows = self.c_out_group();
        MatRef::rows(
            &weight[g * rows * self.patch()..][..rows * self.patch()],
            rows,
            self.patch(),
        )
    }

    /// Group `g`'s channels of one image's input, `c_in_group x plane_in`: the im2col matrix of a
    /// pointwise convolution.
    fn group_in<'a>(&self, image: &'a [f32], g: usize) -> MatRef<'a> {
        let rows = self.c_in_group();
        let plane = self.plane_in();
        MatRef::rows(&image[g * rows * plane..][..rows * plane], rows, plane)
    }

    /// Group `g`'s channels of one image's output (or output gradient), `c_out_group x plane_out`.
    fn group_out<'a>(&self, out: &'a [f32], g: usize) -> MatRef<'a> {
        let rows = self.c_out_group();
        let plane = self.plane_out();
        MatRef::rows(&out[g * rows * plane..][..rows * plane], rows, plane)
    }
}

/// One tap of a stride-1 `same` convolution: output pixel `o` (row-major, `w` wide) reads input
/// pixel `o + shift`, where `shift = dy * w + dx`; outputs `start..end` have that pixel inside the
/// plane, and of those, the `|dx|` pixels at one end of each row wrapped into the next or
/// previous row and read nothing.
#[derive(Debug, Clone, Copy)]
struct SameTap {
    shift: isize,
    dx: isize,
    w: usize,
    start: usize,
    end: usize,
}

impl SameTap {
    /// The input pixels of outputs `start..end`.
    fn shifted(&self) -> std::ops::Range<usize> {
        let at = |o: usize| (o as isize + self.shift) as usize;
        at(self.start)..at(self.end)
    }

    /// Zeroes the outputs before `start` and from `end` on.
    fn clear_outside(&self, row: &mut [f32]) {
        row[..self.start].fill(0.0);
        row[self.end..].fill(0.0);
    }

    /// Zeroes, in `start..end`, the pixels of each row that read across the image's edge.
    fn clear_wrapped(&self, row: &mut [f32]) {
        let (w, dx) = (self.w, self.dx.unsigned_abs());
        if dx == 0 {
            return;
        }
        for line in row[..self.end].chunks_mut(w) {
            let edge = if self.dx < 0 {
                0..dx.min(line.len())
            } else {
                w.saturating_sub(dx).min(line.len())..line.len()
            };
            line[edge].fill(0.0);
        }
    }
}

impl ConvGeometry {
    /// Tap `tap` (row-major over the kernel) of a `same` convolution.
    fn same_tap(&self, tap: usize) -> SameTap {
        let (k, p) = (self.kernel, self.padding as isize);
        let (dy, dx) = ((tap / k) as isize - p, (tap % k) as isize - p);
        let (w, n) = (self.w as isize, (self.h * self.w) as isize);
        let shift = dy * w + dx;
        SameTap {
            shift,
            dx,
            w: self.w,
            start: (-shift).clamp(0, n) as usize,
            end: (n - shift).clamp(0, n) as usize,
        }
    }
}

/// `y = conv(x, weight)`: `x` is `[batch, c_in, h, w]`, `weight` `[c_out, c_in/groups, k, k]`,
/// the result `[batch, c_out, oh, ow]`, all dense row-major.
pub fn forward(geo: &ConvGeometry, x: &[f32], weight: &[f32]) -> Vec<f32> {
    let mut y = zeroed(geo.sizes()[2]);
    geo.check([x.len(), weight.len(), y.len()]);
    let plane = geo.plane_out();
    let cog = geo.c_out_group();
    let per_task = geo.images_per_task();
    y.par_chunks_mut(geo.image_out() * per_task)
        .zip(x.par_chunks(geo.image_in() * per_task))
        .for_each(|(outs, images)| {
            let col = &mut geo.scratch();
            let pairs = outs
                .chunks_exact_mut(geo.image_out())
                .zip(images.chunks_exact(geo.image_in()));
            for (out, image) in pairs {
                for g in 0..geo.groups {
                    let dst = &mut out[g * cog * plane..][..cog * plane];
                    let rhs = if geo.is_pointwise() {
                        geo.group_in(image, g)
                    } else {
                        geo.im2col(image, g, col);
                        MatRef::rows(col, geo.patch(), plane)
                    };
                    matmul(dst, geo.group_weight(weight, g), rhs, false);
                }
            }
        });
    y
}

/// The gradient of `conv(x, weight)` with respect to `x`, given the output gradient `grad`.
pub fn x_backward(geo: &ConvGeometry, weight: &[f32], grad: &[f32]) -> Vec<f32> {
    let mut gx = zeroed(geo.sizes()[0]);
    geo.check([gx.len(), weight.len(), grad.len()]);
    let plane = geo.plane_out();
    let per_task = geo.images_per_task();
    gx.par_chunks_mut(geo.image_in() * per_task)
        .zip(grad.par_chunks(geo.image_out() * per_task))
        .for_each(|(image_grads, out_grads)| {
            let col = &mut geo.scratch();
            let pairs = image_grads
                .chunks_exact_mut(geo.image_in())
                .zip(out_grads.chunks_exact(geo.image_out()));
            for (image_grad, out_grad) in pairs {
                for g in 0..geo.groups {
                    let lhs = geo.group_weight(weight, g).t();
                    let rhs = geo.group_out(out_grad, g);
                    if geo.is_pointwise() {
                        let rows = geo.c_in_group();
                        let dst = &mut image_grad[g * rows * plane..][..rows * plane];
                        matmul(dst, lhs, rhs, false);
                    } else {
                        matmul(col, lhs, rhs, false);
                        geo.col2im(col, g, image_grad);
                    }
                }
            }
        });
    gx
}

/// The gradient of `conv(x, weight)` with respect to `weight`, given the output gradient `grad`.
pub fn weight_backward(geo: &ConvGeometry, x: &[f32], grad: &[f32]) -> Vec<f32> {
    let weight_len = geo.sizes()[1];
    geo.check([x.len(), weight_len, grad.len()]);
    let plane = geo.plane_out();
    let patch = geo.patch();
    let chunk_images = WEIGHT_GRAD_CHUNK;
    let partials: Vec<Vec<f32>> = x
        .par_chunks(geo.image_in() * chunk_images)
        .zip(grad.par_chunks(geo.image_out() * chunk_images))
        .map(|(images, out_grads)| {
            let mut gw = vec![0.0; weight_len];
            let mut col = geo.scratch();
            let pairs = images
                .chunks(geo.image_in())
                .zip(out_grads.chunks(geo.image_out()));
            for (i, (image, out_grad)) in pairs.enumerate() {
                for g in 0..geo.groups {
                    let rows = geo.c_out_group();
                    let dst = &mut gw[g * rows * patch..][..rows * patch];
                    let cols = if geo.is_pointwise() {
                        geo.group_in(image, g)
                    } else {
                        geo.im2col(image, g, &mut col);
                        MatRef::rows(&col, patch, plane)
                    };
                    matmul(dst, geo.group_out(out_grad, g), cols.t(), i > 0);
                }
            }
            gw
        })
        .collect();
    let mut total = vec![0.0; weight_len];
    for partial in partials {
        for (t, p) in total.iter_mut().zip(partial) {
            *t += p;
        }
    }
    total
}
