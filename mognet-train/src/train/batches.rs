//! The training input pipeline: each epoch's data order, and a helper thread that builds the
//! batches ahead of the device.

use std::sync::mpsc::{Receiver, sync_channel};

use burn::tensor::TensorData;
use mognet_core::SplitMix64;
use mognet_core::init::derive_seed;

use crate::data::{AugmentedSet, ImageBatcher};

/// Stream id of the data-order permutation.
const ORDER_STREAM: u64 = 0x0DE7;

/// A fixed permutation of `0..n` for `epoch`, from the run seed.
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut rng = SplitMix64::new(derive_seed(seed ^ ORDER_STREAM, epoch as u64));
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// Where the prepared batches (images, labels) arrive.
pub type BatchReceiver = Receiver<(TensorData, TensorData)>;

/// The thread that prepares them.
pub type BatchProducer = std::thread::JoinHandle<()>;

/// The trainer's input pipeline: a helper thread builds the batches of `view` in `order` (host
/// data: images, labels), at most three ahead, while the device works. Dropping the receiver
/// stops the thread; join it afterwards.
pub fn spawn_batches(
    view: AugmentedSet,
    order: Vec<usize>,
    batch: usize,
    batcher: ImageBatcher,
) -> (BatchReceiver, BatchProducer) {
    let (tx, rx) = sync_channel::<(TensorData, TensorData)>(3);
    let producer = std::thread::spawn(move || {
        for chunk in order.chunks(batch) {
            let items: Vec<_> = chunk
                .iter()
                .map(|&i| view.get(i).expect("index within the set"))
                .collect();
            if tx.send(batcher.host_data(&items)).is_err() {
                return;
            }
        }
    });
    (rx, producer)
}
