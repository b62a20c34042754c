//! Batching u8 images into tensors: `x = p / 255` (SPEC), labels as integers.

use burn::data::dataloader::batcher::Batcher;
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::image_set::{ImageItem, ImageSet};

/// A batch on a device.
#[derive(Debug, Clone)]
pub struct ImageBatch {
    /// `[batch, channels, size, size]`, values `p / 255`.
    pub images: Tensor<4>,
    /// `[batch]` class indices.
    pub labels: Tensor<1, Int>,
}

/// Builds [`ImageBatch`]es of square images.
#[derive(Debug, Clone, Copy)]
pub struct ImageBatcher {
    /// Channels per image.
    pub channels: usize,
    /// Side of the square images.
    pub size: usize,
}

impl ImageBatcher {
    /// A batcher for the images of `set` (its channels and size).
    pub fn for_set(set: &ImageSet) -> Self {
        Self {
            channels: set.channels,
            size: set.size,
        }
    }

    /// The host-side tensors of a batch: pixels as f32 `p / 255` and labels as i64.
    pub fn host_data(&self, items: &[ImageItem]) -> (TensorData, TensorData) {
        let n = items.len();
        let len = self.channels * self.size * self.size;
        let mut pixels = Vec::with_capacity(n * len);
        for item in items {
            assert_eq!(
                item.pixels.len(),
                len,
                "image of the wrong shape in a batch"
            );
            pixels.extend(item.pixels.iter().map(|&p| p as f32 / 255.0));
        }
        let labels: Vec<i64> = items.iter().map(|i| i.label as i64).collect();
        (
            TensorData::new(pixels, [n, self.channels, self.size, self.size]),
            TensorData::new(labels, [n]),
        )
    }
}

impl Batcher<ImageItem, ImageBatch> for ImageBatcher {
    fn batch(&self, items: Vec<ImageItem>, device: &Device) -> ImageBatch {
        let (images, labels) = self.host_data(&items);
        ImageBatch {
            images: Tensor::from_data(images, device),
            labels: Tensor::from_data(labels, device),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixels_are_scaled_and_labels_kept() {
        let items = vec![
            ImageItem {
                pixels: vec![0, 255, 51, 102],
                label: 3,
            },
            ImageItem {
                pixels: vec![1, 2, 3, 4],
                label: 7,
            },
        ];
        let batch = ImageBatcher {
            channels: 1,
            size: 2,
        }
        .batch(items, &Device::flex());
        assert_eq!(batch.images.dims(), [2, 1, 2, 2]);
        let x = batch.images.into_data().try_into_vec_as::<f32>().unwrap();
        assert_eq!(&x[..4], &[0.0, 1.0, 0.2, 0.4]);
        let y = batch.labels.into_data().try_into_vec_as::<i64>().unwrap();
        assert_eq!(y, vec![3, 7]);
    }
}
