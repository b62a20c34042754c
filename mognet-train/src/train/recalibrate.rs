//! Batch-norm recalibration on training images: the running statistics re-estimated from the
//! model's current weights (see [`Mognet::recalibrate_batch_norms`]).

use burn::tensor::{Device, Tensor};
use mognet_core::Mognet;

use crate::data::{ImageBatcher, ImageSet};

/// Re-estimates `model`'s batch-norm statistics over the first `images` images of `set` (fewer
/// if the set is smaller), not augmented, so that the result is deterministic, in batches of
/// `batch_size` on `ad`, an autodiff device (batch statistics need the training path).
pub(crate) fn recalibrate(
    model: &mut Mognet,
    set: &ImageSet,
    images: usize,
    batch_size: usize,
    ad: &Device,
) {
    let batcher = ImageBatcher::for_set(set);
    let batches = set
        .batch_ranges(batch_size, images)
        .map(|range| Tensor::<4>::from_data(batcher.host_data(&set.items(range)).0, ad));
    model.recalibrate_batch_norms(batches);
}
