//! The MRB's integer part: shift residual, per-channel gate on the input's spatial sum, 2:1 mux.

/// What the MRB multiplexer selects when the gate is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mux {
    /// `(x + f) >> 1`.
    Avg,
    /// `x`.
    Skip,
}

/// Gate bits: `s_c = [sum_hw x_c >= g_c]`.
pub fn gate_bits(x: &[u8], hw: usize, thresholds: &[i32]) -> Vec<bool> {
    thresholds
        .iter()
        .enumerate()
        .map(|(c, &g)| {
            let s: i32 = x[c * hw..(c + 1) * hw].iter().map(|&v| v as i32).sum();
            s >= g
        })
        .collect()
}

/// `y = s ? r : f` per channel, with `r = (x + f) >> 1` (Avg) or `x` (Skip).
pub fn mux(x: &[u8], f: &[u8], hw: usize, gate: &[bool], mode: Mux) -> Vec<u8> {
    let mut y = f.to_vec();
    for (c, &on) in gate.iter().enumerate() {
        if !on {
            continue;
        }
        for i in c * hw..(c + 1) * hw {
            y[i] = match mode {
                Mux::Avg => ((x[i] as u16 + f[i] as u16) >> 1) as u8,
                Mux::Skip => x[i],
            };
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_and_mux_by_hand() {
        let x = vec![7, 7, 1, 0]; // 2 channels x 2 pixels: sums 14 and 1
        let f = vec![2, 3, 6, 5];
        let gate = gate_bits(&x, 2, &[14, 2]);
        assert_eq!(gate, vec![true, false]);
        assert_eq!(mux(&x, &f, 2, &gate, Mux::Avg), vec![4, 5, 6, 5]);
        assert_eq!(mux(&x, &f, 2, &gate, Mux::Skip), vec![7, 7, 6, 5]);
    }
}
