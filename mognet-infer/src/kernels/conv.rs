//! Ternary convolutions: dense or grouped kxk with zero padding `k/2` and stride 1, over u8 codes,
//! u8 pixels or i32 accumulators.

/// `out[o][y][x] = sum_{i in group(o), ky, kx} w[o][i][ky][kx] * input[g*ipg + i][y+ky-p][x+kx-p]`
/// for `w` of shape `[c_out, c_in / groups, k, k]` in `{-1, 0, 1}`.
///
/// `T` is the input element (u8 codes or pixels, or i32 accumulators of the previous conv).
pub fn ternary_conv<T: Copy + Into<i64>>(
    input: &[T],
    c_in: usize,
    h: usize,
    w: usize,
    weights: &[i8],
    c_out: usize,
    k: usize,
    groups: usize,
) -> Vec<i32> {
    let ipg = c_in / groups;
    let opg = c_out / groups;
    let pad = (k / 2) as isize;
    let mut out = vec![0i32; c_out * h * w];
    for o in 0..c_out {
        let g = o / opg;
        for y in 0..h {
            for x in 0..w {
                let mut acc: i64 = 0;
                for i in 0..ipg {
                    let c = g * ipg + i;
                    for ky in 0..k {
                        let iy = y as isize + ky as isize - pad;
                        if iy < 0 || iy >= h as isize {
                            continue;
                        }
                        for kx in 0..k {
                            let ix = x as isize + kx as isize - pad;
                            if ix < 0 || ix >= w as isize {
                                continue;
                            }
                            let t = weights[((o * ipg + i) * k + ky) * k + kx] as i64;
                            acc += t * input[(c * h + iy as usize) * w + ix as usize].into();
                        }
                    }
                }
                out[(o * h + y) * w + x] =
                    i32::try_from(acc).expect("accumulator bound proven below 2^31");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_grouped_3x3() {
        // 2 input channels, 2 groups, 2x2 image; each output sees only its own channel.
        let input: Vec<u8> = vec![1, 2, 3, 4, 5, 6, 7, 0];
        let mut weights = vec![0i8; 2 * 9];
        weights[4] = 1; // centre of output 0
        weights[9] = -1; // top-left of output 1
        weights[9 + 8] = 1; // bottom-right of output 1
        let out = ternary_conv(&input, 2, 2, 2, &weights, 2, 3, 2);
        assert_eq!(&out[..4], &[1, 2, 3, 4]);
        // output 1 at (y, x): -in(y-1, x-1) + in(y+1, x+1) on channel 1 = [5, 6, 7, 0]
        assert_eq!(&out[4..], &[0, 0, 0, -5]);
    }

    #[test]
    fn pointwise_is_a_matrix_product() {
        let input: Vec<i32> = vec![1, -2, 3, 4, 5, -6]; // 2 channels x 3 pixels
        let weights: Vec<i8> = vec![1, -1, 0, 1, 1, 1]; // 3 x 2
        let out = ternary_conv(&input, 2, 1, 3, &weights, 3, 1, 1);
        assert_eq!(out, vec![-3, -7, 9, 4, 5, -6, 5, 3, -3]);
    }
}
