//! The weights of CFLOG's second pointwise convolution (PW2): the fixed +-1 rows of the
//! cellular automaton (MOGNET's choice), or, to test whether the automaton matters, rows drawn
//! from a plain pseudo-random stream (both regenerated from a few stored numbers, never stored
//! themselves), or, to test what the fixed matrix costs, trained ternary weights.

use serde::{Deserialize, Serialize};

use crate::ca::{CaError, CaGenerator};
use crate::rng::SplitMix64;

/// Where PW2's weights come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pw2Kind {
    /// +-1 rows of the elementary cellular automaton (rule, seed, warmup): MOGNET.
    #[default]
    Ca,
    /// +-1 rows of SplitMix64 output bits from a seed, stored in as few bits: an ablation.
    Prng,
    /// Trained ternary weights (BTQ, like PW1), stored at 2 bits each: an ablation.
    Ternary,
}

/// `rows x width` +-1 weights from SplitMix64: row `r`, cell `j` is bit `j mod 64` of the
/// stream's next word at each multiple of 64. A row that is constant or equal to an earlier
/// one is drawn again from the stream, so the matrix meets the checks CA rows meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrngRows {
    /// Seed of the stream.
    pub seed: u64,
}

impl PrngRows {
    /// The weights, row-major. Fails only for an empty shape, or when `2^width` cannot hold
    /// `rows` distinct non-constant rows.
    pub fn weights(&self, rows: usize, width: usize) -> Result<Vec<i8>, CaError> {
        let possible = if width >= 63 {
            u64::MAX
        } else {
            (1u64 << width).saturating_sub(if width > 1 { 2 } else { 0 })
        };
        if rows == 0 || width == 0 || rows as u64 > possible {
            return Err(CaError::EmptyShape { rows, width });
        }
        let mut rng = SplitMix64::new(self.seed);
        let mut seen = std::collections::HashSet::with_capacity(rows);
        let mut out = Vec::with_capacity(rows * width);
        while seen.len() < rows {
            let mut word = 0u64;
            let row: Vec<bool> = (0..width)
                .map(|j| {
                    if j % 64 == 0 {
                        word = rng.next_u64();
                    }
                    (word >> (j % 64)) & 1 == 1
                })
                .collect();
            let constant = width > 1 && row.iter().all(|&b| b == row[0]);
            if !constant && seen.insert(row.clone()) {
                out.extend(row.iter().map(|&b| if b { 1i8 } else { -1 }));
            }
        }
        Ok(out)
    }
}

/// A fixed PW2 generator of either kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FixedPw {
    /// The cellular automaton.
    Ca(CaGenerator),
    /// The plain stream.
    Prng(PrngRows),
}

impl FixedPw {
    /// The kind.
    pub fn kind(&self) -> Pw2Kind {
        match self {
            FixedPw::Ca(_) => Pw2Kind::Ca,
            FixedPw::Prng(_) => Pw2Kind::Prng,
        }
    }

    /// The `rows x width` weights, row-major, checked (see each generator).
    pub fn weights(&self, rows: usize, width: usize) -> Result<Vec<i8>, CaError> {
        match self {
            FixedPw::Ca(g) => g.weights(rows, width),
            FixedPw::Prng(g) => g.weights(rows, width),
        }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        match self {
            FixedPw::Ca(g) => g.seed,
            FixedPw::Prng(g) => g.seed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prng_rows_are_fixed_by_the_seed_distinct_and_not_constant() {
        let a = PrngRows { seed: 9 }.weights(64, 32).unwrap();
        assert_eq!(a, PrngRows { seed: 9 }.weights(64, 32).unwrap());
        assert_ne!(a, PrngRows { seed: 10 }.weights(64, 32).unwrap());
        assert_eq!(a.len(), 64 * 32);
        let rows: Vec<&[i8]> = a.chunks(32).collect();
        for (i, r) in rows.iter().enumerate() {
            assert!(r.iter().any(|&w| w != r[0]), "row {i} is constant");
            assert!(!rows[..i].contains(r), "row {i} repeats");
        }
        // The first row is the first word's low 32 bits.
        let word = SplitMix64::new(9).next_u64();
        let first: Vec<i8> = (0..32)
            .map(|j| if (word >> j) & 1 == 1 { 1 } else { -1 })
            .collect();
        assert_eq!(rows[0], &first[..]);
        // About half the weights are +1.
        let plus = a.iter().filter(|&&w| w > 0).count();
        assert!((900..1150).contains(&plus), "{plus} of 2048");
    }

    #[test]
    fn impossible_prng_shapes_are_errors() {
        assert!(PrngRows { seed: 1 }.weights(0, 8).is_err());
        // Width 2 holds only two non-constant rows (+- and -+).
        assert!(PrngRows { seed: 1 }.weights(3, 2).is_err());
        assert_eq!(PrngRows { seed: 1 }.weights(2, 2).unwrap().len(), 4);
    }
}
