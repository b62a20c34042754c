//! `mognet-infer`: export a trained run to a `.mognet` file and run it as an integer program.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use burn::tensor::Device;
use clap::{Parser, Subcommand, ValueEnum};
use mognet_arch::Summary;
use mognet_core::persist::{RunWeights, load_run_model};
use mognet_data::{Cifar100Label, DatasetKind, ImageSet, Split};
use mognet_infer::fold::fold;
use mognet_infer::parity::accuracy;
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
struct DataArgs {
    /// Dataset.
    #[arg(long, value_enum)]
    dataset: DatasetKind,
    /// Folder with the dataset's files.
    #[arg(long)]
    data_dir: PathBuf,
    /// CIFAR-100 label set.
    #[arg(long, value_enum, default_value = "fine")]
    cifar100_label: Cifar100Label,
    /// Use the first N test images only.
    #[arg(long)]
    limit: Option<usize>,
}

impl DataArgs {
    fn load(&self) -> Result<ImageSet> {
        let set = self
            .dataset
            .load(&self.data_dir, Split::Test, self.cifar100_label)
            .with_context(|| format!("loading the {} test set", self.dataset.name()))?;
        Ok(match self.limit {
            Some(n) => set.truncated(n),
            None => set,
        })
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Fold a trained run into a `.mognet` integer model.
    Export {
        /// The run folder written by `mognet-train train`.
        #[arg(long)]
        run: PathBuf,
        /// Which weights.
        #[arg(long, value_enum, default_value = "best")]
        checkpoint: Which,
        /// The model file to write.
        #[arg(long)]
        out: PathBuf,
        /// Ternary weight packing.
        #[arg(long, value_enum, default_value = "2bit")]
        packing: PackingArg,
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
        data: DataArgs,
    },
    /// Compare the float model (Burn, eval mode) and the integer engine code by code.
    Parity {
        /// The run folder.
        #[arg(long)]
        run: PathBuf,
        /// Which weights of the run (must be the ones exported).
        #[arg(long, value_enum, default_value = "best")]
        checkpoint: Which,
        /// The exported model file.
        #[arg(long)]
        model: PathBuf,
        #[command(flatten)]
        data: DataArgs,
    },
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
            run,
            checkpoint,
            out,
            packing,
        } => export(&run, checkpoint.into(), &out, packing),
        Command::Summary { model } => summary(&model),
        Command::Eval { model, data } => eval(&model, &data),
        Command::Parity {
            run,
            checkpoint,
            model,
            data,
        } => parity(&run, checkpoint.into(), &model, &data),
        Command::Classify {
            model,
            resize,
            images,
        } => classify(&model, resize, &images),
    }
}

fn export(run: &Path, which: RunWeights, out: &Path, packing: PackingArg) -> Result<()> {
    let device = Device::flex();
    let (config, model) = load_run_model(run, which, &device)?;
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

fn eval(path: &Path, data: &DataArgs) -> Result<()> {
    let (model, _) = IntModel::load(path)?;
    let set = data.load()?;
    check_shape(&model, &set, data.dataset.name())?;
    let (correct, rate) = accuracy(&model, &set);
    println!(
        "{} images at {rate:.0} images/s ({} threads, scalar reference kernels)",
        set.len(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "accuracy: {:.4} ({correct}/{})",
        correct as f64 / set.len().max(1) as f64,
        set.len()
    );
    Ok(())
}

fn parity(run: &Path, which: RunWeights, path: &Path, data: &DataArgs) -> Result<()> {
    let device = Device::flex();
    let (config, float_model) = load_run_model(run, which, &device)?;
    let (model, _) = IntModel::load(path)?;
    if model.spec != config.spec() {
        bail!(
            "{} does not hold the network of {} (different shapes or options)",
            path.display(),
            run.display()
        );
    }
    let set = data.load()?;
    check_shape(&model, &set, data.dataset.name())?;
    let (_, fold_report) = fold(&float_model, &config)?;
    let report =
        mognet_infer::parity::parity(&float_model, &config, &fold_report, &model, &set, &device);
    println!("{}", report.render());
    Ok(())
}

/// A decoded PNG as `[c][y][x]` u8 planes.
fn read_png(path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder
        .read_info()
        .with_context(|| format!("{}: not a readable PNG", path.display()))?;
    let mut buf = vec![0; reader.output_buffer_size().context("image too large")?];
    let frame = reader
        .next_frame(&mut buf)
        .with_context(|| format!("{}: corrupt PNG data", path.display()))?;
    let (w, h) = (frame.width as usize, frame.height as usize);
    let (channels, take): (usize, &[usize]) = match frame.color_type {
        png::ColorType::Grayscale => (1, &[0]),
        png::ColorType::GrayscaleAlpha => (1, &[0]),
        png::ColorType::Rgb => (3, &[0, 1, 2]),
        png::ColorType::Rgba => (3, &[0, 1, 2]),
        other => bail!("{}: unsupported PNG colour type {other:?}", path.display()),
    };
    let stride = frame.color_type.samples();
    let mut planes = vec![0u8; channels * h * w];
    for (i, px) in buf[..h * w * stride].chunks_exact(stride).enumerate() {
        for (c, &s) in take.iter().enumerate() {
            planes[c * h * w + i] = px[s];
        }
    }
    Ok((channels, h, w, planes))
}

fn classify(path: &Path, resize: bool, images: &[PathBuf]) -> Result<()> {
    let (model, _) = IntModel::load(path)?;
    let s = &model.spec;
    let [mh, mw] = s.input_size;
    for image in images {
        let (c, h, w, mut planes) = read_png(image)?;
        let mut c = c;
        if c != s.in_channels {
            planes = match (c, s.in_channels) {
                // ITU-R BT.601 luma, in integers.
                (3, 1) => (0..h * w)
                    .map(|i| {
                        let (r, g, b) = (
                            planes[i] as u32,
                            planes[h * w + i] as u32,
                            planes[2 * h * w + i] as u32,
                        );
                        ((299 * r + 587 * g + 114 * b + 500) / 1000) as u8
                    })
                    .collect(),
                (1, 3) => planes.repeat(3),
                _ => bail!(
                    "{}: {c} channels, the model takes {}",
                    image.display(),
                    s.in_channels
                ),
            };
            c = s.in_channels;
        }
        let pixels = if (h, w) == (mh, mw) {
            planes
        } else if c == 1 && (h, w) == (28, 28) && (mh, mw) == (32, 32) {
            let mut out = vec![0u8; 32 * 32];
            for y in 0..28 {
                out[(y + 2) * 32 + 2..(y + 2) * 32 + 30]
                    .copy_from_slice(&planes[y * 28..(y + 1) * 28]);
            }
            out
        } else if resize {
            let mut out = vec![0u8; c * mh * mw];
            for ch in 0..c {
                for y in 0..mh {
                    for x in 0..mw {
                        out[(ch * mh + y) * mw + x] =
                            planes[(ch * h + y * h / mh) * w + x * w / mw];
                    }
                }
            }
            out
        } else {
            bail!(
                "{}: {w}x{h} pixels, the model takes {mw}x{mh} (pass --resize to resize)",
                image.display()
            );
        };
        let p = model.predict(&pixels);
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
