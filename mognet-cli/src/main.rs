//! `mognet-infer`: export a trained run to a `.mognet` file and run it as an integer program.

mod bench;
mod tract;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use burn::tensor::Device;
use clap::{Parser, Subcommand, ValueEnum};
use mognet_arch::Summary;
use mognet_core::fold::fold;
use mognet_core::parity::accuracy;
use mognet_core::persist::{RunWeights, load_run_model, load_weights_file};
use mognet_core::{Mognet, MognetConfig};
use mognet_data::cli::DataArgs;
use mognet_data::{ImageSet, Picture, Split};
use mognet_infer::fast::{FastModel, Variant};
use mognet_infer::onnx::OnnxExport;
use mognet_infer::{IntModel, Packing};

#[derive(Debug, Parser)]
#[command(
    name = "mognet-infer",
    version,
    about = "Export MOGNET runs to compact integer models and run them on the CPU"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Which {
    /// `best.bpk`, the best validation accuracy.
    Best,
    /// The last checkpoint.
    Last,
}

impl From<Which> for RunWeights {
    fn from(w: Which) -> Self {
        match w {
            Which::Best => RunWeights::Best,
            Which::Last => RunWeights::Last,
        }
    }
}

/// The float weights a command reads: a run folder's, or a `.bpk` file with its config.
#[derive(Debug, clap::Args)]
struct FloatWeights {
    /// The run folder written by `mognet-train train`.
    #[arg(long, required_unless_present = "weights", conflicts_with = "weights")]
    run: Option<PathBuf>,
    /// Which weights of the run.
    #[arg(long, value_enum, default_value = "best")]
    checkpoint: Which,
    /// A weights file instead of a run: NAME.bpk with NAME.config.json beside it (how
    /// checkpoints/ ships models), or a run's best.bpk.
    #[arg(long)]
    weights: Option<PathBuf>,
}

impl FloatWeights {
    /// The model config and the float model on `device`, and what they were read from.
    fn load(&self, device: &Device) -> Result<(MognetConfig, Mognet, PathBuf)> {
        match (&self.run, &self.weights) {
            (Some(run), _) => {
                let (config, model) = load_run_model(run, self.checkpoint.into(), device)?;
                Ok((config, model, run.clone()))
            }
            (None, Some(file)) => {
                let (config, model) = load_weights_file(file, device)?;
                Ok((config, model, file.clone()))
            }
            (None, None) => bail!("give --run or --weights"),
        }
    }
}

/// The ONNX graphs `export-onnx` writes.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum OnnxStyle {
    /// Standard operators computing exactly what the integer engine computes.
    Exact,
    /// The trained float model: requantization as `Floor` and `Clip` of its affines.
    Float,
    /// The integer computation with each convolution in ONNX Runtime's int8 QDQ form (int8
    /// output scales calibrated on training images).
    Qdq,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PackingArg {
    /// 2 bits per ternary weight.
    #[value(name = "2bit")]
    TwoBit,
    /// Base 3, 5 weights per byte (1.6 bits per weight).
    Base3,
}

/// A dataset's test split.
#[derive(Debug, Clone, clap::Args)]
struct TestSet {
    #[command(flatten)]
    data: DataArgs,
    /// Use the first N test images only.
    #[arg(long)]
    limit: Option<usize>,
}

impl TestSet {
    fn load(&self) -> Result<ImageSet> {
        if self.limit == Some(0) {
            bail!("--limit must be at least 1");
        }
        self.data
            .load(Split::Test, self.limit)
            .with_context(|| format!("loading the {} test set", self.data.dataset.name()))
    }

    fn name(&self) -> &'static str {
        self.data.dataset.name()
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Fold a trained run (or a `.bpk` with its config) into a `.mognet` integer model.
    Export {
        #[command(flatten)]
        weights: FloatWeights,
        /// The model file to write.
        #[arg(long)]
        out: PathBuf,
        /// Ternary weight packing.
        #[arg(long, value_enum, default_value = "2bit")]
        packing: PackingArg,
    },
    /// Write a `.mognet` model as an ONNX graph of standard operators.
    ExportOnnx {
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
    },
    /// Run an ONNX export in tract on a test set and compare its classes with the integer
    /// engine's; last line `tract: accuracy ...; classes differing from the engine: N of M`.
    CheckOnnx {
        /// The model file the graph was exported from.
        #[arg(long)]
        model: PathBuf,
        /// The ONNX graph (`export-onnx`, any style).
        #[arg(long)]
        graph: PathBuf,
        #[command(flatten)]
        data: TestSet,
    },
    /// The bit table of a `.mognet` file, with its actual widths and size.
    Summary {
        /// The model file.
        #[arg(long)]
        model: PathBuf,
    },
    /// Integer accuracy on a test set; last line `accuracy: 0.xxxx (correct/total)`.
    Eval {
        /// The model file.
        #[arg(long)]
        model: PathBuf,
        #[command(flatten)]
        data: TestSet,
        /// Also write the class of every image, one per line, to this file (to compare
        /// with another runtime).
        #[arg(long)]
        classes: Option<PathBuf>,
    },
    /// Compare the float model (Burn, eval mode) and the integer engine code by code.
    Parity {
        /// The float weights (the ones exported).
        #[command(flatten)]
        weights: FloatWeights,
        /// The exported model file.
        #[arg(long)]
        model: PathBuf,
        #[command(flatten)]
        data: TestSet,
    },
    /// Benchmark the fast integer engine: images/s (median), MAC/s, kernel variant, time per
    /// layer kind, the measured roofline; `--compare` adds the scalar reference, Burn's Flex
    /// float eval and tract running the model's ONNX export, on the same inputs.
    Bench(bench::BenchArgs),
    /// Classify PNG images (grayscale or RGB), printing the class and the logits.
    Classify {
        /// The model file.
        #[arg(long)]
        model: PathBuf,
        /// Resize images whose size differs from the model's input (nearest neighbour);
        /// without it such images are refused (28x28 grayscale images are zero-padded to 32x32,
        /// as the datasets are).
        #[arg(long)]
        resize: bool,
        /// PNG files.
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Export {
            weights,
            out,
            packing,
        } => export(&weights, &out, packing),
        Command::Summary { model } => summary(&model),
        Command::ExportOnnx {
            model,
            out,
            style,
            run,
            weights,
            calibration,
        } => {
            // clap refuses both at once.
            let float = (run.is_some() || weights.is_some()).then_some(FloatWeights {
                run,
                checkpoint: Which::Best,
                weights,
            });
            export_onnx(&model, &out, style, float.as_ref(), &calibration)
        }
        Command::Eval {
            model,
            data,
            classes,
        } => eval(&model, &data, classes.as_deref()),
        Command::CheckOnnx { model, graph, data } => {
            let (model, _) = IntModel::load(&model)?;
            let set = data.load()?;
            check_shape(&model, &set, data.name())?;
            tract::check_onnx(&model, &graph, &set)
        }
        Command::Parity {
            weights,
            model,
            data,
        } => parity(&weights, &model, &data),
        Command::Classify {
            model,
            resize,
            images,
        } => classify(&model, resize, &images),
        Command::Bench(args) => bench::bench(&args),
    }
}

fn export(weights: &FloatWeights, out: &Path, packing: PackingArg) -> Result<()> {
    let device = Device::flex();
    let (config, model, _) = weights.load(&device)?;
    let (int_model, report) = fold(&model, &config)?;
    let packing = match packing {
        PackingArg::TwoBit => Packing::TwoBit,
        PackingArg::Base3 => Packing::Base3,
    };
    let bytes = int_model.save(out, packing)?;
    // Read it back: the file must load and validate before we call the export done.
    let (_, info) = IntModel::load(out)?;
    let summary = Summary::new(&int_model.spec, &info.widths);
    let stored = match packing {
        Packing::TwoBit => summary.total_bits_2bit,
        Packing::Base3 => summary.total_bits_base3,
    };
    for (layer, bound) in &report.f32_inexact {
        println!(
            "note: {layer}: worst-case accumulator {bound} exceeds 2^24; the float model may round there (see parity)"
        );
    }
    println!(
        "wrote {}: {} bytes = {} bits ({:.3} Mb); summary's stored total {} bits (file overhead {} bits)",
        out.display(),
        bytes,
        bytes * 8,
        (bytes * 8) as f64 / 1e6,
        stored,
        (bytes * 8) as i64 - stored as i64
    );
    Ok(())
}

fn summary(path: &Path) -> Result<()> {
    let (model, info) = IntModel::load(path)?;
    let summary = Summary::new(&model.spec, &info.widths);
    let text = summary.render();
    let (body, last) = text.rsplit_once('\n').unwrap_or(("", &text));
    println!("{body}");
    println!(
        "file: {} bytes = {} bits ({:?} packing; header, widths and checksum add {} bits)",
        info.bytes,
        info.bytes * 8,
        info.packing,
        (info.bytes * 8) as i64
            - match info.packing {
                Packing::TwoBit => summary.total_bits_2bit,
                Packing::Base3 => summary.total_bits_base3,
            } as i64
    );
    println!("{last}");
    Ok(())
}

fn check_shape(model: &IntModel, set: &ImageSet, what: &str) -> Result<()> {
    let s = &model.spec;
    if set.channels != s.in_channels || set.size != s.input_size[0] || set.size != s.input_size[1] {
        bail!(
            "the model takes {}x{}x{} images, {what} has {}x{}x{}",
            s.in_channels,
            s.input_size[0],
            s.input_size[1],
            set.channels,
            set.size,
            set.size
        );
    }
    if set.labels.iter().any(|&l| l as usize >= s.num_classes) {
        bail!(
            "{what} has labels beyond the model's {} classes",
            s.num_classes
        );
    }
    Ok(())
}

fn eval(path: &Path, data: &TestSet, classes: Option<&Path>) -> Result<()> {
    let (model, _) = IntModel::load(path)?;
    let set = data.load()?;
    check_shape(&model, &set, data.name())?;
    let (correct, rate) = accuracy(&model, &set)?;
    if let Some(out) = classes {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let lines: String = FastModel::new(&model)
            .predict_batch(&set.pixels, threads, Variant::detect())?
            .iter()
            .map(|p| format!("{}\n", p.class))
            .collect();
        mognet_core::persist::write_atomic(out, lines.as_bytes())?;
    }
    println!(
        "{} images at {rate:.0} images/s ({} threads, fast kernels: {})",
        set.len(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        Variant::detect().name()
    );
    println!(
        "accuracy: {:.4} ({correct}/{})",
        correct as f64 / set.len().max(1) as f64,
        set.len()
    );
    Ok(())
}

/// Where the `qdq` style's calibration images come from.
#[derive(Debug, clap::Args)]
struct Calibration {
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

fn export_onnx(
    path: &Path,
    out: &Path,
    style: OnnxStyle,
    float: Option<&FloatWeights>,
    calibration: &Calibration,
) -> Result<()> {
    let (model, _) = IntModel::load(path)?;
    let export = match (style, float) {
        (OnnxStyle::Exact, _) => mognet_infer::onnx::export_exact(&model),
        (OnnxStyle::Qdq, _) => qdq_export(&model, calibration)?,
        (OnnxStyle::Float, None) => {
            bail!("--style float needs the float weights: --weights or --run")
        }
        (OnnxStyle::Float, Some(weights)) => float_export(&model, path, weights)?,
    };
    mognet_core::persist::write_atomic(out, &export.bytes)?;
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

fn parity(weights: &FloatWeights, path: &Path, data: &TestSet) -> Result<()> {
    let device = Device::flex();
    let (config, float_model, source) = weights.load(&device)?;
    let (model, _) = IntModel::load(path)?;
    if model.spec != config.spec() {
        bail!(
            "{} does not hold the network of {} (different shapes or options)",
            path.display(),
            source.display()
        );
    }
    let set = data.load()?;
    check_shape(&model, &set, data.name())?;
    let (_, fold_report) = fold(&float_model, &config)?;
    let report =
        mognet_core::parity::parity(&float_model, &config, &fold_report, &model, &set, &device)?;
    println!("{}", report.render());
    Ok(())
}

fn classify(path: &Path, resize: bool, images: &[PathBuf]) -> Result<()> {
    let (model, _) = IntModel::load(path)?;
    let s = &model.spec;
    for image in images {
        let pixels = Picture::read_png(image)?.fit(image, s.in_channels, s.input_size, resize)?;
        let p = model
            .predict(&pixels)
            .with_context(|| image.display().to_string())?;
        let logits: Vec<String> = model
            .real_logits(&p)
            .iter()
            .map(|v| format!("{v:.3}"))
            .collect();
        println!(
            "{}: class {} logits [{}]",
            image.display(),
            p.class,
            logits.join(", ")
        );
    }
    Ok(())
}
