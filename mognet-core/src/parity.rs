//! Float model against integer engine on a test set: per-layer code mismatches,
//! top-1 agreement and both accuracies; and the integer accuracy of a whole set.

use std::collections::HashSet;
use std::time::Instant;

use crate::{Mognet, MognetConfig};
use burn::tensor::{Device, Tensor, TensorData};
use mognet_data::ImageSet;

use crate::fold::FoldReport;
use mognet_infer::fast::{FastModel, Variant};
use mognet_infer::{InputError, IntModel};

/// Per-layer and overall agreement of the two models.
#[derive(Debug, Clone, PartialEq)]
pub struct ParityReport {
    /// `(layer, mismatched codes, codes compared, worst-case accumulator beyond 2^24)`.
    pub layers: Vec<(String, u64, u64, bool)>,
    /// Images where both models pick the same class.
    pub top1_agree: usize,
    /// Correct float predictions.
    pub float_correct: usize,
    /// Correct integer predictions.
    pub int_correct: usize,
    /// Images compared.
    pub images: usize,
}

impl ParityReport {
    /// Fraction of images with the same top-1 class.
    pub fn top1(&self) -> f64 {
        self.top1_agree as f64 / self.images.max(1) as f64
    }

    /// Fraction of all compared codes that differ.
    pub fn code_mismatch_rate(&self) -> f64 {
        let bad: u64 = self.layers.iter().map(|l| l.1).sum();
        let all: u64 = self.layers.iter().map(|l| l.2).sum();
        bad as f64 / all.max(1) as f64
    }

    /// The printed table; last line `parity: top1 <x.xxxx> codes <y.yyyyyy> mismatched`.
    pub fn render(&self) -> String {
        let mut out = format!(
            "{:<14} {:>12} {:>14} {:>10}\n",
            "layer", "mismatched", "codes", "rate"
        );
        for (name, bad, all, inexact) in &self.layers {
            let note = if *inexact {
                "  (worst-case accumulator beyond 2^24: f32 may round)"
            } else {
                ""
            };
            out.push_str(&format!(
                "{name:<14} {bad:>12} {all:>14} {:>10.6}{note}\n",
                *bad as f64 / (*all).max(1) as f64
            ));
        }
        let n = self.images.max(1) as f64;
        out.push_str(&format!(
            "float accuracy {:.4}, integer accuracy {:.4} on {} images\n",
            self.float_correct as f64 / n,
            self.int_correct as f64 / n,
            self.images
        ));
        out.push_str(&format!(
            "parity: top1 {:.4} codes {:.6} mismatched",
            self.top1(),
            self.code_mismatch_rate()
        ));
        out
    }
}

/// Runs the float model (eval mode, on `device`) and the integer engine on every image of `set`,
/// calling `progress` with the number of images compared after every batch (a large model's
/// pass over a full test set takes many minutes on a CPU).
pub fn parity(
    float_model: &Mognet,
    config: &MognetConfig,
    fold_report: &FoldReport,
    model: &IntModel,
    set: &ImageSet,
    device: &Device,
    progress: &mut dyn FnMut(usize),
) -> Result<ParityReport, InputError> {
    let mut report = ParityReport {
        layers: Vec::new(),
        top1_agree: 0,
        float_correct: 0,
        int_correct: 0,
        images: set.len(),
    };
    for range in set.batch_ranges(100, set.len()) {
        let float = float_batch(float_model, config, set, range.clone(), device);
        let (start, end) = (range.start, range.end);
        let int_results = par_map(set, range, |img| model.predict_trace(img))
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        for (bi, (pred, t)) in int_results.into_iter().enumerate() {
            if report.layers.is_empty() {
                report.layers = layer_rows(&t.codes, fold_report);
            }
            for ((_, ints), (stat, floats)) in t
                .codes
                .iter()
                .zip(report.layers.iter_mut().zip(&float.codes))
            {
                let per = ints.len();
                let floats = &floats[bi * per..(bi + 1) * per];
                stat.1 += ints
                    .iter()
                    .zip(floats)
                    .filter(|(a, b)| **a as f32 != **b)
                    .count() as u64;
                stat.2 += per as u64;
            }
            let label = set.labels[start + bi] as usize;
            let fc = float.classes[bi] as usize;
            report.top1_agree += (fc == pred.class) as usize;
            report.float_correct += (fc == label) as usize;
            report.int_correct += (pred.class == label) as usize;
        }
        progress(end);
    }
    Ok(report)
}

/// The float model's classes and activation codes (per layer, images concatenated) on a batch.
struct FloatBatch {
    classes: Vec<i64>,
    codes: Vec<Vec<f32>>,
}

/// Runs the float model on the images `range` of `set`.
fn float_batch(
    float_model: &Mognet,
    config: &MognetConfig,
    set: &ImageSet,
    range: std::ops::Range<usize>,
    device: &Device,
) -> FloatBatch {
    let [h, w] = config.input_size;
    let n = range.len();
    let pixels: Vec<f32> = range
        .flat_map(|i| set.image(i).iter().map(|&p| p as f32 / 255.0))
        .collect();
    let x = Tensor::<4>::from_data(
        TensorData::new(pixels, [n, config.in_channels, h, w]),
        device,
    );
    let (logits, trace) = float_model.forward_trace(x);
    FloatBatch {
        classes: logits
            .argmax(1)
            .into_data()
            .try_into_vec_as::<i64>()
            .expect("class indices"),
        codes: trace
            .codes
            .into_iter()
            .map(|(_, t)| t.into_data().try_into_vec_as::<f32>().expect("codes"))
            .collect(),
    }
}

/// The report's empty rows for the engine's traced layers, flagged where the fold found that a
/// worst-case accumulator (a gate's: its PW2's) exceeds what `f32` holds exactly.
fn layer_rows<T>(codes: &[(String, T)], fold_report: &FoldReport) -> Vec<(String, u64, u64, bool)> {
    let inexact: HashSet<&str> = fold_report
        .f32_inexact
        .iter()
        .map(|(l, _)| l.as_str())
        .collect();
    codes
        .iter()
        .map(|(name, _)| {
            let accumulating = name.replace(".gate", ".pw2");
            let flag = inexact.contains(name.as_str()) || inexact.contains(accumulating.as_str());
            (name.clone(), 0, 0, flag)
        })
        .collect()
}

/// Applies `f` to the images `range` of `set` over all cores; results in image order.
pub fn par_map<T: Send>(
    set: &ImageSet,
    range: std::ops::Range<usize>,
    f: impl Fn(&[u8]) -> T + Sync,
) -> Vec<T> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let indices: Vec<usize> = range.collect();
    let chunk = indices.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = indices
            .chunks(chunk)
            .map(|part| {
                let f = &f;
                s.spawn(move || part.iter().map(|&i| f(set.image(i))).collect::<Vec<T>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker thread"))
            .collect()
    })
}

/// Integer accuracy over a set with the fast engine on all cores: `(correct, images per
/// second)`. The fast engine is checked bit for bit against the reference on the first image.
/// Images of another size than the model's are an error.
pub fn accuracy(model: &IntModel, set: &ImageSet) -> Result<(usize, f64), InputError> {
    let fast = FastModel::new(model);
    let variant = Variant::detect();
    if let Some(first) = (!set.is_empty()).then(|| set.image(0)) {
        let mut scratch = fast.scratch();
        assert_eq!(
            fast.predict(first, &mut scratch, variant)?,
            model.predict(first)?,
            "fast kernels disagree with the reference"
        );
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = Instant::now();
    let classes: Vec<usize> = fast
        .predict_batch(&set.pixels, threads, variant)?
        .into_iter()
        .map(|p| p.class)
        .collect();
    let seconds = started.elapsed().as_secs_f64();
    let correct = classes
        .iter()
        .zip(&set.labels)
        .filter(|(c, l)| **c == **l as usize)
        .count();
    Ok((correct, set.len() as f64 / seconds.max(1e-9)))
}
