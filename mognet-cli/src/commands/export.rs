//! `export`: fold a trained float model into a `.mognet` integer model.

use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::Device;
use clap::ValueEnum;
use mognet_arch::Summary;
use mognet_core::fold::fold;
use mognet_infer::{IntModel, Packing};

use super::weights::FloatWeights;

/// How ternary weights are packed in the file.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum PackingArg {
    /// 2 bits per ternary weight.
    #[value(name = "2bit")]
    TwoBit,
    /// Base 3, 5 weights per byte (1.6 bits per weight).
    Base3,
}

/// Arguments of `export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    weights: FloatWeights,
    /// The model file to write.
    #[arg(long)]
    out: PathBuf,
    /// Ternary weight packing.
    #[arg(long, value_enum, default_value = "2bit")]
    packing: PackingArg,
}

/// Folds the float model, writes the file, reads it back and reports its size.
pub fn run(args: ExportArgs) -> Result<()> {
    let out = &args.out;
    let device = Device::flex();
    let (config, model, _) = args.weights.load(&device)?;
    let (int_model, report) = fold(&model, &config)?;
    let packing = match args.packing {
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
