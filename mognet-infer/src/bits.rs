//! Bit-level packing: signed and unsigned integers of any width 0..=32, LSB first.

/// Appends fields of arbitrary width to a byte vector.
#[derive(Debug, Default)]
pub struct BitWriter {
    bytes: Vec<u8>,
    /// Bits used in the last byte (0 = byte-aligned).
    used: u32,
}

impl BitWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes the low `width` bits of `value`.
    pub fn put(&mut self, value: u64, width: u32) {
        for i in 0..width {
            if self.used == 0 {
                self.bytes.push(0);
            }
            let bit = ((value >> i) & 1) as u8;
            *self.bytes.last_mut().expect("pushed above") |= bit << self.used;
            self.used = (self.used + 1) % 8;
        }
    }

    /// Writes a signed value in `width`-bit two's complement.
    pub fn put_signed(&mut self, value: i64, width: u32) {
        self.put(value as u64, width);
    }

    /// The bytes, the last one zero-padded.
    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// Reads fields written by [`BitWriter`] from a byte slice.
#[derive(Debug)]
pub struct BitReader<'a> {
    bytes: &'a [u8],
    bit: usize,
}

impl<'a> BitReader<'a> {
    /// A reader over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, bit: 0 }
    }

    /// Reads `width` bits; `None` past the end.
    pub fn get(&mut self, width: u32) -> Option<u64> {
        let end = self.bit.checked_add(width as usize)?;
        if end > self.bytes.len() * 8 {
            return None;
        }
        let mut v = 0u64;
        for i in 0..width as usize {
            let b = self.bit + i;
            v |= (((self.bytes[b / 8] >> (b % 8)) & 1) as u64) << i;
        }
        self.bit = end;
        Some(v)
    }

    /// Bits consumed so far.
    pub fn bits_read(&self) -> usize {
        self.bit
    }

    /// Reads a `width`-bit two's-complement value.
    pub fn get_signed(&mut self, width: u32) -> Option<i64> {
        let v = self.get(width)?;
        if width == 0 {
            return Some(0);
        }
        let sign = 1u64 << (width - 1);
        Some(if v & sign != 0 {
            v as i64 - (1i64 << width)
        } else {
            v as i64
        })
    }
}

/// Bits needed for `v` in two's complement (at least 1).
pub fn signed_width(v: i64) -> u32 {
    let magnitude = if v < 0 { !v } else { v } as u64;
    65 - magnitude.leading_zeros().min(64)
}

/// Bits needed for the unsigned `v` (0 for 0).
pub fn unsigned_width(v: u64) -> u32 {
    64 - v.leading_zeros()
}

/// Bytes taken by `count` fields of `width` bits.
pub fn packed_len(count: usize, width: u32) -> Option<usize> {
    count.checked_mul(width as usize).map(|b| b.div_ceil(8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths() {
        assert_eq!(signed_width(0), 1);
        assert_eq!(signed_width(-1), 1);
        assert_eq!(signed_width(1), 2);
        assert_eq!(signed_width(127), 8);
        assert_eq!(signed_width(-128), 8);
        assert_eq!(signed_width(128), 9);
        assert_eq!(signed_width(i32::MIN as i64), 32);
        assert_eq!(unsigned_width(0), 0);
        assert_eq!(unsigned_width(7168), 13);
    }

    #[test]
    fn round_trip_mixed_widths() {
        let mut w = BitWriter::new();
        w.put(2, 2);
        w.put_signed(-5, 4);
        w.put(0x1_2345, 17);
        w.put_signed(i32::MIN as i64, 32);
        w.put(1, 0);
        w.put_signed(3, 3);
        let bytes = w.finish();
        assert_eq!(bytes.len(), (2 + 4 + 17 + 32 + 3usize).div_ceil(8));
        let mut r = BitReader::new(&bytes);
        assert_eq!(r.get(2), Some(2));
        assert_eq!(r.get_signed(4), Some(-5));
        assert_eq!(r.get(17), Some(0x1_2345));
        assert_eq!(r.get_signed(32), Some(i32::MIN as i64));
        assert_eq!(r.get(0), Some(0));
        assert_eq!(r.get_signed(3), Some(3));
        assert_eq!(r.get(8), None);
    }
}
