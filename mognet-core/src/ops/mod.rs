//! mognet's own Burn operations (backend extensions, Burn's `extension` feature), each a trait
//! whose default body composes Burn operations as the layers did before (the reference, and what
//! WGPU and ndarray run), with CPU kernels for Flex and a backward pass of its own under autodiff:
//!
//! - [`TernaryConvBackend::ternary_conv2d`], the bias-free grouped convolution of every quantized
//!   layer ([`conv_cpu`]): forward bit-identical to Burn's `conv2d` on mognet's inputs (integer
//!   activations times ternary codes: every partial sum is an exact integer in `f32` while it
//!   stays below 2^24), gradients within `f32` rounding;
//! - [`bn_qrelu::BnQReluBackend`], training-mode batch norm + QReLU ([`bn_qrelu_cpu`]);
//! - [`mrb_mux::MrbMuxBackend`], the MRB's multiplexer ([`mrb_mux_cpu`]).
//!
//! `tests.rs` holds each against its reference.

pub mod bn_qrelu;
mod bn_qrelu_autodiff;
pub mod bn_qrelu_cpu;
pub mod conv_cpu;
mod flex;
pub mod matmul;
pub mod mrb_mux;
mod mrb_mux_autodiff;
pub mod mrb_mux_cpu;
mod ternary_conv_autodiff;
mod zeroed;

use std::sync::atomic::{AtomicBool, Ordering};

use burn::backend::TensorMetadata;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, backend_extension};
use burn::tensor::Tensor;
use burn::tensor::ops::ConvOptions;

/// Stride, padding and groups of a square-kernel convolution (no dilation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvParams {
    /// Stride on both axes.
    pub stride: usize,
    /// Zero padding on each side of both axes.
    pub padding: usize,
    /// Groups.
    pub groups: usize,
}

impl ConvParams {
    /// Burn's options for the same convolution.
    pub fn options(&self) -> ConvOptions<2> {
        ConvOptions::new([self.stride; 2], [self.padding; 2], [1, 1], self.groups)
    }

    /// The kernels' geometry for input shape `x` and weight shape `w`.
    pub fn geometry(&self, x: [usize; 4], w: [usize; 4]) -> conv_cpu::ConvGeometry {
        let [batch, c_in, h, width] = x;
        let [c_out, _, kernel, _] = w;
        conv_cpu::ConvGeometry {
            batch,
            c_in,
            c_out,
            groups: self.groups,
            kernel,
            stride: self.stride,
            padding: self.padding,
            h,
            w: width,
        }
    }
}

fn dims4<T: TensorMetadata>(t: &T) -> [usize; 4] {
    t.shape().dims()
}

/// The ternary convolution and its two gradients, per backend.
#[backend_extension(Flex, Cube: cfg(feature = "wgpu"), NdArray: cfg(feature = "ndarray"), Autodiff)]
pub trait TernaryConvBackend: Backend {
    /// `conv2d(x, weight)` without bias, `x` `[batch, c_in, h, w]`, `weight` `[c_out,
    /// c_in/groups, k, k]` (square kernel).
    fn ternary_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        params: ConvParams,
    ) -> FloatTensor<Self> {
        Self::conv2d(x, weight, None, params.options())
    }

    /// The gradient of [`ternary_conv2d`](Self::ternary_conv2d) with respect to `x`.
    fn ternary_conv2d_x_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        params: ConvParams,
    ) -> FloatTensor<Self> {
        Self::conv2d_x_backward(x, weight, grad, params.options())
    }

    /// The gradient of [`ternary_conv2d`](Self::ternary_conv2d) with respect to `weight`.
    fn ternary_conv2d_weight_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        params: ConvParams,
    ) -> FloatTensor<Self> {
        Self::conv2d_weight_backward(x, weight, grad, params.options())
    }
}

#[cfg(feature = "wgpu")]
impl TernaryConvBackend for burn::backend::Cube {}
#[cfg(feature = "ndarray")]
impl TernaryConvBackend for burn::backend::NdArray {}

/// Set: the layers run the composed reference instead of the custom operations.
static REFERENCE_KERNELS: AtomicBool = AtomicBool::new(false);

/// Makes every layer of this process run the composed reference (`true`) or mognet's own
/// operations (`false`, the default). For benchmarks and for bisecting a numerical question; the
/// two give the same forward results.
pub fn use_reference_kernels(reference: bool) {
    REFERENCE_KERNELS.store(reference, Ordering::Relaxed);
}

/// Whether the layers run the composed reference (see [`use_reference_kernels`]).
pub fn reference_kernels() -> bool {
    REFERENCE_KERNELS.load(Ordering::Relaxed)
}

/// The convolution of mognet's quantized layers: [`ternary_conv2d`], or
/// [`ternary_conv2d_reference`] after `use_reference_kernels(true)`.
///
/// # Shapes
/// As [`ternary_conv2d`].
pub fn conv2d(x: Tensor<4>, weight: Tensor<4>, params: ConvParams) -> Tensor<4> {
    if reference_kernels() {
        ternary_conv2d_reference(x, weight, params)
    } else {
        ternary_conv2d(x, weight, params)
    }
}

/// The ternary convolution on any device, through [`TernaryConvBackend`].
///
/// # Shapes
/// - `x`: `[batch, c_in, h, w]`
/// - `weight`: `[c_out, c_in / groups, k, k]`
/// - output: `[batch, c_out, h', w']`
pub fn ternary_conv2d(x: Tensor<4>, weight: Tensor<4>, params: ConvParams) -> Tensor<4> {
    Tensor::from_dispatch(
        <burn::backend::Dispatch as TernaryConvBackend>::ternary_conv2d(
            x.into_dispatch(),
            weight.into_dispatch(),
            params,
        ),
    )
}

/// The reference: the same convolution as Burn's own `conv2d` and its derived gradients.
///
/// # Shapes
/// As [`ternary_conv2d`].
pub fn ternary_conv2d_reference(x: Tensor<4>, weight: Tensor<4>, params: ConvParams) -> Tensor<4> {
    burn::tensor::module::conv2d(x, weight, None, params.options())
}

#[cfg(test)]
mod tests;
