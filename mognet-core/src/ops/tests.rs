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

    /// Codes, running mean and variance, and the gradients for acc, gamma
    /// and beta of `sum(r * codes)`, through the layer on `device`.
    fn run(
        acc: &[f32],
        r: &[f32],
        shape: [usize; 4],
        reference: bool,
        device: &Device,
    ) -> Vec<Vec<f32>> {
        let device = device.clone().autodiff();
        // A fresh layer each time: clones share their running statistics.
        let layer: BnQRelu = BnQReluConfig::new(shape[1]).init(&device);
        let acc_t =
            Tensor::<4>::from_data(TensorData::new(acc.to_vec(), shape), &device).require_grad();
        let r_t = Tensor::<4>::from_data(TensorData::new(r.to_vec(), shape), &device);
        let scale = Tensor::<1>::from_data(TensorData::from([0.05f32]), &device);
        let codes = if reference {
            // The layer as it was composed before the fused operation.
            let z = layer
                .bn
                .forward(acc_t.clone() * scale.reshape([1, 1, 1, 1]));
            layer.qrelu.forward(z)
        } else {
            layer.forward(acc_t.clone(), scale)
        };
        let grads = (codes.clone() * r_t).sum().backward();
        let stats = &layer.bn; // running statistics after the step
        let v = |t: Tensor<1>| t.into_data().try_into_vec_as::<f32>().unwrap();
        vec![
            codes.into_data().try_into_vec_as::<f32>().unwrap(),
            acc_t
                .grad(&grads)
                .unwrap()
                .into_data()
                .try_into_vec_as::<f32>()
                .unwrap(),
            v(layer.bn.gamma.grad(&grads).unwrap()),
            v(layer.bn.beta.grad(&grads).unwrap()),
            v(stats.running_mean.value_sync()),
            v(stats.running_var.value_sync()),
        ]
    }

    /// The fused layer against the composed one (Burn's batch norm, then QReLU). The two compute
    /// the batch statistics in different orders, so a code may differ by one where `7 z + 0.5`
    /// lies within 1e-4 of an integer; nowhere else.
    #[test]
    fn fused_layer_matches_the_composed_layers() {
        let shape = [6, 5, 7, 6];
        let n: usize = shape.iter().product();
        let mut rng = SplitMix64::new(5);
        let acc: Vec<f32> = (0..n)
            .map(|i| (rng.next_u64() % 61) as f32 - 20.0 + (i % 5) as f32 * 3.0)
            .collect();
        let r: Vec<f32> = (0..n)
            .map(|_| (rng.next_u64() % 2001) as f32 / 1000.0 - 1.0)
            .collect();
        let composed = run(&acc, &r, shape, true, &Device::flex());
        // On ndarray the operation runs its default body, the backend-level composition.
        #[allow(deprecated)]
        for device in [Device::flex(), Device::ndarray()] {
            let fused = run(&acc, &r, shape, false, &device);
            let diff = fused[0]
                .iter()
                .zip(&composed[0])
                .filter(|(a, b)| a != b)
                .count();
            assert!(diff * 1000 <= n, "{diff} of {n} codes differ");
            assert!(
                fused[0]
                    .iter()
                    .zip(&composed[0])
                    .all(|(a, b)| (a - b).abs() <= 1.0)
            );
            assert!(fused[0].contains(&0.0) && fused[0].contains(&7.0));
            for (k, name) in [
                (1, "acc grad"),
                (2, "gamma grad"),
                (3, "beta grad"),
                (4, "running mean"),
                (5, "running var"),
            ] {
                let scale = composed[k].iter().fold(1e-3f32, |m, v| m.max(v.abs()));
                for (i, (a, b)) in fused[k].iter().zip(&composed[k]).enumerate() {
                    assert!((a - b).abs() <= 1e-4 * scale, "{name}[{i}]: {a} vs {b}");
                }
            }
        }
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
