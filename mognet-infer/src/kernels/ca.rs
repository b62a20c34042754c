//! The CA pointwise layer: `out[n] = sum_j w[n][j] * in[j]` with `w` in `{-1, +1}`, on i32
//! accumulators (the grouped convolution's, or codes when `inner_norm`).

/// Applies an `n x m` matrix of +-1 weights (row-major) to `m` channels of `hw` pixels.
pub fn ca_pointwise(input: &[i32], m: usize, hw: usize, weights: &[i8], n: usize) -> Vec<i32> {
    let mut out = vec![0i32; n * hw];
    for o in 0..n {
        let row = &weights[o * m..(o + 1) * m];
        let dst = &mut out[o * hw..(o + 1) * hw];
        for (j, &wj) in row.iter().enumerate() {
            let src = &input[j * hw..(j + 1) * hw];
            for (d, &s) in dst.iter_mut().zip(src) {
                *d += wj as i32 * s;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_positive_and_subtracts_negative_inputs() {
        let input = vec![3, -1, 10, 4, 7, 2]; // 3 channels x 2 pixels
        let weights = vec![1, -1, 1, -1, -1, 1];
        assert_eq!(
            ca_pointwise(&input, 3, 2, &weights, 2),
            vec![3 - 10 + 7, -1 - 4 + 2, -3 - 10 + 7, 1 - 4 + 2]
        );
    }
}
