//! A validation split held out of a training set: class-balanced and fixed by a seed.
//!
//! The indices of each class are shuffled with a SplitMix64 stream keyed by the seed and the
//! class; the first `ceil(n * class_count / total)` of each class are held out. Both parts keep
//! the set's original order, so a split is the same on every machine and for every reader of
//! the same files.

use mognet_arch::rng::{SplitMix64, derive_seed};

use crate::image_set::ImageSet;

/// Stream id of the split's shuffles.
const SPLIT_STREAM: u64 = 0x5E1F;

/// A requested split that cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// The split would leave no training image.
    #[error(
        "a validation split of {asked} images leaves none of the {total} training images to train on"
    )]
    TooLarge {
        /// Images asked for.
        asked: usize,
        /// Images in the training set.
        total: usize,
    },
}

/// The indices of a set's two parts, each in increasing order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitIndices {
    /// Held out for validation.
    pub valid: Vec<usize>,
    /// Left for training.
    pub train: Vec<usize>,
}

/// Holds out about `n` images of `labels` (`num_classes` classes), class by class in proportion
/// to the classes' sizes (see the module docs); `n = 0` holds out nothing.
pub fn split_indices(
    labels: &[u16],
    num_classes: usize,
    n: usize,
    seed: u64,
) -> Result<SplitIndices, SplitError> {
    let total = labels.len();
    if n > 0 && n >= total {
        return Err(SplitError::TooLarge { asked: n, total });
    }
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); num_classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l as usize].push(i);
    }
    let mut held = vec![false; total];
    for (class, indices) in by_class.iter_mut().enumerate() {
        let take = (n * indices.len()).div_ceil(total.max(1));
        let mut rng = SplitMix64::new(derive_seed(seed ^ SPLIT_STREAM, class as u64));
        for i in (1..indices.len()).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            indices.swap(i, j);
        }
        for &i in &indices[..take.min(indices.len())] {
            held[i] = true;
        }
    }
    let (valid, train): (Vec<usize>, Vec<usize>) = (0..total).partition(|&i| held[i]);
    // Rounding up per class can hold out a whole set of one-image classes.
    if n > 0 && train.is_empty() {
        return Err(SplitError::TooLarge { asked: n, total });
    }
    Ok(SplitIndices { valid, train })
}

impl ImageSet {
    /// The images at `indices`, in that order.
    ///
    /// # Panics
    /// If an index is past the end (a programming error: indices come from this set).
    pub fn subset(&self, indices: &[usize]) -> ImageSet {
        let mut out = ImageSet::empty(self.channels, self.size, self.num_classes);
        for &i in indices {
            out.pixels.extend_from_slice(self.image(i));
            out.labels.push(self.labels[i]);
        }
        out
    }

    /// Splits off a validation set of about `n` images (see [`split_indices`]): `(train, valid)`.
    pub fn split_validation(
        &self,
        n: usize,
        seed: u64,
    ) -> Result<(ImageSet, ImageSet), SplitError> {
        let parts = split_indices(&self.labels, self.num_classes, n, seed)?;
        Ok((self.subset(&parts.train), self.subset(&parts.valid)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1,000 labels: class c has 40 + 4c images (40, 44, ..., 76), interleaved.
    fn labels() -> Vec<u16> {
        let mut out = Vec::new();
        for round in 0..76 {
            for c in 0..10u16 {
                if round < 40 + 4 * c as usize {
                    out.push(c);
                }
            }
        }
        out
    }

    #[test]
    fn classes_in_proportion_disjoint_and_covering() {
        let labels = labels();
        let total = labels.len();
        let s = split_indices(&labels, 10, 100, 7).unwrap();
        let mut all: Vec<usize> = s.valid.iter().chain(&s.train).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..total).collect::<Vec<_>>());
        assert!(s.valid.windows(2).all(|w| w[0] < w[1]));
        assert!(s.train.windows(2).all(|w| w[0] < w[1]));
        for c in 0..10u16 {
            let count = labels.iter().filter(|&&l| l == c).count();
            let held = s.valid.iter().filter(|&&i| labels[i] == c).count();
            assert_eq!(held, (100 * count).div_ceil(total), "class {c}");
        }
    }

    #[test]
    fn the_seed_fixes_the_split() {
        let labels = labels();
        let a = split_indices(&labels, 10, 100, 7).unwrap();
        assert_eq!(a, split_indices(&labels, 10, 100, 7).unwrap());
        assert_ne!(a.valid, split_indices(&labels, 10, 100, 8).unwrap().valid);
    }

    #[test]
    fn zero_holds_out_nothing_and_too_large_is_an_error() {
        let labels = labels();
        let none = split_indices(&labels, 10, 0, 1).unwrap();
        assert!(none.valid.is_empty() && none.train.len() == labels.len());
        assert_eq!(
            split_indices(&labels, 10, labels.len(), 1),
            Err(SplitError::TooLarge {
                asked: labels.len(),
                total: labels.len()
            })
        );
        // One image per class: rounding up would hold out all three.
        assert_eq!(
            split_indices(&[0, 1, 2], 3, 1, 1),
            Err(SplitError::TooLarge { asked: 1, total: 3 })
        );
    }

    #[test]
    fn subsets_carry_their_images_and_labels() {
        let mut set = ImageSet::empty(1, 2, 3);
        for (i, l) in [0u16, 1, 2, 0, 1, 2].into_iter().enumerate() {
            set.pixels.extend([i as u8; 4]);
            set.labels.push(l);
        }
        let (train, valid) = set.split_validation(3, 5).unwrap();
        assert_eq!((train.len(), valid.len()), (3, 3));
        assert_eq!(valid.class_counts(), vec![1, 1, 1]);
        for part in [&train, &valid] {
            for i in 0..part.len() {
                let original = part.image(i)[0] as usize;
                assert_eq!(part.labels[i], set.labels[original]);
            }
        }
    }
}
