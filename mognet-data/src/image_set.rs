//! An in-memory set of u8 images with labels (Burn's `Dataset` with the `burn` feature).

/// One image: `channels x size x size` u8 pixels, channel-major, and its label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageItem {
    /// Pixels, `[c][y][x]`.
    pub pixels: Vec<u8>,
    /// Class index.
    pub label: usize,
}

/// Images of one shape with labels, stored contiguously.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSet {
    /// Channels (1 or 3).
    pub channels: usize,
    /// Height and width (square).
    pub size: usize,
    /// Number of classes labels range over.
    pub num_classes: usize,
    /// All pixels, image after image.
    pub pixels: Vec<u8>,
    /// One label per image.
    pub labels: Vec<u16>,
}

impl ImageSet {
    /// An empty set of the given shape.
    pub fn empty(channels: usize, size: usize, num_classes: usize) -> Self {
        Self {
            channels,
            size,
            num_classes,
            pixels: Vec::new(),
            labels: Vec::new(),
        }
    }

    /// Bytes per image.
    pub fn image_len(&self) -> usize {
        self.channels * self.size * self.size
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels of image `index`.
    ///
    /// # Panics
    /// If `index >= len()`.
    pub fn image(&self, index: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels[index * n..(index + 1) * n]
    }

    /// Appends another set of the same shape.
    ///
    /// # Panics
    /// If the shapes differ (a programming error: readers of one dataset agree).
    pub fn extend(&mut self, other: ImageSet) {
        assert_eq!(
            (self.channels, self.size, self.num_classes),
            (other.channels, other.size, other.num_classes)
        );
        self.pixels.extend(other.pixels);
        self.labels.extend(other.labels);
    }

    /// The first `n` images (all of them if fewer).
    pub fn truncated(mut self, n: usize) -> Self {
        let n = n.min(self.len());
        self.pixels.truncate(n * self.image_len());
        self.labels.truncate(n);
        self
    }

    /// Images per class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }
}

impl ImageSet {
    /// Image `index` as an owned item; `None` past the end.
    pub fn item(&self, index: usize) -> Option<ImageItem> {
        (index < self.len()).then(|| ImageItem {
            pixels: self.image(index).to_vec(),
            label: self.labels[index] as usize,
        })
    }

    /// Images `range` as owned items, in order: one batch's worth.
    ///
    /// # Panics
    /// If the range runs past the end (a programming error: batches are cut from `0..len`).
    pub fn items(&self, range: std::ops::Range<usize>) -> Vec<ImageItem> {
        let len = self.len();
        range
            .map(|i| self.item(i).unwrap_or_else(|| panic!("image {i} of {len}")))
            .collect()
    }

    /// The index ranges of consecutive batches of `batch_size` images (at least 1) over the
    /// set's first `images` images (all of them when the set is smaller), in order; only the
    /// last batch may be short.
    pub fn batch_ranges(
        &self,
        batch_size: usize,
        images: usize,
    ) -> impl Iterator<Item = std::ops::Range<usize>> + use<> {
        let n = images.min(self.len());
        let bs = batch_size.max(1);
        (0..n)
            .step_by(bs)
            .map(move |start| start..(start + bs).min(n))
    }
}

#[cfg(feature = "burn")]
pub(crate) fn out_of_range(index: usize, len: usize) -> burn::data::dataset::DatasetError {
    burn::data::dataset::DatasetError::new(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("image index {index} out of range (set has {len})"),
    ))
}

#[cfg(feature = "burn")]
impl burn::data::dataset::Dataset<ImageItem> for ImageSet {
    fn get(&self, index: usize) -> Result<ImageItem, burn::data::dataset::DatasetError> {
        self.item(index)
            .ok_or_else(|| out_of_range(index, self.len()))
    }

    fn len(&self) -> usize {
        self.labels.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_the_range_in_order() {
        let mut set = ImageSet::empty(1, 2, 3);
        set.pixels = (0..12).collect();
        set.labels = vec![2, 0, 1];
        let items = set.items(1..3);
        assert_eq!(items.len(), 2);
        assert_eq!(
            items[0],
            ImageItem {
                pixels: vec![4, 5, 6, 7],
                label: 0
            }
        );
        assert_eq!(items[1], set.item(2).unwrap());
        assert!(set.items(3..3).is_empty());
    }

    #[test]
    fn batch_ranges_cover_the_first_images_in_order() {
        let mut set = ImageSet::empty(1, 1, 2);
        set.pixels = vec![0; 7];
        set.labels = vec![0; 7];
        let ranges: Vec<_> = set.batch_ranges(3, 7).collect();
        assert_eq!(ranges, vec![0..3, 3..6, 6..7]);
        let ranges: Vec<_> = set.batch_ranges(4, 5).collect();
        assert_eq!(ranges, vec![0..4, 4..5]);
        // More images asked for than the set holds: the whole set.
        let ranges: Vec<_> = set.batch_ranges(5, 100).collect();
        assert_eq!(ranges, vec![0..5, 5..7]);
        // A zero batch size is taken as 1.
        assert_eq!(set.batch_ranges(0, 2).count(), 2);
        assert_eq!(set.batch_ranges(3, 0).count(), 0);
    }
}
