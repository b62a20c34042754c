//! mognet's operations on Flex: the CPU kernels of [`super::conv_cpu`],
//! [`super::bn_qrelu_cpu`] and [`super::mrb_mux_cpu`] on `f32` tensors; other float types take the reference path.

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::tensor::{DType, Shape, TensorData};

use super::bn_qrelu::{self, BnQReluBackend};
use super::mrb_mux::{self, MrbMuxBackend};
use super::{ConvParams, TernaryConvBackend, bn_qrelu_cpu, conv_cpu, dims4, mrb_mux_cpu};

/// The `f32` contents of a tensor, dense row-major (copied only when the layout needs it).
fn dense(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(t.to_contiguous().as_slice::<f32>().expect("f32").to_vec()),
    }
}

fn tensor(values: Vec<f32>, shape: [usize; 4]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, Shape::new(shape)))
}

fn all_f32(tensors: &[&FlexTensor]) -> bool {
    tensors.iter().all(|t| t.dtype() == DType::F32)
}

impl TernaryConvBackend for Flex {
    fn ternary_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        params: ConvParams,
    ) -> FloatTensor<Self> {
        if !all_f32(&[&x, &weight]) {
            return Self::conv2d(x, weight, None, params.options());
        }
        let geo = params.geometry(dims4(&x), dims4(&weight));
        let [oh, ow] = geo.out_size();
        let y = conv_cpu::forward(&geo, &dense(&x), &dense(&weight));
        tensor(y, [geo.batch, geo.c_out, oh, ow])
    }

    fn ternary_conv2d_x_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        params: ConvParams,
    ) -> FloatTensor<Self> {
        if !all_f32(&[&x, &weight, &grad]) {
            return Self::conv2d_x_backward(x, weight, grad, params.options());
        }
        let shape = dims4(&x);
        let geo = params.geometry(shape, dims4(&weight));
        tensor(
            conv_cpu::x_backward(&geo, &dense(&weight), &dense(&grad)),
            shape,
        )
    }

    fn ternary_conv2d_weight_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        params: ConvParams,
    ) -> FloatTensor<Self> {
        if !all_f32(&[&x, &weight, &grad]) {
            return Self::conv2d_weight_backward(x, weight, grad, params.options());
        }
        let shape = dims4(&weight);
        let geo = params.geometry(dims4(&x), shape);
        tensor(
            conv_cpu::weight_backward(&geo, &dense(&x), &dense(&grad)),
            shape,
        )
    }
}

/// The `f32` values of a small tensor (scales, per-channel parameters).
fn host(t: &FlexTensor) -> Vec<f32> {
    dense(t).into_owned()
}

fn vector(values: Vec<f32>) -> FlexTensor {
    let n = values.len();
    FlexTensor::from_data(TensorData::new(values, Shape::new([n])))
}

fn planes(acc: &FlexTensor) -> bn_qrelu_cpu::Planes {
    let [batch, channels, h, w] = dims4(acc);
    bn_qrelu_cpu::Planes {
        batch,
        channels,
        plane: h * w,
    }
}

fn bn_params(scale: &FlexTensor, epsilon: f64, levels: u32) -> bn_qrelu_cpu::BnQReluParams {
    bn_qrelu_cpu::BnQReluParams {
        scale: host(scale)[0],
        epsilon: epsilon as f32,
        levels: levels as f32,
    }
}

impl BnQReluBackend for Flex {
    fn bn_qrelu_train(
        acc: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        levels: u32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        if !all_f32(&[&acc, &scale, &gamma, &beta]) {
            return bn_qrelu::reference_forward::<Self>(acc, scale, gamma, beta, epsilon, levels);
        }
        let shape = dims4(&acc);
        let p = bn_params(&scale, epsilon, levels);
        let (codes, stats) =
            bn_qrelu_cpu::forward(&planes(&acc), &dense(&acc), &host(&gamma), &host(&beta), p);
        (tensor(codes, shape), vector(stats.mean), vector(stats.var))
    }

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
        if !all_f32(&[&acc, &scale, &gamma, &beta, &mean, &var, &grad]) {
            return bn_qrelu::reference_backward::<Self>(
                acc, scale, gamma, beta, mean, var, grad, epsilon, levels,
            );
        }
        let shape = dims4(&acc);
        let stats = bn_qrelu_cpu::BatchStats {
            mean: host(&mean),
            var: host(&var),
        };
        let p = bn_params(&scale, epsilon, levels);
        let (acc_grad, gamma_grad, beta_grad) = bn_qrelu_cpu::backward(
            &planes(&acc),
            &dense(&acc),
            &host(&gamma),
            &host(&beta),
            &stats,
            &dense(&grad),
            p,
        );
        (
            tensor(acc_grad, shape),
            vector(gamma_grad),
            vector(beta_grad),
        )
    }
}

impl MrbMuxBackend for Flex {
    fn mrb_mux(
        x: FloatTensor<Self>,
        f: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        average: bool,
    ) -> FloatTensor<Self> {
        if !all_f32(&[&x, &f, &gate]) {
            return mrb_mux::reference_forward::<Self>(x, f, gate, average);
        }
        let shape = dims4(&x);
        let y = mrb_mux_cpu::forward(&planes(&x), &dense(&x), &dense(&f), &dense(&gate), average);
        tensor(y, shape)
    }

    fn mrb_mux_backward(
        x: FloatTensor<Self>,
        f: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        average: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        if !all_f32(&[&x, &f, &gate, &grad]) {
            return mrb_mux::reference_backward::<Self>(x, f, gate, grad, average);
        }
        let shape = dims4(&x);
        let (gx, gf, gs) = mrb_mux_cpu::backward(
            &planes(&x),
            &dense(&x),
            &dense(&f),
            &dense(&gate),
            &dense(&grad),
            average,
        );
        let gate_shape = Shape::new([shape[0], shape[1]]);
        (
            tensor(gx, shape),
            tensor(gf, shape),
            FlexTensor::from_data(TensorData::new(gs, gate_shape)),
        )
    }
}
