//! Repeated batch inference without per-call setup: a [`Runner`] keeps its thread pool and the
//! threads' working memory between calls, so classifying one image at a time allocates nothing
//! and starts no thread.

use std::sync::Mutex;

use super::{FastModel, Scratch, Variant};
use crate::engine::Prediction;
use crate::input::{InputError, check_batch};

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

    /// Classifies `images` (concatenated, [`FastModel::image_len`] bytes each), in order; a
    /// length that is not a whole number of images is an error.
    pub fn predict_batch(&self, images: &[u8]) -> Result<Vec<Prediction>, InputError> {
        use rayon::prelude::*;
        let len = self.model.image_len();
        check_batch(images, len)?;
        let (model, variant) = (self.model, self.variant);
        let predict = |lease: &mut Lease, img: &[u8]| {
            model.classify(img, lease.scratch.as_mut().expect("leased"), variant, None)
        };
        Ok(match &self.pool {
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
        })
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
            .map(|img| model.predict(img).unwrap())
            .collect();
        for threads in [1, 2] {
            let runner = Runner::new(&fast, threads, Variant::detect());
            assert_eq!(runner.predict_batch(&images).unwrap(), expected);
            let kept = runner.idle.lock().unwrap().len();
            assert!(kept >= 1, "working memory returned after the call");
            assert_eq!(
                runner.predict_batch(&images[..fast.image_len()]).unwrap(),
                expected[..1]
            );
            assert_eq!(
                runner.idle.lock().unwrap().len(),
                kept,
                "one image reuses, not adds"
            );
        }
    }

    /// Wrong sizes are errors that say what the model takes, from every entry point.
    #[test]
    fn wrong_input_sizes_are_errors() {
        let model = crate::fast::tests::small_model(3);
        let fast = FastModel::new(&model);
        let len = fast.image_len();
        let image = vec![0u8; len + 1];
        let err = model.predict(&image).unwrap_err();
        assert!(
            matches!(err, InputError::ImageSize { got, expected, .. } if got == len + 1 && expected == len),
            "{err}"
        );
        assert!(err.to_string().contains(&len.to_string()), "{err}");
        let mut scratch = fast.scratch();
        assert_eq!(
            fast.predict(&image, &mut scratch, Variant::detect())
                .unwrap_err(),
            err
        );
        let runner = Runner::new(&fast, 1, Variant::detect());
        assert_eq!(
            runner.predict_batch(&image).unwrap_err(),
            InputError::Batch {
                got: len + 1,
                image: len
            }
        );
        assert!(model.predict(&image[..len]).is_ok());
        assert_eq!(runner.predict_batch(&[]).unwrap(), Vec::new());
    }
}
