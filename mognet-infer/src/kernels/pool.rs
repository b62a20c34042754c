//! 2x2 max pooling, stride 2, on codes.

/// Pools `c` channels of `h x w` codes to `(h/2) x (w/2)` (odd edges dropped, as Burn does).
pub fn max_pool2x2(x: &[u8], c: usize, h: usize, w: usize) -> Vec<u8> {
    let (oh, ow) = (h / 2, w / 2);
    let mut out = vec![0u8; c * oh * ow];
    for ch in 0..c {
        for y in 0..oh {
            for xx in 0..ow {
                let at = |dy: usize, dx: usize| x[(ch * h + 2 * y + dy) * w + 2 * xx + dx];
                out[(ch * oh + y) * ow + xx] = at(0, 0).max(at(0, 1)).max(at(1, 0)).max(at(1, 1));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_largest_of_each_window() {
        let x = vec![1, 5, 2, 0, 3, 4, 7, 6, 0, 0, 1, 1, 0, 2, 1, 1];
        assert_eq!(max_pool2x2(&x, 1, 4, 4), vec![5, 7, 2, 1]);
    }
}
