//! Checking what callers hand the engines: an image of the model's size, a batch of whole images.

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

/// `Ok` when `pixels` is one image of `[channels, height, width]` bytes.
pub fn check_image([channels, height, width]: [usize; 3], pixels: &[u8]) -> Result<(), InputError> {
    let expected = channels * height * width;
    if pixels.len() == expected {
        return Ok(());
    }
    Err(InputError::ImageSize {
        got: pixels.len(),
        expected,
        channels,
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
