//! Zeroed output buffers, written by all threads: `vec![0.0; n]` zeroes on the calling thread
//! alone, and for a training step's activations that serial pass was 8% of a step.

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// Elements each thread zeroes at a time.
const CHUNK: usize = 1 << 16;

/// A vector of `n` zeros, zeroed in parallel.
pub fn zeroed(n: usize) -> Vec<f32> {
    let mut v: Vec<f32> = Vec::with_capacity(n);
    v.spare_capacity_mut()[..n]
        .par_chunks_mut(CHUNK)
        .for_each(|c| c.fill(MaybeUninit::new(0.0)));
    // SAFETY: the capacity is at least n, and every one of the first n elements was written
    // just above.
    unsafe { v.set_len(n) };
    v
}

#[cfg(test)]
mod tests {
    #[test]
    fn all_zero_at_every_size() {
        for n in [0, 1, super::CHUNK - 1, super::CHUNK, 3 * super::CHUNK + 5] {
            let v = super::zeroed(n);
            assert_eq!(v.len(), n);
            assert!(v.iter().all(|x| *x == 0.0));
        }
    }
}
