//! Repeated batch inference without per-call setup: a [`Runner`] keeps its thread pool and the
//! threads' working memory between calls, so classifying one image at a time allocates nothing
//! and starts no thread.

use std::sync::Mutex;

use super::{FastModel, Scratch, Variant};
use crate::engine::Prediction;

/// A fast model bound to a kernel variant and a number of threads.
#[derive(Debug)]
pub struct Runner<'m> {
    model: &'m FastModel,
    variant: Variant,
    /// `None` runs on the calling thread.
    pool: Option<rayon::ThreadPool>,
    /// Working memory returned by earlier calls.
    idle: Mutex<Vec<Scratch>>,
}

/// A [`Scratch`] lent by a runner, given back when dropped.
struct Lease<'r> {
    scratch: Option<Scratch>,
    idle: &'r Mutex<Vec<Scratch>>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let (Some(s), Ok(mut idle)) = (self.scratch.take(), self.idle.lock()) {
            idle.push(s);
        }
    }
}

impl<'m> Runner<'m> {
    /// A runner on `threads` threads (1: the calling thread) with `variant`.
    ///
    /// # Panics
    /// If `variant` is not [`Variant::is_available`] (a programming error), or the operating
    /// system refuses to start the threads.
    pub fn new(model: &'m FastModel, threads: usize, variant: Variant) -> Runner<'m> {
        assert!(
            variant.is_available(),
            "kernel variant {} not available on this CPU",
            variant.name()
        );
        let pool = (threads > 1).then(|| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("starting the inference threads")
        });
        Runner {
            model,
            variant,
            pool,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn lease(&self) -> Lease<'_> {
        let reused = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        Lease {
            scratch: Some(reused.unwrap_or_else(|| self.model.scratch())),
            idle: &self.idle,
        }
    }

    /// Classifies `images` (concatenated, [`FastModel::image_len`] bytes each), in order.
    ///
    /// # Panics
    /// If the length is not a whole number of images.
    pub fn predict_batch(&self, images: &[u8]) -> Vec<Prediction> {
        use rayon::prelude::*;
        let len = self.model.image_len();
        assert_eq!(images.len() % len, 0, "not a whole number of images");
        let (model, variant) = (self.model, self.variant);
        let predict = |lease: &mut Lease, img: &[u8]| {
            model.predict(img, lease.scratch.as_mut().expect("leased"), variant)
        };
        match &self.pool {
            None => {
                let mut lease = self.lease();
                images
                    .chunks_exact(len)
                    .map(|img| predict(&mut lease, img))
                    .collect()
            }
            Some(pool) => pool.install(|| {
                images
                    .par_chunks_exact(len)
                    .map_init(|| self.lease(), predict)
                    .collect()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_its_working_memory_and_gives_what_predict_gives() {
        let model = crate::fast::tests::small_model(3);
        let fast = FastModel::new(&model);
        let images: Vec<u8> = (0..5 * fast.image_len())
            .map(|i| (i * 37 % 251) as u8)
            .collect();
        let expected: Vec<Prediction> = images
            .chunks_exact(fast.image_len())
            .map(|img| model.predict(img))
            .collect();
        for threads in [1, 2] {
            let runner = Runner::new(&fast, threads, Variant::detect());
            assert_eq!(runner.predict_batch(&images), expected);
            let kept = runner.idle.lock().unwrap().len();
            assert!(kept >= 1, "working memory returned after the call");
            assert_eq!(
                runner.predict_batch(&images[..fast.image_len()]),
                expected[..1]
            );
            assert_eq!(
                runner.idle.lock().unwrap().len(),
                kept,
                "one image reuses, not adds"
            );
        }
    }
}
