//! Zeroed buffers that start on a 64-byte boundary.
//!
//! The layouts of [`super::geom`] put every chunk the kernels load at a multiple of 64 bytes
//! from a buffer's start; that only helps if the start itself is a cache line (and a 512-bit
//! register) boundary, which `Vec<i32>` does not promise. A load that straddles two lines costs
//! two.

use std::ops::{Deref, DerefMut};

/// Bytes of the alignment.
pub const ALIGN: usize = 64;

/// A zeroed slice of `len` elements whose first element is 64-byte aligned.
#[derive(Debug)]
pub struct Aligned<T> {
    data: Vec<T>,
    off: usize,
    len: usize,
}

impl<T: Copy + Default> Aligned<T> {
    /// `len` zeros.
    pub fn zeroed(len: usize) -> Aligned<T> {
        let size = size_of::<T>();
        assert!(
            size > 0 && ALIGN.is_multiple_of(size),
            "element size divides the alignment"
        );
        let data = vec![T::default(); len + ALIGN / size];
        // The address is a multiple of T's alignment (= its size for the integer types used
        // here), so the gap to the next boundary is a whole number of elements.
        let addr = data.as_ptr() as usize;
        let off = (ALIGN - addr % ALIGN) % ALIGN / size;
        Aligned { data, off, len }
    }
}

impl<T: Copy + Default> Clone for Aligned<T> {
    fn clone(&self) -> Aligned<T> {
        let mut copy = Aligned::zeroed(self.len);
        copy.copy_from_slice(self);
        copy
    }
}

impl<T> Deref for Aligned<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.data[self.off..self.off + self.len]
    }
}

impl<T> DerefMut for Aligned<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.data[self.off..self.off + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_on_a_cache_line_holds_zeros_and_clones_aligned() {
        for len in [0, 1, 15, 16, 1000] {
            let a = Aligned::<i32>::zeroed(len);
            assert_eq!(a.as_ptr() as usize % ALIGN, 0);
            assert_eq!(a.len(), len);
            assert!(a.iter().all(|&v| v == 0));
            let mut b = Aligned::<i16>::zeroed(len);
            assert_eq!(b.as_ptr() as usize % ALIGN, 0);
            if len > 0 {
                b[len - 1] = 7;
            }
            let c = b.clone();
            assert_eq!(c.as_ptr() as usize % ALIGN, 0);
            assert_eq!(&*c, &*b);
        }
    }
}
