//! The cellular-automaton weight generator of CFLOG's second pointwise convolution.
//!
//! A 1-D elementary CA (radius 1, periodic boundary) of width `m` is seeded from a 64-bit seed
//! expanded by SplitMix64, run for `warmup` discarded steps, and then each further step gives one
//! row of the `n x m` weight matrix, each cell mapped `bit -> 2*bit - 1`. Only the rule, the seed
//! and the warmup count are ever stored; the weights are regenerated bit for bit wherever needed.
//! This crate has no Burn dependency, so the integer engine regenerates exactly the weights the
//! trainer used.

use serde::{Deserialize, Serialize};

pub use crate::rng::SplitMix64;

/// Why a CA generator cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaError {
    /// Ternary PW2 weights are trained, not generated.
    #[error("PW2 kind ternary has trained weights, not a generator")]
    NotFixed,
    /// A weight matrix needs at least one row and one column.
    #[error("CA weight matrix must be at least 1x1, got {rows}x{width}")]
    EmptyShape {
        /// Requested rows (`n`).
        rows: usize,
        /// Requested width (`m`).
        width: usize,
    },
    /// A generated row has all cells equal: its output would ignore the sign of every input.
    #[error("CA rule {rule} with seed {seed:#018x} gives a constant row {row} (width {width})")]
    ConstantRow {
        /// The rule number.
        rule: u8,
        /// The seed.
        seed: u64,
        /// Index of the offending row.
        row: usize,
        /// Ring width.
        width: usize,
    },
    /// Two generated rows are equal: two output channels would be copies of each other.
    #[error(
        "CA rule {rule} with seed {seed:#018x} repeats row {first} as row {second} (width {width}): \
         the automaton cycles; choose another rule or seed"
    )]
    RepeatedRow {
        /// The rule number.
        rule: u8,
        /// The seed.
        seed: u64,
        /// The earlier row.
        first: usize,
        /// The later, identical row.
        second: usize,
        /// Ring width.
        width: usize,
    },
}

/// One step of an elementary CA on a periodic ring: cell i's next state is bit
/// `4*s[i-1] + 2*s[i] + s[i+1]` of `rule`.
pub fn ca_step(rule: u8, state: &[bool]) -> Vec<bool> {
    let m = state.len();
    (0..m)
        .map(|i| {
            let left = state[(i + m - 1) % m] as u8;
            let centre = state[i] as u8;
            let right = state[(i + 1) % m] as u8;
            (rule >> (4 * left + 2 * centre + right)) & 1 == 1
        })
        .collect()
}

/// The initial CA state of width `m`: bit j is bit `j mod 64` of the `(j div 64)`-th SplitMix64
/// output from `seed`.
pub fn ca_seed_state(seed: u64, width: usize) -> Vec<bool> {
    let mut rng = SplitMix64::new(seed);
    let mut word = 0u64;
    (0..width)
        .map(|j| {
            if j % 64 == 0 {
                word = rng.next_u64();
            }
            (word >> (j % 64)) & 1 == 1
        })
        .collect()
}

/// Generates the +-1 weight rows of a CA pointwise layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaGenerator {
    /// Elementary CA rule number, 0..=255 (default 30).
    pub rule: u8,
    /// Seed expanded by SplitMix64 into the initial state.
    pub seed: u64,
    /// Steps run and discarded before the first row; `None` means the ring width `m`.
    pub warmup: Option<usize>,
}

impl CaGenerator {
    /// The warmup actually used for a ring of width `width`.
    pub fn warmup_for(&self, width: usize) -> usize {
        self.warmup.unwrap_or(width)
    }

    /// The `rows x width` matrix of CA bits, row r being the state after `warmup + r + 1` steps,
    /// without validity checks.
    pub fn bits(&self, rows: usize, width: usize) -> Vec<Vec<bool>> {
        let mut state = ca_seed_state(self.seed, width);
        for _ in 0..self.warmup_for(width) {
            state = ca_step(self.rule, &state);
        }
        (0..rows)
            .map(|_| {
                state = ca_step(self.rule, &state);
                state.clone()
            })
            .collect()
    }

    /// The `rows x width` matrix of +-1 weights (row-major), checked: no constant row, no two
    /// equal rows.
    pub fn weights(&self, rows: usize, width: usize) -> Result<Vec<i8>, CaError> {
        if rows == 0 || width == 0 {
            return Err(CaError::EmptyShape { rows, width });
        }
        let bits = self.bits(rows, width);
        for (r, row) in bits.iter().enumerate() {
            if width > 1 && row.iter().all(|&b| b == row[0]) {
                return Err(CaError::ConstantRow {
                    rule: self.rule,
                    seed: self.seed,
                    row: r,
                    width,
                });
            }
        }
        let mut seen = std::collections::HashMap::with_capacity(rows);
        for (r, row) in bits.iter().enumerate() {
            if let Some(&first) = seen.get(row) {
                return Err(CaError::RepeatedRow {
                    rule: self.rule,
                    seed: self.seed,
                    first,
                    second: r,
                    width,
                });
            }
            seen.insert(row.clone(), r);
        }
        Ok(bits
            .iter()
            .flat_map(|row| row.iter().map(|&b| if b { 1i8 } else { -1i8 }))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Vec<bool> {
        s.bytes().map(|b| b == b'1').collect()
    }

    fn show(v: &[bool]) -> String {
        v.iter().map(|&b| if b { '1' } else { '0' }).collect()
    }

    #[test]
    fn rule30_steps_match_spec_vector() {
        let mut state = parse("00001000");
        let expected = [
            "00011100", "00110010", "01101111", "01001000", "11111100", "10000011",
        ];
        for e in expected {
            state = ca_step(30, &state);
            assert_eq!(show(&state), e);
        }
    }

    #[test]
    fn splitmix_and_seeding_match_spec_vector() {
        assert_eq!(SplitMix64::new(1).next_u64(), 0x910a_2dec_8902_5cc1);
        assert_eq!(show(&ca_seed_state(1, 16)), "1000001100111010");
    }

    #[test]
    fn rows_match_spec_vector_without_and_with_warmup() {
        let g = CaGenerator {
            rule: 30,
            seed: 1,
            warmup: Some(0),
        };
        let rows: Vec<String> = g.bits(4, 16).iter().map(|r| show(r)).collect();
        assert_eq!(
            rows,
            [
                "1100011011100010",
                "1010110010010110",
                "1010101111110100",
                "1010101000000111"
            ]
        );
        // Default warmup is the width, 16.
        let g = CaGenerator {
            rule: 30,
            seed: 1,
            warmup: None,
        };
        let rows: Vec<String> = g.bits(3, 16).iter().map(|r| show(r)).collect();
        assert_eq!(
            rows,
            ["1001100000101100", "1111010001101011", "0000011011001010"]
        );
    }

    #[test]
    fn weights_map_bits_to_plus_minus_one() {
        let g = CaGenerator {
            rule: 30,
            seed: 1,
            warmup: Some(0),
        };
        let w = g.weights(4, 16).unwrap();
        assert_eq!(&w[..4], &[1, 1, -1, -1]);
        assert_eq!(w.len(), 64);
    }

    #[test]
    fn rule90_on_power_of_two_ring_is_rejected() {
        // Rule 90 on a ring of 2^j cells reaches the all-zero state within 2^(j-1) steps.
        let g = CaGenerator {
            rule: 90,
            seed: 7,
            warmup: None,
        };
        let err = g.weights(64, 64).unwrap_err();
        assert!(
            matches!(err, CaError::ConstantRow { rule: 90, .. }),
            "{err}"
        );
    }

    #[test]
    fn cycling_rule_is_rejected_as_repeated_row() {
        // Rule 170 is a pure left rotation: on a width-8 ring it repeats every 8 steps.
        let g = CaGenerator {
            rule: 170,
            seed: 3,
            warmup: Some(0),
        };
        let err = g.weights(9, 8).unwrap_err();
        assert!(
            matches!(
                err,
                CaError::RepeatedRow {
                    first: 0,
                    second: 8,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn rule30_default_generators_are_valid_for_preset_widths() {
        for (i, &(n, m)) in [(32, 32), (64, 64), (128, 128), (256, 256), (384, 384)]
            .iter()
            .enumerate()
        {
            let g = CaGenerator {
                rule: 30,
                seed: 0x5EED + i as u64,
                warmup: None,
            };
            g.weights(n, m).unwrap();
        }
    }
}
