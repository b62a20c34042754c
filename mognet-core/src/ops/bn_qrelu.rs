//! Training-mode batch norm + QReLU as one operation ([`BnQReluBackend`]).
//!
//! The default body is the composed reference, in Burn operations:
//! - statistics of the accumulators in `f64`: `s1 = sum acc`, `s2 = sum acc^2` per channel, then
//!   `mean = (s1 / n) * scale` and `var = max(s2 / n - (s1 / n)^2, 0) * scale * scale`, rounded to
//!   `f32`. The accumulators are integers (ternary weights on integer codes or pixels), so both
//!   sums are exact in `f64` and the statistics do not depend on the order of summation: any
//!   kernel that sums exactly gets the same bits, on any number of threads;
//! - each channel's affine in `f32`: `a = gamma * (1 / sqrt(var + eps))`, `b = beta - mean * a`;
//! - the codes `clamp(floor(((acc * scale) * a + b) * q + 0.5), 0, q)`.
//!
//! The backward pass is the straight-through gradient `q` where `0 <= z <= 1`, then Burn's
//! batch-norm gradient. Flex runs [`super::bn_qrelu_cpu`], which computes the same forward
//! operations in the same order (bit for bit); WGPU keeps Burn's `f32` batch statistics (GPUs
//! may lack `f64`) and shares the rest. `scale` receives no gradient (it is the product of the
//! layers' detached BTQ scales).

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, TensorMetadata, backend_extension, get_or_init_device_settings};
use burn::tensor::{FloatDType, Shape, Tensor};

/// Codes, and the batch mean and biased variance of `scale * acc`, each `[channels]`.
pub type BnQReluOutput<B> = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

/// Gradients for `acc`, `gamma` and `beta`.
pub type BnQReluGrads<B> = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

/// `t` (shape `[channels]`) reshaped to broadcast over `[batch, channels, h, w]`.
fn per_channel<B: Backend>(t: FloatTensor<B>) -> FloatTensor<B> {
    let channels = t.shape().num_elements();
    B::float_reshape(t, Shape::new([1, channels, 1, 1]))
}

/// `scale` (shape `[1]`) reshaped to broadcast over `[batch, channels, h, w]`.
fn broadcast_scale<B: Backend>(scale: FloatTensor<B>) -> FloatTensor<B> {
    B::float_reshape(scale, Shape::new([1, 1, 1, 1]))
}

/// The batch mean and biased variance of `scale * acc`, each `[channels]`, from exact `f64`
/// sums of the integer accumulators (see the module docs for the formula).
pub fn reference_statistics<B: Backend>(
    acc: FloatTensor<B>,
    scale: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let dtype = FloatDType::from(acc.dtype());
    let shape = acc.shape();
    let channels = shape[1];
    let count = shape.num_elements() / channels;
    let wide = B::float_cast(acc, FloatDType::F64);
    let rows = B::float_reshape(
        B::float_swap_dims(wide, 0, 1),
        Shape::new([channels, count]),
    );
    let s1 = B::float_sum_dim(rows.clone(), 1);
    let s2 = B::float_sum_dim(B::float_mul(rows.clone(), rows), 1);
    let mean = B::float_div_scalar(s1, (count as f64).into());
    let square_mean = B::float_div_scalar(s2, (count as f64).into());
    let var = B::float_clamp_min(
        B::float_sub(square_mean, B::float_mul(mean.clone(), mean.clone())),
        0.0.into(),
    );
    let scale = B::float_reshape(B::float_cast(scale, FloatDType::F64), Shape::new([1, 1]));
    let mean = B::float_mul(mean, scale.clone());
    let var = B::float_mul(B::float_mul(var, scale.clone()), scale);
    let narrow = |t| B::float_reshape(B::float_cast(t, dtype), Shape::new([channels]));
    (narrow(mean), narrow(var))
}

/// Each channel's affine `z = y * a + b`: `a = gamma * (1 / sqrt(var + eps))`,
/// `b = beta - mean * a`, each `[channels]`.
pub fn reference_affine<B: Backend>(
    mean: FloatTensor<B>,
    var: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    epsilon: f64,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let inv_std = B::float_recip(B::float_sqrt(B::float_add_scalar(var, epsilon.into())));
    let a = B::float_mul(gamma, inv_std);
    let b = B::float_sub(beta, B::float_mul(mean, a.clone()));
    (a, b)
}

/// The normalized pre-activation `z = (acc * scale) * a + b`, `[batch, channels, h, w]`.
pub fn reference_pre_activation<B: Backend>(
    acc: FloatTensor<B>,
    scale: FloatTensor<B>,
    a: FloatTensor<B>,
    b: FloatTensor<B>,
) -> FloatTensor<B> {
    let y = B::float_mul(acc, broadcast_scale::<B>(scale));
    B::float_add(B::float_mul(y, per_channel::<B>(a)), per_channel::<B>(b))
}

/// The codes `clamp(floor(z * q + 0.5), 0, q)`.
fn codes<B: Backend>(z: FloatTensor<B>, levels: u32) -> FloatTensor<B> {
    let q = levels as f64;
    let shifted = B::float_add_scalar(B::float_mul_scalar(z, q.into()), 0.5.into());
    B::float_clamp(B::float_floor(shifted), 0.0.into(), q.into())
}

/// Codes from the given batch statistics.
fn forward_with<B: Backend>(
    acc: FloatTensor<B>,
    scale: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    (mean, var): (FloatTensor<B>, FloatTensor<B>),
    epsilon: f64,
    levels: u32,
) -> BnQReluOutput<B> {
    let (a, b) = reference_affine::<B>(mean.clone(), var.clone(), gamma, beta, epsilon);
    let z = reference_pre_activation::<B>(acc, scale, a, b);
    (codes::<B>(z, levels), mean, var)
}

/// The composed forward: exact statistics, the affine, the codes.
pub fn reference_forward<B: Backend>(
    acc: FloatTensor<B>,
    scale: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    epsilon: f64,
    levels: u32,
) -> BnQReluOutput<B> {
    let stats = reference_statistics::<B>(acc.clone(), scale.clone());
    forward_with::<B>(acc, scale, gamma, beta, stats, epsilon, levels)
}

/// The forward with Burn's `batch_norm_train` statistics (`f32`, summed in the backend's order),
/// for backends that may lack `f64`.
#[cfg(feature = "wgpu")]
fn f32_statistics_forward<B: Backend>(
    acc: FloatTensor<B>,
    scale: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    epsilon: f64,
    levels: u32,
) -> BnQReluOutput<B> {
    let y = B::float_mul(acc.clone(), broadcast_scale::<B>(scale.clone()));
    let bn = B::batch_norm_train(y, gamma.clone(), beta.clone(), epsilon);
    let stats = (bn.mean, bn.variance);
    forward_with::<B>(acc, scale, gamma, beta, stats, epsilon, levels)
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
    let (a, b) = reference_affine::<B>(mean.clone(), var.clone(), gamma.clone(), beta, epsilon);
    let z = reference_pre_activation::<B>(acc.clone(), scale.clone(), a, b);
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
    let scale = broadcast_scale::<B>(scale);
    let y = B::float_mul(acc, scale.clone());
    let bn = B::batch_norm_train_backward(y, gamma, mean, var, epsilon, z_grad);
    (B::float_mul(bn.x_grad, scale), bn.gamma_grad, bn.beta_grad)
}

/// The fused layer per backend.
#[backend_extension(Flex, Cube: cfg(feature = "wgpu"), NdArray: cfg(feature = "ndarray"), Autodiff)]
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

/// GPUs keep Burn's `f32` batch statistics: `f64` is an optional GPU feature.
#[cfg(feature = "wgpu")]
impl BnQReluBackend for burn::backend::Cube {
    fn bn_qrelu_train(
        acc: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        levels: u32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        f32_statistics_forward::<Self>(acc, scale, gamma, beta, epsilon, levels)
    }
}
#[cfg(feature = "ndarray")]
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

/// The composed reference on any device with `f64`, differentiated by Burn's autodiff: the
/// pre-activation `z` and the batch mean and variance (see the module docs). `QRelu::forward(z)`
/// gives the codes of [`bn_qrelu_train`], bit for bit, with the straight-through gradient.
///
/// # Shapes
/// - `acc`: `[batch, channels, h, w]`; `scale`: `[1]`; `gamma`, `beta`: `[channels]`
/// - `z`: `[batch, channels, h, w]`; mean, variance: `[channels]`
pub fn reference_train(
    acc: Tensor<4>,
    scale: Tensor<1>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> (Tensor<4>, Tensor<1>, Tensor<1>) {
    type D = burn::backend::Dispatch;
    let (acc, scale) = (acc.into_dispatch(), scale.detach().into_dispatch());
    let (mean, var) = reference_statistics::<D>(acc.clone(), scale.clone());
    let (gamma, beta) = (gamma.into_dispatch(), beta.into_dispatch());
    let (a, b) = reference_affine::<D>(mean.clone(), var.clone(), gamma, beta, epsilon);
    let z = reference_pre_activation::<D>(acc, scale, a, b);
    (
        Tensor::from_dispatch(z),
        Tensor::from_dispatch(mean),
        Tensor::from_dispatch(var),
    )
}
