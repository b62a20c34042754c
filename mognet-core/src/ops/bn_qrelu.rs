//! Training-mode batch norm + QReLU as one operation ([`BnQReluBackend`]).
//!
//! The default body is the composition the layer used before: Burn's `batch_norm_train` on
//! `scale * acc`, then `clamp(floor(q z + 0.5), 0, q)` with the straight-through gradient `q`
//! inside `[0, 1]`. Flex runs [`super::bn_qrelu_cpu`] instead. `scale` receives no gradient (it is
//! the product of the layers' detached BTQ scales).

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, TensorMetadata, backend_extension, get_or_init_device_settings};
use burn::tensor::{FloatDType, Shape, Tensor};

/// Codes, and the batch mean and biased variance of `scale * acc`, each `[channels]`.
pub type BnQReluOutput<B> = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

/// Gradients for `acc`, `gamma` and `beta`.
pub type BnQReluGrads<B> = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

/// `scale` (shape `[1]`) reshaped to broadcast over `[batch, channels, h, w]`.
fn broadcast_scale<B: Backend>(scale: FloatTensor<B>) -> FloatTensor<B> {
    B::float_reshape(scale, Shape::new([1, 1, 1, 1]))
}

/// The composed forward: Burn's `batch_norm_train` on `scale * acc`, then the codes.
pub fn reference_forward<B: Backend>(
    acc: FloatTensor<B>,
    scale: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    epsilon: f64,
    levels: u32,
) -> BnQReluOutput<B> {
    let y = B::float_mul(acc, broadcast_scale::<B>(scale));
    let bn = B::batch_norm_train(y, gamma, beta, epsilon);
    let q = levels as f64;
    let shifted = B::float_add_scalar(B::float_mul_scalar(bn.output, q.into()), 0.5.into());
    let codes = B::float_clamp(B::float_floor(shifted), 0.0.into(), q.into());
    (codes, bn.mean, bn.variance)
}

/// The composed backward: the straight-through mask, then Burn's batch-norm gradient.
pub fn reference_backward<B: Backend>(
    acc: FloatTensor<B>,
    scale: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    mean: FloatTensor<B>,
    var: FloatTensor<B>,
    grad: FloatTensor<B>,
    epsilon: f64,
    levels: u32,
) -> BnQReluGrads<B> {
    let scale = broadcast_scale::<B>(scale);
    let y = B::float_mul(acc, scale.clone());
    let z = B::batch_norm(
        y.clone(),
        gamma.clone(),
        beta,
        mean.clone(),
        var.clone(),
        epsilon,
    );
    let bool_dtype = get_or_init_device_settings::<B>(&z.device()).bool_dtype;
    let inside = B::bool_and(
        B::float_greater_equal_elem(z.clone(), 0.0.into(), bool_dtype),
        B::float_lower_equal_elem(z.clone(), 1.0.into(), bool_dtype),
    );
    let dtype = FloatDType::from(z.dtype());
    let z_grad = B::float_mul_scalar(
        B::float_mul(grad, B::bool_into_float(inside, dtype)),
        (levels as f64).into(),
    );
    let bn = B::batch_norm_train_backward(y, gamma, mean, var, epsilon, z_grad);
    (B::float_mul(bn.x_grad, scale), bn.gamma_grad, bn.beta_grad)
}

/// The fused layer per backend.
#[backend_extension(Flex, Cube, NdArray, Autodiff)]
pub trait BnQReluBackend: Backend {
    /// Codes of `QReLU(BN(scale * acc))` with batch statistics, and those statistics.
    fn bn_qrelu_train(
        acc: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        levels: u32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        reference_forward::<Self>(acc, scale, gamma, beta, epsilon, levels)
    }

    /// Gradients of [`bn_qrelu_train`](Self::bn_qrelu_train) for `acc`, `gamma` and `beta`,
    /// given the codes' gradient and the statistics the forward returned.
    fn bn_qrelu_train_backward(
        acc: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        epsilon: f64,
        levels: u32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        reference_backward::<Self>(acc, scale, gamma, beta, mean, var, grad, epsilon, levels)
    }
}

impl BnQReluBackend for burn::backend::Cube {}
impl BnQReluBackend for burn::backend::NdArray {}

/// The fused layer on any device: codes, batch mean and biased batch variance.
///
/// # Shapes
/// - `acc`: `[batch, channels, h, w]`; `scale`: `[1]`; `gamma`, `beta`: `[channels]`
/// - codes: `[batch, channels, h, w]`; mean, variance: `[channels]`
pub fn bn_qrelu_train(
    acc: Tensor<4>,
    scale: Tensor<1>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
    levels: u32,
) -> (Tensor<4>, Tensor<1>, Tensor<1>) {
    let (codes, mean, var) = <burn::backend::Dispatch as BnQReluBackend>::bn_qrelu_train(
        acc.into_dispatch(),
        scale.detach().into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
        levels,
    );
    (
        Tensor::from_dispatch(codes),
        Tensor::from_dispatch(mean),
        Tensor::from_dispatch(var),
    )
}
