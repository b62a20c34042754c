//! `mognet-infer`: export a trained run to a `.mognet` file and run it as an integer program.

mod commands;
mod tract;

use anyhow::Result;
use clap::{Parser, Subcommand};
use commands::{bench, check_onnx, classify, eval, export, export_onnx, parity, summary};

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

#[derive(Debug, Subcommand)]
enum Command {
    /// Fold a trained run (or a `.bpk` with its config) into a `.mognet` integer model.
    Export(export::ExportArgs),
    /// Write a `.mognet` model as an ONNX graph of standard operators.
    ExportOnnx(export_onnx::ExportOnnxArgs),
    /// Run an ONNX export in tract on a test set and compare its classes with the integer
    /// engine's; last line `tract: accuracy ...; classes differing from the engine: N of M`.
    CheckOnnx(check_onnx::CheckOnnxArgs),
    /// The bit table of a `.mognet` file, with its actual widths and size.
    Summary(summary::SummaryArgs),
    /// Integer accuracy on a test set; last line `accuracy: 0.xxxx (correct/total)`.
    Eval(eval::EvalArgs),
    /// Compare the float model (Burn, eval mode) and the integer engine code by code.
    Parity(parity::ParityArgs),
    /// Benchmark the fast integer engine: images/s (median), MAC/s, kernel variant, time per
    /// layer kind, the measured roofline; `--compare` adds the scalar reference, Burn's Flex
    /// float eval and tract running the model's ONNX export, on the same inputs.
    Bench(bench::BenchArgs),
    /// Classify PNG images (grayscale or RGB), printing the class and the logits.
    Classify(classify::ClassifyArgs),
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Export(args) => export::run(args),
        Command::ExportOnnx(args) => export_onnx::run(args),
        Command::CheckOnnx(args) => check_onnx::run(args),
        Command::Summary(args) => summary::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Parity(args) => parity::run(args),
        Command::Bench(args) => bench::bench(&args),
        Command::Classify(args) => classify::run(args),
    }
}
