//! Training augmentation: random crop with zero padding and random horizontal flip.
//!
//! Every image's transform is drawn from its own SplitMix64 stream keyed by (seed, epoch,
//! index), so a batch is the same whatever thread builds it and whatever came before it: the
//! property exact resume relies on.

use std::sync::Arc;

use mognet_arch::rng::{SplitMix64, derive_seed};
use serde::{Deserialize, Serialize};

use super::image_set::{ImageItem, ImageSet};
use crate::DatasetKind;

/// Which augmentations to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Augment {
    /// Zero padding before a random crop back to the original size; 0 disables the crop.
    pub crop_pad: usize,
    /// Random horizontal flip with probability 1/2.
    pub flip: bool,
}

impl Augment {
    /// No augmentation (evaluation).
    pub const NONE: Augment = Augment {
        crop_pad: 0,
        flip: false,
    };

    /// The default for a dataset: pad 4 for the 32x32 colour sets, pad 2 for the padded
    /// grayscale ones (the 28x28 image already sits in a 2-pixel zero border); a horizontal flip
    /// for photographs and garments, none for digits, which are not mirror-symmetric.
    pub fn default_for(dataset: DatasetKind) -> Augment {
        Augment {
            crop_pad: if dataset.channels() == 1 { 2 } else { 4 },
            flip: dataset != DatasetKind::Mnist,
        }
    }

    /// What runs whose config says nothing got: by channels alone, flip on (the default before
    /// [`Augment::default_for`] knew the dataset; kept so that such runs resume exactly).
    pub fn channel_default(channels: usize) -> Augment {
        Augment {
            crop_pad: if channels == 1 { 2 } else { 4 },
            flip: true,
        }
    }

    /// Applies a crop offset `(dy, dx)` in `0..=2*pad` and an optional mirror to one image.
    pub fn apply(
        pixels: &[u8],
        channels: usize,
        size: usize,
        pad: usize,
        dy: usize,
        dx: usize,
        flip: bool,
    ) -> Vec<u8> {
        let mut out = vec![0u8; pixels.len()];
        for c in 0..channels {
            let plane = &pixels[c * size * size..(c + 1) * size * size];
            let dst = &mut out[c * size * size..(c + 1) * size * size];
            for y in 0..size {
                // Source row in the unpadded image, if inside.
                let sy = (y + dy) as isize - pad as isize;
                if sy < 0 || sy >= size as isize {
                    continue;
                }
                for x in 0..size {
                    let ox = if flip { size - 1 - x } else { x };
                    let sx = (ox + dx) as isize - pad as isize;
                    if sx >= 0 && sx < size as isize {
                        dst[y * size + x] = plane[sy as usize * size + sx as usize];
                    }
                }
            }
        }
        out
    }

    /// Transforms `item` with the stream of (seed, epoch, index).
    pub fn transform(
        &self,
        item: ImageItem,
        channels: usize,
        size: usize,
        seed: u64,
        epoch: u64,
        index: usize,
    ) -> ImageItem {
        if *self == Augment::NONE {
            return item;
        }
        let mut rng = SplitMix64::new(derive_seed(derive_seed(seed, epoch), index as u64));
        let span = 2 * self.crop_pad as u64 + 1;
        let dy = (rng.next_u64() % span) as usize;
        let dx = (rng.next_u64() % span) as usize;
        let flip = self.flip && rng.next_u64() & 1 == 1;
        ImageItem {
            pixels: Augment::apply(&item.pixels, channels, size, self.crop_pad, dy, dx, flip),
            label: item.label,
        }
    }
}

/// A set viewed through one epoch's augmentation.
#[derive(Debug, Clone)]
pub struct AugmentedSet {
    /// The images.
    pub set: Arc<ImageSet>,
    /// The augmentation.
    pub augment: Augment,
    /// Run seed.
    pub seed: u64,
    /// Epoch (changes every image's transform).
    pub epoch: u64,
}

impl AugmentedSet {
    /// Image `index` with this epoch's transform; `None` past the end.
    pub fn get(&self, index: usize) -> Option<ImageItem> {
        let item = self.set.item(index)?;
        let (c, size) = (self.set.channels, self.set.size);
        Some(
            self.augment
                .transform(item, c, size, self.seed, self.epoch, index),
        )
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

#[cfg(feature = "burn")]
impl burn::data::dataset::Dataset<ImageItem> for AugmentedSet {
    fn get(&self, index: usize) -> Result<ImageItem, burn::data::dataset::DatasetError> {
        AugmentedSet::get(self, index)
            .ok_or_else(|| crate::image_set::out_of_range(index, self.len()))
    }

    fn len(&self) -> usize {
        self.set.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(channels: usize, size: usize) -> Vec<u8> {
        (0..channels * size * size)
            .map(|i| (i % 253 + 1) as u8)
            .collect()
    }

    #[test]
    fn flip_is_an_exact_mirror() {
        let (c, s) = (3, 5);
        let img = image(c, s);
        let flipped = Augment::apply(&img, c, s, 2, 2, 2, true);
        for ch in 0..c {
            for y in 0..s {
                for x in 0..s {
                    assert_eq!(
                        flipped[(ch * s + y) * s + x],
                        img[(ch * s + y) * s + (s - 1 - x)]
                    );
                }
            }
        }
        // Mirroring twice gives the image back.
        assert_eq!(Augment::apply(&flipped, c, s, 2, 2, 2, true), img);
    }

    #[test]
    fn centred_crop_is_identity_and_shifted_crop_pads_with_zeros() {
        let (c, s) = (1, 6);
        let img = image(c, s);
        assert_eq!(Augment::apply(&img, c, s, 4, 4, 4, false), img);
        // dy = dx = 0 with pad 4: the image moves 4 down and 4 right.
        let shifted = Augment::apply(&img, c, s, 4, 0, 0, false);
        assert_eq!(shifted.len(), img.len());
        for y in 0..s {
            for x in 0..s {
                let expected = if y >= 4 && x >= 4 {
                    img[(y - 4) * s + x - 4]
                } else {
                    0
                };
                assert_eq!(shifted[y * s + x], expected);
            }
        }
    }

    #[test]
    fn same_seed_same_batch_other_epoch_other_batch() {
        let set = Arc::new(ImageSet {
            channels: 3,
            size: 8,
            num_classes: 10,
            pixels: (0..16 * 192).map(|i| (i % 255) as u8).collect(),
            labels: (0..16).map(|i| i % 10).collect(),
        });
        let view = |seed, epoch| AugmentedSet {
            set: set.clone(),
            augment: Augment::default_for(DatasetKind::Cifar10),
            seed,
            epoch,
        };
        let batch = |v: &AugmentedSet| (0..16).map(|i| v.get(i).unwrap()).collect::<Vec<_>>();
        let a = batch(&view(1, 0));
        assert_eq!(a, batch(&view(1, 0)));
        assert_ne!(a, batch(&view(1, 1)));
        assert_ne!(a, batch(&view(2, 0)));
        for (i, item) in a.iter().enumerate() {
            assert_eq!(item.pixels.len(), 192, "crop keeps the shape");
            assert_eq!(item.label, i % 10);
        }
        // Without augmentation the view is the set.
        let plain = AugmentedSet {
            augment: Augment::NONE,
            ..view(1, 0)
        };
        assert_eq!(plain.get(3).unwrap().pixels, set.image(3));
        assert!(plain.get(16).is_none());
    }

    /// Digits get no flip (a mirrored 2 or 7 is no digit); the other sets do.
    #[test]
    fn dataset_defaults_flip_all_but_digits() {
        let d = Augment::default_for;
        assert_eq!(
            d(DatasetKind::Mnist),
            Augment {
                crop_pad: 2,
                flip: false
            }
        );
        assert_eq!(
            d(DatasetKind::FashionMnist),
            Augment {
                crop_pad: 2,
                flip: true
            }
        );
        assert_eq!(
            d(DatasetKind::Cifar10),
            Augment {
                crop_pad: 4,
                flip: true
            }
        );
        assert_eq!(
            d(DatasetKind::Cifar100),
            Augment {
                crop_pad: 4,
                flip: true
            }
        );
        assert_eq!(
            Augment::channel_default(1),
            Augment {
                crop_pad: 2,
                flip: true
            }
        );
    }
}
