//! The CPU kernels of the MRB's multiplexer on dense NCHW `f32` slices:
//! `y = s r + (1 - s) f` per channel, `r = floor((x + f) / 2)` (`average`) or `r = x`, with
//! `s` one gate value per image and channel. The backward pass is the straight-through one:
//! `r` passes `1/2` of its gradient to `x` and to `f` (or all of it to `x`).

use rayon::prelude::*;

use super::zeroed::zeroed;

use super::bn_qrelu_cpu::Planes;

/// `r` from `x` and `f`: the codes are non-negative, so truncation is the floor.
#[inline]
fn residual(x: f32, f: f32, average: bool) -> f32 {
    if average {
        ((x + f) * 0.5) as i32 as f32
    } else {
        x
    }
}

/// The multiplexer's output.
///
/// # Panics
/// If the slice lengths do not match `planes` (programming errors).
pub fn forward(planes: &Planes, x: &[f32], f: &[f32], gate: &[f32], average: bool) -> Vec<f32> {
    assert!(x.len() == planes.elements() && f.len() == planes.elements());
    assert_eq!(gate.len(), planes.batch * planes.channels);
    let mut y = zeroed(x.len());
    y.par_chunks_mut(planes.plane)
        .zip(x.par_chunks(planes.plane).zip(f.par_chunks(planes.plane)))
        .enumerate()
        .for_each(|(i, (out, (xs, fs)))| {
            let s = gate[i];
            for (o, (&xv, &fv)) in out.iter_mut().zip(xs.iter().zip(fs)) {
                *o = s * residual(xv, fv, average) + (1.0 - s) * fv;
            }
        });
    y
}

/// Gradients for `x`, `f` and the gate, given the output gradient `grad`.
///
/// # Panics
/// If the slice lengths do not match `planes` (programming errors).
pub fn backward(
    planes: &Planes,
    x: &[f32],
    f: &[f32],
    gate: &[f32],
    grad: &[f32],
    average: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert!(
        x.len() == planes.elements()
            && f.len() == planes.elements()
            && grad.len() == planes.elements()
    );
    assert_eq!(gate.len(), planes.batch * planes.channels);
    // The residual's share of its gradient for x and for f.
    let (x_share, f_share) = if average { (0.5, 0.5) } else { (1.0, 0.0) };
    let mut x_grad = zeroed(x.len());
    let mut f_grad = zeroed(x.len());
    let gate_grad: Vec<f32> = x_grad
        .par_chunks_mut(planes.plane)
        .zip(f_grad.par_chunks_mut(planes.plane))
        .zip(x.par_chunks(planes.plane).zip(f.par_chunks(planes.plane)))
        .zip(grad.par_chunks(planes.plane))
        .enumerate()
        .map(|(i, (((gx, gf), (xs, fs)), gs))| {
            let s = gate[i];
            let (to_x, to_f) = (s * x_share, s * f_share + 1.0 - s);
            let mut sum = 0.0f64;
            for j in 0..xs.len() {
                let g = gs[j];
                gx[j] = g * to_x;
                gf[j] = g * to_f;
                sum += (g * (residual(xs[j], fs[j], average) - fs[j])) as f64;
            }
            sum as f32
        })
        .collect();
    (x_grad, f_grad, gate_grad)
}
