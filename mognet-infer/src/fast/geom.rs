//! The padded plane layout of the fast engine.
//!
//! Every channel of a feature map is a plane of `h + 2p` rows of `s = w + p` i32, with `p = k/2`
//! zero rows above and below and `p` zero columns after each row's `w` pixels. Those columns are
//! the border on both sides: a tap left of a row's first pixel reads the end of the row above.
//! A kxk tap is then a constant offset `dy * s + dx` into the flat plane, so a convolution is a
//! sum of shifted whole-plane vectors with no bounds checks. Layers compute the flat range of
//! the interior rows (`start..end`), which includes the `p` border columns of each row (one
//! border per row instead of two: an 8x8 map is 72 flat pixels, not 80); outputs that feed a kxk
//! convolution are masked so those columns stay zero. Buffers have a margin before the first
//! plane and after the last, so that chunked reads at any tap offset stay in bounds.

/// Elements computed together: 64 i32, four 512-bit or eight 256-bit registers.
pub const CHUNK: usize = 64;

/// The narrowest chunk a kernel is instantiated for (one 512-bit register of i32). Chunks of 8
/// would compute an 8x8 map's 72 flat pixels as 72 instead of 80, but made mognet-m 6% slower
/// (1474-1481 against 1566-1599 img/s at batch 64, A/B, 2026-11-27).
pub const NARROW: usize = 16;

/// `n` pixels of a layer's flat interior range from `f`, computed as one chunk of `width` lanes
/// (`n <= width`; the lanes past `n` are computed and dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First flat index.
    pub f: usize,
    /// Pixels kept.
    pub n: usize,
    /// Lanes computed: the kernel's widest chunk, a half or a quarter of it (at least
    /// [`NARROW`]).
    pub width: usize,
}

/// Evaluates `$body` with `$n` a constant equal to `$span.width`, so that one const-generic
/// kernel body serves every chunk width [`Geom::spans`] gives (a kernel's widest chunk of at
/// most [`CHUNK`] lanes, halved down to [`NARROW`]).
macro_rules! with_width {
    ($span:expr, $n:ident => $body:expr) => {
        match $span.width {
            64 => {
                const $n: usize = 64;
                $body
            }
            32 => {
                const $n: usize = 32;
                $body
            }
            16 => {
                const $n: usize = 16;
                $body
            }
            w => unreachable!("chunk width {w} from Geom::spans"),
        }
    };
}
pub(crate) use with_width;

const _: () = assert!(
    CHUNK == 64 && NARROW == 16,
    "with_width! lists 64, 32 and 16"
);

/// One feature-map size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geom {
    /// Interior height.
    pub h: usize,
    /// Interior width.
    pub w: usize,
    /// Border width (`k/2` of the largest kernel).
    pub p: usize,
    /// Row stride `w + p`.
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
        let s = w + p;
        let rows = h + 2 * p;
        let start = p * s;
        let end = start + h * s;
        let plane = (rows * s).div_ceil(16) * 16;
        let mask = (start..end)
            .map(|i| if i % s < w { -1 } else { 0 })
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
        self.front + c * self.plane + (y + self.p) * self.s + x
    }

    /// The interior range in chunks of `widest` lanes, narrower ones at the end: the range of
    /// an 8x8 map is 72 flat pixels, which whole chunks of 64 would compute as 128.
    ///
    /// A chunk of width `w` is taken while more than `3w/4` pixels are left, so that no chunk
    /// computes more than a quarter of its lanes for nothing unless it is the narrowest.
    pub fn spans(&self, widest: usize) -> impl Iterator<Item = Span> + '_ {
        let mut f = self.start;
        std::iter::from_fn(move || {
            if f >= self.end {
                return None;
            }
            let left = self.end - f;
            let mut width = widest;
            while width > NARROW && 4 * left <= 3 * width {
                width /= 2;
            }
            let span = Span {
                f,
                n: width.min(left),
                width,
            };
            f += span.n;
            Some(span)
        })
    }

    /// Offset of tap `(ky, kx)` of a kxk kernel (`ky, kx` in `0..k`).
    pub fn tap(&self, k: usize, ky: usize, kx: usize) -> isize {
        let r = (k / 2) as isize;
        (ky as isize - r) * self.s as isize + (kx as isize - r)
    }
}

/// A piece of a flat run over a row-major grid that lies in one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowPiece {
    /// Offset of the piece's first element in the run.
    pub at: usize,
    /// Elements in the piece.
    pub len: usize,
    /// Its row in the grid.
    pub y: usize,
    /// Its first column.
    pub x: usize,
}

/// The flat run `start..start + len` of a grid `w` elements wide, row by row: the kernels that
/// compute such runs (whole registers of pixels or tiles) and store them into a layout with
/// another row stride.
#[inline(always)]
pub fn row_pieces(start: usize, len: usize, w: usize) -> impl Iterator<Item = RowPiece> {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= len {
            return None;
        }
        let q = start + at;
        let (y, x) = (q / w, q % w);
        let piece = RowPiece {
            at,
            len: (w - x).min(len - at),
            y,
            x,
        };
        at += piece.len;
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_pieces_split_a_run_at_row_ends() {
        let pieces = |s, n, w| {
            row_pieces(s, n, w)
                .map(|p| (p.at, p.len, p.y, p.x))
                .collect::<Vec<_>>()
        };
        // 16 tiles from tile 4 of a grid 6 wide: the rest of row 0, rows 1 and 2, 4 of row 3.
        assert_eq!(
            pieces(4, 16, 6),
            vec![(0, 2, 0, 4), (2, 6, 1, 0), (8, 6, 2, 0), (14, 2, 3, 0)]
        );
        assert_eq!(pieces(0, 8, 8), vec![(0, 8, 0, 0)]);
        assert_eq!(pieces(3, 0, 8), vec![]);
        assert_eq!(
            pieces(7, 3, 1),
            vec![(0, 1, 7, 0), (1, 1, 8, 0), (2, 1, 9, 0)]
        );
    }

    #[test]
    fn layout_of_an_8x8_map() {
        let g = Geom::new(8, 8, 1);
        assert_eq!((g.s, g.start, g.end), (9, 9, 81));
        assert_eq!(g.plane, 96);
        assert_eq!(g.at(0, 0, 0), g.front + 9);
        assert_eq!((g.front + g.start) % 16, 0);
        assert_eq!(g.tap(3, 0, 0), -10);
        assert_eq!(g.tap(3, 2, 2), 10);
        // Each row's 8 pixels, then its one border column.
        assert_eq!(g.mask[0], -1);
        assert_eq!(g.mask[7], -1);
        assert_eq!(g.mask[8], 0);
        assert_eq!(g.mask[9], -1);
        // The left neighbour of a row's first pixel is the border column ending the row above.
        assert_eq!(
            g.at(0, 3, 0) as isize + g.tap(3, 1, 0),
            g.at(0, 2, 7) as isize + 1
        );
        // Chunked reads of the last channel at the largest tap stay inside the buffer.
        let len = g.buffer_len(3);
        let last_chunk = g.front + 2 * g.plane + g.end - 1;
        assert!((last_chunk as isize + g.tap(3, 2, 2)) as usize + CHUNK <= len);
        assert!(g.front as isize + g.start as isize + g.tap(3, 0, 0) >= 0);
    }

    #[test]
    fn spans_cover_the_range_with_narrow_chunks_at_the_end() {
        let widths = |g: &Geom, widest| {
            let spans: Vec<Span> = g.spans(widest).collect();
            // Contiguous, covering start..end exactly.
            let mut f = g.start;
            for s in &spans {
                assert_eq!(s.f, f);
                assert!(s.n <= s.width && s.n > 0);
                f += s.n;
            }
            assert_eq!(f, g.end);
            spans.iter().map(|s| s.width).collect::<Vec<_>>()
        };
        // 8x8: 72 flat pixels = 64 + 8 (as 16); 16x16: 272 = 4 x 64 + 16; 32x32: 1056 =
        // 16 x 64 + 32.
        assert_eq!(widths(&Geom::new(8, 8, 1), 64), vec![64, 16]);
        assert_eq!(widths(&Geom::new(16, 16, 1), 64), vec![64, 64, 64, 64, 16]);
        let mut wide = vec![64; 16];
        wide.push(32);
        assert_eq!(widths(&Geom::new(32, 32, 1), 64), wide);
        assert_eq!(widths(&Geom::new(8, 8, 1), 32), vec![32, 32, 16]);
        // A tail under 16 still takes a (ragged) narrow chunk.
        assert_eq!(widths(&Geom::new(1, 5, 1), 64), vec![16]);
        assert_eq!(Geom::new(1, 5, 1).spans(64).next().unwrap().n, 6);
        assert_eq!(widths(&Geom::new(1, 60, 0), 64), vec![64]);
        assert_eq!(widths(&Geom::new(1, 48, 0), 64), vec![32, 16]);
    }
}
