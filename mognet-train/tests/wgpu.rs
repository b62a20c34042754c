//! The WGPU backend against Flex. Without a GPU, WGPU runs on Mesa's lavapipe (software Vulkan),
//! which `.ci/run` installs.

use burn::optim::GradientsParams;
use burn::tensor::{Device, DeviceKind, Tensor, TensorData};
use mognet_core::{MognetConfig, Preset, SplitMix64, TernaryConv2dConfig};

fn wgpu() -> Device {
    Device::wgpu(DeviceKind::DefaultDevice)
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn codes_input(shape: [usize; 4], seed: u64) -> TensorData {
    let mut rng = SplitMix64::new(seed);
    let n = shape.iter().product();
    TensorData::new(
        (0..n)
            .map(|_| (rng.next_u64() % 8) as f32)
            .collect::<Vec<f32>>(),
        shape,
    )
}

/// Forward and backward of a grouped ternary convolution: same values on WGPU as on Flex.
fn grouped_conv_on(device: &Device) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let device = device.clone().autodiff();
    let layer = TernaryConv2dConfig::new([8, 12])
        .with_kernel_size(3)
        .with_padding(1)
        .with_groups(4)
        .with_seed(3)
        .init(&device);
    let x = Tensor::<4>::from_data(codes_input([2, 8, 6, 5], 1), &device).require_grad();
    let y = layer.forward(x.clone());
    // A loss that weights outputs unevenly so every gradient entry differs.
    let weights = Tensor::<4>::from_data(codes_input([2, 12, 6, 5], 2), &device);
    let loss = (y.clone() * weights).sum() + layer.regularizer();
    let grads = loss.backward();
    let gx = host(x.grad(&grads).unwrap());
    let gw = GradientsParams::from_grads(grads, &layer);
    let gw = host(gw.get::<4>(layer.weight.id).unwrap());
    (host(y), gx, gw)
}

#[test]
fn grouped_ternary_conv_forward_backward_wgpu_equals_flex() {
    let (y_flex, gx_flex, gw_flex) = grouped_conv_on(&Device::flex());
    let (y_wgpu, gx_wgpu, gw_wgpu) = grouped_conv_on(&wgpu());
    let scale = y_flex.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(scale > 0.0);
    assert!(
        max_diff(&y_flex, &y_wgpu) <= 1e-5 * scale.max(1.0),
        "forward"
    );
    assert!(
        max_diff(&gx_flex, &gx_wgpu) <= 1e-5 * 64.0,
        "input gradient"
    );
    let gw_scale = gw_flex.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(gw_scale > 0.0);
    assert!(
        max_diff(&gw_flex, &gw_wgpu) <= 1e-5 * gw_scale,
        "weight gradient"
    );
}

/// Every preset's eval forward on WGPU equals Flex within 1e-4 on the logits.
#[test]
fn every_preset_forward_wgpu_equals_flex() {
    for preset in Preset::ALL {
        let config = MognetConfig::preset(preset, 3, 10).with_seed(5);
        let mut rng = SplitMix64::new(9);
        let pixels: Vec<f32> = (0..2 * 3 * 32 * 32)
            .map(|_| (rng.next_u64() % 256) as f32 / 255.0)
            .collect();
        let data = TensorData::new(pixels, [2, 3, 32, 32]);
        let run = |device: &Device| {
            let model = config.init(device).unwrap();
            host(model.forward(Tensor::<4>::from_data(data.clone(), device)))
        };
        let flex = run(&Device::flex());
        let gpu = run(&wgpu());
        assert_eq!(flex.len(), 20);
        let diff = max_diff(&flex, &gpu);
        assert!(diff <= 1e-4, "{preset}: max |flex - wgpu| = {diff}");
    }
}

/// The fixed-order sum behind BTQ's `alpha` and `D` gives the host tree's bits on WGPU too, so a
/// model trained on a GPU folds to the same `.mognet` on any machine.
#[test]
fn fixed_order_sum_wgpu_equals_the_host_tree_bit_for_bit() {
    use mognet_core::fixed_sum::{fixed_order_sum, fixed_order_sum_host};
    let mut rng = SplitMix64::new(11);
    for n in [1, 5, 4096, 20_000] {
        let v: Vec<f32> = (0..n)
            .map(|_| rng.next_f32() * 2f32.powi((rng.next_u64() % 4) as i32))
            .collect();
        let t = Tensor::<1>::from_data(TensorData::new(v.clone(), [n]), &wgpu());
        let gpu = host(fixed_order_sum(t))[0];
        assert_eq!(gpu.to_bits(), fixed_order_sum_host(&v).to_bits(), "n = {n}");
    }
}
