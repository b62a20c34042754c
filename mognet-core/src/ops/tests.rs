//! The custom convolution against the composed reference (Burn's `conv2d` and its derived
//! gradients) on Flex: forward bit for bit, gradients within a relative tolerance.

use burn::tensor::{Device, Tensor, TensorData};
use mognet_arch::ca::SplitMix64;

use super::*;

/// Gradients may differ from the reference by this fraction of the tensor's largest magnitude
/// (the two sum the same products in different orders).
const GRAD_TOLERANCE: f32 = 1e-5;

/// `(batch, c_in, c_out, groups, kernel, stride, padding, h, w)`.
type Case = (
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
);

/// mognet's own layers (stem, PW1, grouped 3x3, CA 1x1, head) and a few others.
const CASES: [Case; 9] = [
    (3, 1, 8, 1, 3, 1, 1, 10, 9),
    (2, 3, 16, 1, 3, 1, 1, 8, 8),
    (4, 8, 16, 1, 1, 1, 0, 6, 7),
    (3, 16, 16, 4, 3, 1, 1, 9, 8),
    (2, 32, 32, 8, 3, 1, 1, 5, 5),
    (9, 16, 10, 1, 1, 1, 0, 4, 4),
    (2, 8, 8, 2, 3, 2, 1, 9, 7),
    (2, 6, 4, 2, 1, 2, 0, 5, 6),
    (1, 4, 6, 1, 5, 1, 2, 6, 6),
];

fn random(rng: &mut SplitMix64, n: usize, f: impl Fn(u64) -> f32) -> Vec<f32> {
    (0..n).map(|_| f(rng.next_u64())).collect()
}

fn values(t: Tensor<4>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

/// Inputs of one case: 3-bit codes, ternary weights and a random output weighting.
fn inputs(case: Case, seed: u64) -> (ConvParams, [Vec<f32>; 3], [[usize; 4]; 3]) {
    let (batch, c_in, c_out, groups, k, stride, padding, h, w) = case;
    let params = ConvParams {
        stride,
        padding,
        groups,
    };
    let xs = [batch, c_in, h, w];
    let ws = [c_out, c_in / groups, k, k];
    let [oh, ow] = params.geometry(xs, ws).out_size();
    let ys = [batch, c_out, oh, ow];
    let mut rng = SplitMix64::new(seed);
    let x = random(&mut rng, xs.iter().product(), |r| (r % 8) as f32);
    let weight = random(&mut rng, ws.iter().product(), |r| (r % 3) as f32 - 1.0);
    let r = random(&mut rng, ys.iter().product(), |r| {
        (r % 2001) as f32 / 1000.0 - 1.0
    });
    (params, [x, weight, r], [xs, ws, ys])
}

/// Output and the gradients of `sum(r * conv(x, w))` for x and w, through `conv`.
fn run(
    conv: fn(Tensor<4>, Tensor<4>, ConvParams) -> Tensor<4>,
    params: ConvParams,
    data: &[Vec<f32>; 3],
    shapes: [[usize; 4]; 3],
) -> [Vec<f32>; 3] {
    let device = Device::flex().autodiff();
    let t = |i: usize| Tensor::<4>::from_data(TensorData::new(data[i].clone(), shapes[i]), &device);
    let (x, w) = (t(0).require_grad(), t(1).require_grad());
    let y = conv(x.clone(), w.clone(), params);
    let grads = (y.clone() * t(2)).sum().backward();
    [
        values(y),
        values(x.grad(&grads).unwrap()),
        values(w.grad(&grads).unwrap()),
    ]
}

fn assert_close(name: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= GRAD_TOLERANCE * scale,
            "{name}[{i}]: {g} vs reference {w} (scale {scale})"
        );
    }
}

#[test]
fn flex_kernels_match_the_composed_reference() {
    for (i, case) in CASES.into_iter().enumerate() {
        let (params, data, shapes) = inputs(case, 100 + i as u64);
        let [y, gx, gw] = run(ternary_conv2d, params, &data, shapes);
        let [y_ref, gx_ref, gw_ref] = run(ternary_conv2d_reference, params, &data, shapes);
        assert_eq!(y, y_ref, "forward of {case:?}");
        assert!(y.iter().any(|v| *v != 0.0), "a degenerate case {case:?}");
        assert_close(&format!("x grad {case:?}"), &gx, &gx_ref);
        assert_close(&format!("weight grad {case:?}"), &gw, &gw_ref);
    }
}

#[test]
fn forward_without_autodiff_and_on_ndarray() {
    let (params, data, shapes) = inputs(CASES[3], 7);
    let expected = run(ternary_conv2d_reference, params, &data, shapes)[0].clone();
    #[allow(deprecated)]
    for device in [Device::flex(), Device::ndarray()] {
        let t =
            |i: usize| Tensor::<4>::from_data(TensorData::new(data[i].clone(), shapes[i]), &device);
        assert_eq!(
            values(ternary_conv2d(t(0), t(1), params)),
            expected,
            "{device:?}"
        );
    }
}

#[test]
fn gradients_do_not_depend_on_the_thread_count() {
    let case = (20, 16, 16, 4, 3, 1, 1, 6, 6);
    let (params, data, shapes) = inputs(case, 3);
    let grads = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| run(ternary_conv2d, params, &data, shapes))
    };
    assert_eq!(grads(1), grads(3));
}

mod bn_qrelu {
    use burn::tensor::{Device, Tensor, TensorData};
    use mognet_arch::ca::SplitMix64;

    use crate::bn_qrelu::{BnQRelu, BnQReluConfig};

    /// How the layer is computed.
    #[derive(Clone, Copy, PartialEq)]
    enum Path {
        /// The fused operation.
        Fused,
        /// The composed reference (`forward_reference`).
        Reference,
        /// Burn's `BatchNorm` module, then QReLU: the layer before the fused operation.
        BurnBatchNorm,
    }

    /// Codes, running mean and variance, and the gradients for acc, gamma
    /// and beta of `sum(r * codes)`, through the layer on `device`.
    fn run(
        acc: &[f32],
        r: &[f32],
        shape: [usize; 4],
        path: Path,
        device: &Device,
    ) -> Vec<Vec<f32>> {
        let device = device.clone().autodiff();
        // A fresh layer each time: clones share their running statistics.
        let layer: BnQRelu = BnQReluConfig::new(shape[1]).init(&device);
        let acc_t =
            Tensor::<4>::from_data(TensorData::new(acc.to_vec(), shape), &device).require_grad();
        let r_t = Tensor::<4>::from_data(TensorData::new(r.to_vec(), shape), &device);
        let scale = Tensor::<1>::from_data(TensorData::from([0.05f32]), &device);
        let codes = match path {
            Path::Fused => layer.forward(acc_t.clone(), scale),
            Path::Reference => layer.forward_reference(acc_t.clone(), scale),
            Path::BurnBatchNorm => {
                let z = layer
                    .bn
                    .forward(acc_t.clone() * scale.reshape([1, 1, 1, 1]));
                layer.qrelu.forward(z)
            }
        };
        let grads = (codes.clone() * r_t).sum().backward();
        let stats = &layer.bn; // running statistics after the step
        let v = |t: Tensor<1>| t.into_data().try_into_vec_as::<f32>().unwrap();
        vec![
            codes.into_data().try_into_vec_as::<f32>().unwrap(),
            v(stats.running_mean.value_sync()),
            v(stats.running_var.value_sync()),
            acc_t
                .grad(&grads)
                .unwrap()
                .into_data()
                .try_into_vec_as::<f32>()
                .unwrap(),
            v(layer.bn.gamma.grad(&grads).unwrap()),
            v(layer.bn.beta.grad(&grads).unwrap()),
        ]
    }

    /// Integer accumulators (a channel-dependent offset, so that the channels' statistics
    /// differ) and a random code gradient.
    fn inputs(shape: [usize; 4]) -> (Vec<f32>, Vec<f32>) {
        let n: usize = shape.iter().product();
        let mut rng = SplitMix64::new(5);
        let acc = (0..n)
            .map(|i| (rng.next_u64() % 61) as f32 - 20.0 + (i % 5) as f32 * 3.0)
            .collect();
        let r = (0..n)
            .map(|_| (rng.next_u64() % 2001) as f32 / 1000.0 - 1.0)
            .collect();
        (acc, r)
    }

    /// Gradients within 1e-4 of the largest magnitude.
    fn assert_gradients_close(got: &[Vec<f32>], want: &[Vec<f32>]) {
        for (k, name) in [(3, "acc grad"), (4, "gamma grad"), (5, "beta grad")] {
            let scale = want[k].iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            for (i, (a, b)) in got[k].iter().zip(&want[k]).enumerate() {
                assert!((a - b).abs() <= 1e-4 * scale, "{name}[{i}]: {a} vs {b}");
            }
        }
    }

    /// The fused operation against the composed reference: codes and running statistics bit for
    /// bit, gradients within tolerance; on Flex (mognet's kernels) and ndarray (the trait's
    /// default body, in Burn operations).
    #[test]
    fn fused_layer_matches_the_composed_reference() {
        let shape = [6, 5, 7, 6];
        let (acc, r) = inputs(shape);
        let reference = run(&acc, &r, shape, Path::Reference, &Device::flex());
        assert!(reference[0].contains(&0.0) && reference[0].contains(&7.0));
        #[allow(deprecated)]
        for device in [Device::flex(), Device::ndarray()] {
            let fused = run(&acc, &r, shape, Path::Fused, &device);
            assert_eq!(fused[0], reference[0], "codes on {device:?}");
            assert_eq!(fused[1], reference[1], "running mean on {device:?}");
            assert_eq!(fused[2], reference[2], "running variance on {device:?}");
            assert_gradients_close(&fused, &reference);
        }
    }

    /// The kernel's statistics and pre-activations `z` (before the coarse rounding to codes)
    /// against the reference's Burn operations on Flex, bit for bit, with random gamma and beta
    /// and a large integer range.
    #[test]
    fn kernel_statistics_and_pre_activations_are_the_references() {
        use burn::backend::Flex;
        use burn::backend::flex::FlexTensor;

        use crate::ops::bn_qrelu::{
            reference_affine, reference_pre_activation, reference_statistics,
        };
        use crate::ops::bn_qrelu_cpu::{self, BnQReluParams, Planes};

        let shape = [8, 16, 9, 9];
        let n: usize = shape.iter().product();
        let mut rng = SplitMix64::new(11);
        let mut uniform =
            |lo: f32, hi: f32| lo + (hi - lo) * (rng.next_u64() % 1_000_001) as f32 / 1e6;
        let acc: Vec<f32> = (0..n)
            .map(|i| (uniform(-900.0, 900.0) + (i % 7) as f32 * 40.0).floor())
            .collect();
        let gamma: Vec<f32> = (0..shape[1]).map(|_| uniform(0.2, 2.0)).collect();
        let beta: Vec<f32> = (0..shape[1]).map(|_| uniform(-0.5, 0.8)).collect();
        let p = BnQReluParams {
            scale: 0.0123,
            epsilon: 1e-5,
            levels: 7.0,
        };
        let planes = Planes {
            batch: shape[0],
            channels: shape[1],
            plane: shape[2] * shape[3],
        };

        let (_, stats) = bn_qrelu_cpu::forward(&planes, &acc, &gamma, &beta, p);
        let z = bn_qrelu_cpu::pre_activations(&planes, &acc, &gamma, &beta, &stats, p);

        let t = |v: &[f32], dims: &[usize]| {
            FlexTensor::from_data(TensorData::new(v.to_vec(), dims.to_vec()))
        };
        let host = |t: FlexTensor| t.into_data().to_vec::<f32>().unwrap();
        let (acc_t, scale_t) = (t(&acc, &shape), t(&[p.scale], &[1]));
        let (mean, var) = reference_statistics::<Flex>(acc_t.clone(), scale_t.clone());
        assert_eq!(host(mean.clone()), stats.mean);
        assert_eq!(host(var.clone()), stats.var);
        let (gamma_t, beta_t) = (t(&gamma, &[shape[1]]), t(&beta, &[shape[1]]));
        let (a, b) = reference_affine::<Flex>(mean, var, gamma_t, beta_t, 1e-5);
        let want = host(reference_pre_activation::<Flex>(acc_t, scale_t, a, b));
        let differ = z
            .iter()
            .zip(&want)
            .filter(|(x, y)| x.to_bits() != y.to_bits())
            .count();
        assert_eq!(differ, 0, "{differ} of {n} pre-activations differ");
        assert!(z.iter().any(|&v| v < 0.0) && z.iter().any(|&v| v > 1.0));
    }

    /// The statistics are exact sums, so the fused forward gives the same bits on any number of
    /// threads (a shape large enough to be split across them).
    #[test]
    fn fused_forward_does_not_depend_on_the_thread_count() {
        let shape = [16, 24, 12, 12];
        let (acc, r) = inputs(shape);
        let forward = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| run(&acc, &r, shape, Path::Fused, &Device::flex()))
        };
        assert_eq!(forward(1), forward(3));
    }

    /// The reference is batch norm: against Burn's `BatchNorm` module (whose `f32` statistics are
    /// summed in another order and normalize as `(y - mean) / std * gamma + beta`), a code may
    /// differ by one where `7 z + 0.5` lies within rounding of an integer; nowhere else.
    #[test]
    fn composed_reference_is_burns_batch_norm_within_rounding() {
        let shape = [6, 5, 7, 6];
        let n: usize = shape.iter().product();
        let (acc, r) = inputs(shape);
        let reference = run(&acc, &r, shape, Path::Reference, &Device::flex());
        let burn = run(&acc, &r, shape, Path::BurnBatchNorm, &Device::flex());
        let differ = reference[0].iter().zip(&burn[0]).filter(|(a, b)| a != b);
        assert!(
            differ.clone().count() * 1000 <= n,
            "{} of {n} codes differ",
            differ.count()
        );
        let close = reference[0]
            .iter()
            .zip(&burn[0])
            .all(|(a, b)| (a - b).abs() <= 1.0);
        assert!(close);
        for k in [1, 2] {
            for (a, b) in reference[k].iter().zip(&burn[k]) {
                assert!(
                    (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                    "statistic {k}: {a} vs {b}"
                );
            }
        }
        assert_gradients_close(&reference, &burn);
    }
}

mod mrb_mux {
    use burn::tensor::{Device, Tensor, TensorData};
    use mognet_arch::ca::SplitMix64;

    use crate::ops::mrb_mux::mrb_mux;
    use crate::qrelu::straight_through;

    /// Output and gradients (x, f, gate) of `sum(r * y)` on `device`, through the fused operation
    /// or through the composition the MRB used before it.
    fn run(
        data: &[Vec<f32>; 4],
        shape: [usize; 4],
        average: bool,
        fused: bool,
        device: &Device,
    ) -> Vec<Vec<f32>> {
        let device = device.clone().autodiff();
        let t4 = |v: &Vec<f32>| Tensor::<4>::from_data(TensorData::new(v.clone(), shape), &device);
        let (x, f) = (t4(&data[0]).require_grad(), t4(&data[1]).require_grad());
        let gate = Tensor::<2>::from_data(
            TensorData::new(data[2].clone(), [shape[0], shape[1]]),
            &device,
        )
        .require_grad();
        let y = if fused {
            mrb_mux(x.clone(), f.clone(), gate.clone(), average)
        } else {
            let s = gate.clone().reshape([shape[0], shape[1], 1, 1]);
            let residual = if average {
                let sum = x.clone() + f.clone();
                straight_through(
                    sum.clone().div_scalar(2.0),
                    sum.detach().div_scalar(2.0).floor(),
                )
            } else {
                x.clone()
            };
            s.clone() * residual + s.neg().add_scalar(1.0) * f.clone()
        };
        let grads = (y.clone() * t4(&data[3])).sum().backward();
        let v4 = |t: Tensor<4>| t.into_data().try_into_vec_as::<f32>().unwrap();
        vec![
            v4(y),
            v4(x.grad(&grads).unwrap()),
            v4(f.grad(&grads).unwrap()),
            gate.grad(&grads)
                .unwrap()
                .into_data()
                .try_into_vec_as::<f32>()
                .unwrap(),
        ]
    }

    #[test]
    fn fused_multiplexer_matches_the_composition() {
        let shape = [3, 4, 5, 6];
        let n: usize = shape.iter().product();
        let mut rng = SplitMix64::new(9);
        let mut draw = |count: usize, f: &dyn Fn(u64) -> f32| {
            (0..count).map(|_| f(rng.next_u64())).collect::<Vec<_>>()
        };
        let data = [
            draw(n, &|r| (r % 8) as f32),
            draw(n, &|r| (r % 8) as f32),
            draw(12, &|r| (r % 2) as f32),
            draw(n, &|r| (r % 2001) as f32 / 1000.0 - 1.0),
        ];
        // On ndarray the operation runs its default body, the backend-level composition.
        #[allow(deprecated)]
        let devices = [Device::flex(), Device::ndarray()];
        for (average, device) in [true, false]
            .into_iter()
            .flat_map(|a| devices.iter().map(move |d| (a, d)))
        {
            let fused = run(&data, shape, average, true, device);
            let composed = run(&data, shape, average, false, &Device::flex());
            assert_eq!(fused[0], composed[0], "forward, average {average}");
            assert_eq!(fused[1], composed[1], "x grad, average {average}");
            assert_eq!(fused[2], composed[2], "f grad, average {average}");
            for (a, b) in fused[3].iter().zip(&composed[3]) {
                assert!(
                    (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                    "gate grad {a} vs {b}"
                );
            }
            assert!(fused[3].iter().any(|g| *g != 0.0));
        }
    }
}
