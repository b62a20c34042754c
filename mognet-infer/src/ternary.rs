//! Packing of ternary codes: 2 bits per code (4 per byte) or base 3 (5 trits per byte).

use serde::{Deserialize, Serialize};

/// How ternary weights are packed in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Packing {
    /// `0 -> 00`, `+1 -> 01`, `-1 -> 10`, four codes per byte, first code in the low bits.
    TwoBit,
    /// Five codes per byte as `sum (t_i + 1) 3^i` (1.6 bits per weight).
    Base3,
}

impl Packing {
    /// Bytes taken by `n` codes.
    pub fn packed_len(self, n: usize) -> usize {
        match self {
            Packing::TwoBit => n.div_ceil(4),
            Packing::Base3 => n.div_ceil(5),
        }
    }

    /// The file's tag of the packing.
    pub fn tag(self) -> u8 {
        match self {
            Packing::TwoBit => 0,
            Packing::Base3 => 1,
        }
    }

    /// The packing of a file tag.
    pub fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            0 => Some(Packing::TwoBit),
            1 => Some(Packing::Base3),
            _ => None,
        }
    }
}

/// Packs codes in `{-1, 0, 1}`.
///
/// # Panics
/// On a code outside `{-1, 0, 1}` (a programming error: the exporter only has ternary codes).
pub fn pack(codes: &[i8], packing: Packing) -> Vec<u8> {
    match packing {
        Packing::TwoBit => codes
            .chunks(4)
            .map(|chunk| {
                chunk.iter().enumerate().fold(0u8, |byte, (i, &t)| {
                    let bits = match t {
                        0 => 0b00,
                        1 => 0b01,
                        -1 => 0b10,
                        _ => panic!("not a ternary code: {t}"),
                    };
                    byte | bits << (2 * i)
                })
            })
            .collect(),
        Packing::Base3 => codes
            .chunks(5)
            .map(|chunk| {
                chunk.iter().rev().fold(0u8, |byte, &t| {
                    assert!((-1..=1).contains(&t), "not a ternary code: {t}");
                    byte * 3 + (t + 1) as u8
                })
            })
            .collect(),
    }
}

/// Unpacks `n` codes; `Err(byte index)` on a byte that no packing of ternary codes produces.
pub fn unpack(bytes: &[u8], n: usize, packing: Packing) -> Result<Vec<i8>, usize> {
    let mut out = Vec::with_capacity(n);
    match packing {
        Packing::TwoBit => {
            for (bi, &byte) in bytes.iter().enumerate() {
                for i in 0..4 {
                    if out.len() == n {
                        // Padding bits of the last byte must be zero.
                        if byte >> (2 * i) != 0 {
                            return Err(bi);
                        }
                        break;
                    }
                    out.push(match (byte >> (2 * i)) & 0b11 {
                        0b00 => 0,
                        0b01 => 1,
                        0b10 => -1,
                        _ => return Err(bi),
                    });
                }
            }
        }
        Packing::Base3 => {
            for (bi, &byte) in bytes.iter().enumerate() {
                if byte >= 243 {
                    return Err(bi);
                }
                let mut v = byte;
                let take = (n - out.len()).min(5);
                for _ in 0..take {
                    out.push((v % 3) as i8 - 1);
                    v /= 3;
                }
                if v != 0 {
                    return Err(bi);
                }
            }
        }
    }
    if out.len() != n {
        return Err(bytes.len());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_packings_round_trip_and_have_the_stated_size() {
        let codes: Vec<i8> = (0..23).map(|i| ((i * 7) % 3) as i8 - 1).collect();
        for packing in [Packing::TwoBit, Packing::Base3] {
            let bytes = pack(&codes, packing);
            assert_eq!(bytes.len(), packing.packed_len(23));
            assert_eq!(unpack(&bytes, 23, packing).unwrap(), codes);
        }
        assert_eq!(pack(&[1, -1, 0, 1], Packing::TwoBit), vec![0b01_00_10_01]);
        // Base 3: (1+1) + (-1+1)*3 + (0+1)*9 = 11.
        assert_eq!(pack(&[1, -1, 0], Packing::Base3), vec![11]);
    }

    #[test]
    fn invalid_bytes_are_rejected() {
        assert_eq!(unpack(&[0b11], 1, Packing::TwoBit), Err(0));
        assert_eq!(
            unpack(&[0b0100_0000], 1, Packing::TwoBit),
            Err(0),
            "nonzero padding"
        );
        assert_eq!(unpack(&[243], 5, Packing::Base3), Err(0));
        assert_eq!(unpack(&[9], 2, Packing::Base3), Err(0), "trit beyond n");
        assert_eq!(unpack(&[0], 5, Packing::TwoBit), Err(1), "too few bytes");
    }
}
