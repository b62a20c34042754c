//! `export-onnx`: a `.mognet` model as an ONNX graph of standard operators.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use burn::tensor::Device;
use clap::ValueEnum;
use mognet_core::fold::fold;
use mognet_data::Split;
use mognet_infer::IntModel;
use mognet_infer::onnx::OnnxExport;

use super::weights::{FloatWeights, Which};

/// The ONNX graphs `export-onnx` writes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OnnxStyle {
    /// Standard operators computing exactly what the integer engine computes.
    Exact,
    /// The trained float model: requantization as `Floor` and `Clip` of its affines.
    Float,
    /// The integer computation with each convolution in ONNX Runtime's int8 QDQ form (int8
    /// output scales calibrated on training images).
    Qdq,
}

/// Arguments of `export-onnx`.
#[derive(Debug, clap::Args)]
pub struct ExportOnnxArgs {
    /// The model file.
    #[arg(long)]
    model: PathBuf,
    /// The ONNX file to write.
    #[arg(long)]
    out: PathBuf,
    /// What the graph computes: `exact` is the integer engine's computation (int64
    /// `logits`), `float` the trained float model's (float `logits`; needs the float
    /// weights: --weights NAME.bpk or --run).
    #[arg(long, value_enum, default_value = "exact")]
    style: OnnxStyle,
    /// The float weights the model was exported from (`float` style only): a run folder.
    #[arg(long, conflicts_with = "weights")]
    run: Option<PathBuf>,
    /// The float weights (`float` style only): NAME.bpk with NAME.config.json beside it.
    #[arg(long)]
    weights: Option<PathBuf>,
    #[command(flatten)]
    calibration: Calibration,
}

/// Where the `qdq` style's calibration images come from.
#[derive(Debug, clap::Args)]
pub struct Calibration {
    /// `qdq` style: the dataset whose first training images calibrate the int8 scales.
    #[arg(
        long = "calibration-dataset",
        value_enum,
        default_value = "fashion-mnist"
    )]
    dataset: mognet_data::DatasetKind,
    /// `qdq` style: the folder of the calibration dataset.
    #[arg(
        long = "calibration-dir",
        default_value = "datasets/samples/fashion-mnist"
    )]
    dir: PathBuf,
    /// `qdq` style: how many training images calibrate the scales.
    #[arg(long = "calibration-images", default_value_t = 1000)]
    images: usize,
}

impl Calibration {
    /// The first `images` training images, checked against the model's input.
    fn pixels(&self, model: &IntModel) -> Result<Vec<u8>> {
        if self.images == 0 || self.images > 60_000 {
            bail!(
                "--calibration-images must be between 1 and 60000, got {}",
                self.images
            );
        }
        let set = self
            .dataset
            .load(&self.dir, Split::Train, mognet_data::Cifar100Label::Fine)?
            .truncated(self.images);
        if set.image_len() != model.image_len() {
            bail!(
                "the calibration images ({}) are {}x{}x{}, the model takes {:?}",
                self.dir.display(),
                set.channels,
                set.size,
                set.size,
                model.input_shape()
            );
        }
        Ok(set.pixels)
    }
}

/// The QDQ graph of `model`, its int8 scales calibrated on `calibration`'s images; says how
/// many convolutions stay exact.
fn qdq_export(model: &IntModel, calibration: &Calibration) -> Result<OnnxExport> {
    let pixels = calibration.pixels(model)?;
    let export = mognet_infer::onnx::export_qdq(model, &pixels)?;
    let coarse: Vec<String> = export
        .scales
        .iter()
        .filter(|(_, s)| *s > 1.0)
        .map(|(layer, s)| format!("{layer} {s:.2}"))
        .collect();
    println!(
        "calibrated on {} training images of {}: {} of {} convolutions exact in int8; scales above 1: {}",
        pixels.len() / model.image_len(),
        calibration.dir.display(),
        export.scales.len() - coarse.len(),
        export.scales.len(),
        if coarse.is_empty() {
            "none".to_string()
        } else {
            coarse.join(", ")
        }
    );
    Ok(export)
}

/// The float graph of `model` (read from `path`), whose float weights `weights` must fold to
/// exactly that model: the graph takes weights and gates from the file.
fn float_export(model: &IntModel, path: &Path, weights: &FloatWeights) -> Result<OnnxExport> {
    let (config, float_model, source) = weights.load(&Device::flex())?;
    let (folded, _) = fold(&float_model, &config)?;
    if folded != *model {
        bail!(
            "{} is not the export of {}: fold it again with `mognet-infer export`",
            path.display(),
            source.display()
        );
    }
    let parts = mognet_core::onnx::float_parts(&float_model);
    Ok(mognet_infer::onnx::export_float(model, &parts))
}

/// Writes the graph `args` ask for and describes it.
pub fn run(args: ExportOnnxArgs) -> Result<()> {
    let ExportOnnxArgs {
        model: path,
        out,
        style,
        run,
        weights,
        calibration,
    } = args;
    // clap refuses both at once.
    let float = (run.is_some() || weights.is_some()).then_some(FloatWeights {
        run,
        checkpoint: Which::Best,
        weights,
    });
    let (model, _) = IntModel::load(&path)?;
    let export = match (style, &float) {
        (OnnxStyle::Exact, _) => mognet_infer::onnx::export_exact(&model),
        (OnnxStyle::Qdq, _) => qdq_export(&model, &calibration)?,
        (OnnxStyle::Float, None) => {
            bail!("--style float needs the float weights: --weights or --run")
        }
        (OnnxStyle::Float, Some(weights)) => float_export(&model, &path, weights)?,
    };
    mognet_core::persist::write_atomic(&out, &export.bytes)?;
    for (layer, bound) in &export.inexact {
        println!("note: {layer}: worst-case accumulator {bound} reaches 2^24; f32 may round there");
    }
    println!(
        "wrote {}: {} bytes (ONNX opset {}, input `image` [N, {}, {}, {}] pixels 0-255 as float, outputs `logits` ({}) and `class` int64)",
        out.display(),
        export.bytes.len(),
        mognet_infer::onnx::OPSET,
        model.spec.in_channels,
        model.spec.input_size[0],
        model.spec.input_size[1],
        match style {
            OnnxStyle::Exact | OnnxStyle::Qdq => "int64 fixed point",
            OnnxStyle::Float => "float",
        }
    );
    Ok(())
}
