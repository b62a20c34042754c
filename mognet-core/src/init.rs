//! Reproducible weight initialisation.
//!
//! Weights are drawn on the host from SplitMix64 streams keyed by the model seed and the layer,
//! never from a backend's RNG: the same seed then gives the same model bit for bit on Flex,
//! ndarray and WGPU, and the initialisation does not depend on the order layers are built in.

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};

pub use mognet_arch::rng::{SplitMix64, derive_seed};

/// A `Param` of the given shape, uniform in `[-bound, bound)`, from `seed`.
pub fn uniform_param<const D: usize>(
    shape: [usize; D],
    bound: f64,
    seed: u64,
    device: &Device,
) -> Param<Tensor<D>> {
    let n: usize = shape.iter().product();
    let mut rng = SplitMix64::new(seed);
    let values: Vec<f32> = (0..n)
        .map(|_| ((2.0 * rng.next_f32() as f64 - 1.0) * bound) as f32)
        .collect();
    Param::from_tensor(Tensor::from_data(TensorData::new(values, shape), device))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_values_different_seed_different_values() {
        let device = Device::flex();
        let a = uniform_param([4, 3], 0.5, 9, &device).val().into_data();
        let b = uniform_param([4, 3], 0.5, 9, &device).val().into_data();
        let c = uniform_param([4, 3], 0.5, 10, &device).val().into_data();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let v = a.try_to_vec_as::<f32>().unwrap();
        assert!(v.iter().all(|x| x.abs() <= 0.5));
    }
}
