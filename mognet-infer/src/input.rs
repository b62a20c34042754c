//! Checking what callers hand the engines: an image of the model's size, a batch of whole images.

use mognet_arch::NetSpec;

/// Input the model cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// One image of the wrong size.
    #[error(
        "an image of {got} bytes, but the model takes {channels}x{height}x{width} = {expected} \
         (channels x height x width, u8 pixels)"
    )]
    ImageSize {
        /// Bytes given.
        got: usize,
        /// Bytes expected.
        expected: usize,
        /// The model's input channels.
        channels: usize,
        /// The model's input height.
        height: usize,
        /// The model's input width.
        width: usize,
    },
    /// A batch that is not a whole number of images.
    #[error("{got} bytes are not a whole number of {image}-byte images")]
    Batch {
        /// Bytes given.
        got: usize,
        /// Bytes per image.
        image: usize,
    },
}

/// Bytes per input image of `spec`.
pub fn image_len(spec: &NetSpec) -> usize {
    let [h, w] = spec.input_size;
    spec.in_channels * h * w
}

/// `Ok` when `pixels` is one image of `spec`'s size.
pub fn check_image(spec: &NetSpec, pixels: &[u8]) -> Result<(), InputError> {
    let expected = image_len(spec);
    if pixels.len() == expected {
        return Ok(());
    }
    let [height, width] = spec.input_size;
    Err(InputError::ImageSize {
        got: pixels.len(),
        expected,
        channels: spec.in_channels,
        height,
        width,
    })
}

/// `Ok` when `images` is a whole number of `image`-byte images.
pub fn check_batch(images: &[u8], image: usize) -> Result<(), InputError> {
    if image > 0 && images.len().is_multiple_of(image) {
        return Ok(());
    }
    Err(InputError::Batch {
        got: images.len(),
        image,
    })
}
