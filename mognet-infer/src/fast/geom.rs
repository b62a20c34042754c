//! The padded plane layout of the fast engine.
//!
//! Every channel of a feature map is a plane of `(h + 2p) x (w + 2p)` i32 with a zero border of
//! `p = k/2`, stored flat with stride `s = w + 2p`. A kxk tap is then a constant offset
//! `dy * s + dx` into the flat plane, so a convolution is a sum of shifted whole-plane vectors with
//! no bounds checks. Layers compute the flat range of the interior rows (`start..end`), which
//! includes the `2p` border columns of each row; outputs that feed a kxk convolution are masked
//! so those columns stay zero. Buffers have a margin before the first plane and after the last,
//! so that chunked reads at any tap offset stay in bounds.

/// Elements computed together: 64 i32, four 512-bit or eight 256-bit registers.
pub const CHUNK: usize = 64;

/// One feature-map size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geom {
    /// Interior height.
    pub h: usize,
    /// Interior width.
    pub w: usize,
    /// Border width (`k/2` of the largest kernel).
    pub p: usize,
    /// Row stride `w + 2p`.
    pub s: usize,
    /// Distance between two planes of a buffer (multiple of 16).
    pub plane: usize,
    /// Margin before the first plane.
    pub front: usize,
    /// First flat index of the interior rows.
    pub start: usize,
    /// One past the last flat index of the interior rows.
    pub end: usize,
    /// `-1` at interior columns of `start..end`, `0` at border columns (indexed `i - start`).
    pub mask: Vec<i32>,
}

impl Geom {
    /// The layout of an `h x w` map with border `p`.
    pub fn new(h: usize, w: usize, p: usize) -> Geom {
        let s = w + 2 * p;
        let rows = h + 2 * p;
        let start = p * s;
        let end = start + h * s;
        let plane = (rows * s).div_ceil(16) * 16;
        let mask = (start..end)
            .map(|i| {
                let x = i % s;
                if x >= p && x < p + w { -1 } else { 0 }
            })
            .collect();
        Geom {
            h,
            w,
            p,
            s,
            plane,
            // Aligned so that `front + start` is a multiple of 16 i32 (64 bytes): 1x1 layers then
            // load whole cache lines.
            front: (p * s + p + 16 + start).div_ceil(16) * 16 - start,
            start,
            end,
            mask,
        }
    }

    /// Buffer length for `channels` planes, margins included.
    pub fn buffer_len(&self, channels: usize) -> usize {
        self.front + channels * self.plane + CHUNK + self.p * self.s + self.p + 16
    }

    /// Flat buffer index of interior pixel `(y, x)` of channel `c`.
    #[inline]
    pub fn at(&self, c: usize, y: usize, x: usize) -> usize {
        self.front + c * self.plane + (y + self.p) * self.s + x + self.p
    }

    /// Offset of tap `(ky, kx)` of a kxk kernel (`ky, kx` in `0..k`).
    pub fn tap(&self, k: usize, ky: usize, kx: usize) -> isize {
        let r = (k / 2) as isize;
        (ky as isize - r) * self.s as isize + (kx as isize - r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_of_an_8x8_map() {
        let g = Geom::new(8, 8, 1);
        assert_eq!((g.s, g.start, g.end), (10, 10, 90));
        assert_eq!(g.plane, 112);
        assert_eq!(g.at(0, 0, 0), g.front + 11);
        assert_eq!((g.front + g.start) % 16, 0);
        assert_eq!(g.tap(3, 0, 0), -11);
        assert_eq!(g.tap(3, 2, 2), 11);
        assert_eq!(g.mask[0], 0);
        assert_eq!(g.mask[1], -1);
        assert_eq!(g.mask[9], 0);
        // Chunked reads of the last channel at the largest tap stay inside the buffer.
        let len = g.buffer_len(3);
        let last_chunk = g.front + 2 * g.plane + g.end - 1;
        assert!((last_chunk as isize + g.tap(3, 2, 2)) as usize + CHUNK <= len);
        assert!(g.front as isize + g.start as isize + g.tap(3, 0, 0) >= 0);
    }
}
