//! The MRB's multiplexer as one operation ([`MrbMuxBackend`]): `y = s r + (1 - s) f` with
//! `r = floor((x + f) / 2)` (`average`, the default mux) or `r = x`, and its straight-through
//! backward. The default body composes Burn operations as the layer did before; Flex runs
//! [`super::mrb_mux_cpu`].

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, TensorMetadata, backend_extension};
use burn::tensor::{Shape, Tensor};

/// The gate `[batch, channels]` as `[batch, channels, 1, 1]`.
fn gate4<B: Backend>(gate: FloatTensor<B>) -> FloatTensor<B> {
    let [b, c] = gate.shape().dims();
    B::float_reshape(gate, Shape::new([b, c, 1, 1]))
}

/// `r` composed of Burn operations.
fn residual<B: Backend>(x: FloatTensor<B>, f: FloatTensor<B>, average: bool) -> FloatTensor<B> {
    if average {
        B::float_floor(B::float_div_scalar(B::float_add(x, f), 2.0.into()))
    } else {
        x
    }
}

/// The composed forward.
pub fn reference_forward<B: Backend>(
    x: FloatTensor<B>,
    f: FloatTensor<B>,
    gate: FloatTensor<B>,
    average: bool,
) -> FloatTensor<B> {
    let s = gate4::<B>(gate);
    let r = residual::<B>(x, f.clone(), average);
    let not_s = B::float_add_scalar(B::float_neg(s.clone()), 1.0.into());
    B::float_add(B::float_mul(s, r), B::float_mul(not_s, f))
}

/// The composed backward: gradients for `x`, `f` and the gate.
pub fn reference_backward<B: Backend>(
    x: FloatTensor<B>,
    f: FloatTensor<B>,
    gate: FloatTensor<B>,
    grad: FloatTensor<B>,
    average: bool,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let [b, c] = gate.shape().dims();
    let s = gate4::<B>(gate);
    // The residual's share of its gradient for x and for f.
    let (x_share, f_share) = if average { (0.5, 0.5) } else { (1.0, 0.0) };
    let to_x = B::float_mul_scalar(s.clone(), x_share.into());
    let not_s = B::float_add_scalar(B::float_neg(s.clone()), 1.0.into());
    let to_f = B::float_add(B::float_mul_scalar(s.clone(), f_share.into()), not_s);
    let r = residual::<B>(x, f.clone(), average);
    let [_, _, h, w] = f.shape().dims();
    let per_gate = B::float_mul(grad.clone(), B::float_sub(r, f));
    let gate_grad = B::float_sum_dim(B::float_reshape(per_gate, Shape::new([b, c, h * w])), 2);
    (
        B::float_mul(grad.clone(), to_x),
        B::float_mul(grad, to_f),
        B::float_reshape(gate_grad, Shape::new([b, c])),
    )
}

/// The multiplexer per backend.
#[backend_extension(Flex, Cube: cfg(feature = "wgpu"), NdArray: cfg(feature = "ndarray"), Autodiff)]
pub trait MrbMuxBackend: Backend {
    /// `y = s r + (1 - s) f`.
    fn mrb_mux(
        x: FloatTensor<Self>,
        f: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        average: bool,
    ) -> FloatTensor<Self> {
        reference_forward::<Self>(x, f, gate, average)
    }

    /// Gradients of [`mrb_mux`](Self::mrb_mux) for `x`, `f` and the gate.
    fn mrb_mux_backward(
        x: FloatTensor<Self>,
        f: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        average: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        reference_backward::<Self>(x, f, gate, grad, average)
    }
}

#[cfg(feature = "wgpu")]
impl MrbMuxBackend for burn::backend::Cube {}
#[cfg(feature = "ndarray")]
impl MrbMuxBackend for burn::backend::NdArray {}

/// The multiplexer on any device.
///
/// # Shapes
/// - `x`, `f`: `[batch, channels, h, w]`; `gate`: `[batch, channels]`
/// - output: `[batch, channels, h, w]`
pub fn mrb_mux(x: Tensor<4>, f: Tensor<4>, gate: Tensor<2>, average: bool) -> Tensor<4> {
    Tensor::from_dispatch(<burn::backend::Dispatch as MrbMuxBackend>::mrb_mux(
        x.into_dispatch(),
        f.into_dispatch(),
        gate.into_dispatch(),
        average,
    ))
}
