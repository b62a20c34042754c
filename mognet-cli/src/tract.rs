//! ONNX exports run by tract, a pure-Rust ONNX runtime: `mognet-infer check-onnx` (a graph's
//! classes on a test set against the integer engine's) and the tract column of `bench
//! --compare`.

use std::path::Path;

use anyhow::{Context as _, Result, anyhow, bail};
use mognet_infer::IntModel;
use mognet_infer::fast::{FastModel, Variant};
use tract_onnx::prelude::*;

/// An export made runnable for batches of `batch` images of `model`'s input shape.
pub struct Plan {
    runnable: std::sync::Arc<TypedRunnableModel>,
    shape: [usize; 4],
}

impl Plan {
    /// Loads and optimizes `graph` (the bytes of an exported `.onnx`) for batches of `batch`.
    pub fn new(graph: &[u8], model: &IntModel, batch: usize) -> Result<Self> {
        let [c, h, w] = model.input_shape();
        let shape = [batch, c, h, w];
        let runnable = tract_onnx::onnx()
            .model_for_read(&mut &graph[..])
            .and_then(|m| m.with_input_fact(0, f32::fact(shape).into()))
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| anyhow!("tract cannot run the graph: {e}"))?;
        Ok(Self { runnable, shape })
    }

    /// The images in one batch: `pixels` holds exactly `batch` images.
    pub fn input(&self, pixels: &[u8]) -> Result<TValue> {
        let floats: Vec<f32> = pixels.iter().map(|&p| p as f32).collect();
        Ok(Tensor::from_shape(&self.shape, &floats)
            .map_err(|e| anyhow!("tract input: {e}"))?
            .into())
    }

    /// Runs one batch and returns the graph's outputs.
    pub fn run(&self, input: &TValue) -> Result<TVec<TValue>> {
        self.runnable
            .run(tvec!(input.clone()))
            .map_err(|e| anyhow!("tract run: {e}"))
    }

    /// The `class` output (the exports' second) of one batch.
    pub fn classes(&self, pixels: &[u8]) -> Result<Vec<usize>> {
        let out = self.run(&self.input(pixels)?)?;
        let class = out
            .get(1)
            .context("the graph has no second output (`class`)")?;
        let class = class
            .cast_to::<i64>()
            .map_err(|e| anyhow!("the `class` output: {e}"))?;
        let values = class
            .to_plain_array_view::<i64>()
            .map_err(|e| anyhow!("the `class` output: {e}"))?;
        if values.len() != self.shape[0] {
            bail!(
                "the graph gave {} classes for {} images",
                values.len(),
                self.shape[0]
            );
        }
        Ok(values.iter().map(|&c| c.max(0) as usize).collect())
    }
}

/// Images per tract call in `check-onnx` (the last batch is padded with blank images).
const CHECK_BATCH: usize = 100;

/// Runs the ONNX graph at `graph` on `set` in tract and counts, against the integer engine,
/// the images whose class differs; prints both accuracies.
pub fn check_onnx(model: &IntModel, graph: &Path, set: &mognet_data::ImageSet) -> Result<()> {
    let bytes = std::fs::read(graph).with_context(|| format!("reading {}", graph.display()))?;
    let plan = Plan::new(&bytes, model, CHECK_BATCH)
        .with_context(|| format!("loading {} in tract", graph.display()))?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let engine: Vec<usize> = FastModel::new(model)
        .predict_batch(&set.pixels, threads, Variant::detect())?
        .iter()
        .map(|p| p.class)
        .collect();
    let len = model.image_len();
    let (mut differ, mut correct, mut engine_correct) = (0, 0, 0);
    let started = std::time::Instant::now();
    for (b, chunk) in set.pixels.chunks(CHECK_BATCH * len).enumerate() {
        let mut batch = chunk.to_vec();
        batch.resize(CHECK_BATCH * len, 0);
        let classes = plan.classes(&batch)?;
        for (i, &class) in classes.iter().take(chunk.len() / len).enumerate() {
            let n = b * CHECK_BATCH + i;
            let label = set.labels[n] as usize;
            differ += (class != engine[n]) as usize;
            correct += (class == label) as usize;
            engine_correct += (engine[n] == label) as usize;
        }
        eprint!(
            "\r{} of {} images",
            (b * CHECK_BATCH + CHECK_BATCH).min(set.len()),
            set.len()
        );
    }
    eprintln!();
    let n = set.len().max(1) as f64;
    println!(
        "tract: accuracy {:.4} ({correct}/{}); engine {:.4}; classes differing from the engine: {differ} of {} ({:.0} images/s in tract)",
        correct as f64 / n,
        set.len(),
        engine_correct as f64 / n,
        set.len(),
        set.len() as f64 / started.elapsed().as_secs_f64()
    );
    Ok(())
}
