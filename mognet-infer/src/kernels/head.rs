//! The head's integer affine: `logit_k = S_k * M_k + C_k` on the spatial sums `S_k` of the 1x1
//! convolution, in i64; the real logit is `logit_k / 2^shift`.

/// Spatial sums of `classes` maps of `hw` accumulators.
pub fn spatial_sums(acc: &[i32], hw: usize) -> Vec<i64> {
    acc.chunks_exact(hw)
        .map(|c| c.iter().map(|&v| v as i64).sum())
        .collect()
}

/// Fixed-point logits.
pub fn logits(sums: &[i64], multipliers: &[i32], offsets: &[i32]) -> Vec<i64> {
    sums.iter()
        .zip(multipliers.iter().zip(offsets))
        .map(|(&s, (&m, &c))| s * m as i64 + c as i64)
        .collect()
}

/// Index of the largest logit (the first one on ties).
pub fn argmax(logits: &[i64]) -> usize {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affine_and_argmax() {
        let sums = spatial_sums(&[1, 2, 3, -4, 5, 6], 3);
        assert_eq!(sums, vec![6, 7]);
        let l = logits(&sums, &[10, -3], &[5, 100]);
        assert_eq!(l, vec![65, 79]);
        assert_eq!(argmax(&l), 1);
        assert_eq!(argmax(&[3, 9, 9, 1]), 1);
    }
}
