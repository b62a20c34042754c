//! A bounds-checked front for the `gemm` crate (the GEMM that Burn's Flex backend uses): the
//! one place where the custom CPU kernels call unsafe code.

/// A strided view of a row-major or transposed matrix inside a slice.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    /// The storage.
    pub data: &'a [f32],
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Step between rows.
    pub row_stride: usize,
    /// Step between columns.
    pub col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A dense row-major `rows x cols` matrix.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        MatRef {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of this view (no copy).
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// Whether every element the view names lies inside `data`.
    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                < self.data.len()
    }
}

/// `dst = lhs * rhs` (or `dst += lhs * rhs` when `accumulate`), `dst` dense row-major
/// `lhs.rows x rhs.cols`, on the calling thread.
///
/// # Panics
/// If the shapes disagree or a view reaches outside its slice (programming errors).
pub fn matmul(dst: &mut [f32], lhs: MatRef<'_>, rhs: MatRef<'_>, accumulate: bool) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(rhs.rows, k, "inner dimensions {k} and {}", rhs.rows);
    assert!(dst.len() >= m * n, "destination {} < {m}x{n}", dst.len());
    assert!(
        lhs.fits() && rhs.fits(),
        "a matrix view reaches outside its slice"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    // SAFETY: the asserts above keep every index the GEMM reads or writes inside the three
    // slices (dst is m x n dense; lhs and rhs were checked by `fits`), and `dst` is borrowed
    // mutably, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn plain_transposed_and_accumulated_products() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i % 5) as f32 - 2.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 3) as f32 - 1.0).collect();
        let expected = naive(&a, &b, m, k, n);
        let mut c = vec![9.0; m * n];
        matmul(
            &mut c,
            MatRef::rows(&a, m, k),
            MatRef::rows(&b, k, n),
            false,
        );
        assert_eq!(c, expected);
        matmul(&mut c, MatRef::rows(&a, m, k), MatRef::rows(&b, k, n), true);
        assert_eq!(c, expected.iter().map(|v| 2.0 * v).collect::<Vec<_>>());
        // (a^T)^T b through transposed views of a stored transpose.
        let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
        let mut d = vec![0.0; m * n];
        matmul(
            &mut d,
            MatRef::rows(&at, k, m).t(),
            MatRef::rows(&b, k, n),
            false,
        );
        assert_eq!(d, expected);
    }

    #[test]
    #[should_panic(expected = "inner dimensions")]
    fn shape_mismatch_is_caught() {
        let a = [0.0f32; 6];
        let mut c = [0.0f32; 4];
        matmul(
            &mut c,
            MatRef::rows(&a, 2, 3),
            MatRef::rows(&a, 2, 3),
            false,
        );
    }
}
