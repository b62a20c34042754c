//! `mognet-train`: the command-line trainer.

mod commands;

use anyhow::Result;
use clap::{Parser, Subcommand};
use commands::{average, bench, demo, eval, plot, report, summary, sweep, train};

#[derive(Debug, Parser)]
#[command(
    name = "mognet-train",
    version,
    about = "Train MOGNET networks and inspect their size"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the model's size in bits, layer by layer; last line `total: <bits> bits (<x> Mb)`.
    Summary(summary::SummaryArgs),
    /// Benchmark one training step (median images/s, with forward/backward/optimizer times) and
    /// the float eval forward, for each preset given.
    BenchTrain(bench::BenchTrainArgs),
    /// Benchmark data loading: batches/s of CIFAR-shaped augmented batches through Burn's
    /// multi-threaded loader and through the trainer's in-order pipeline.
    BenchData(bench::BenchDataArgs),
    /// The main job: train mognet-s on the shipped Fashion-MNIST sample for a short budget,
    /// export it, check float/integer parity and run the integer engine; prints one table.
    Demo(demo::DemoArgs),
    /// Train a model; checkpoints, metrics and the best model go to --out.
    Train(Box<train::TrainArgs>),
    /// Run a grid of arms times seeds as run folders under --out: finished runs are skipped,
    /// interrupted ones resumed; each finished run is exported and tested once by the integer
    /// engine (ARM/seed-S/result.json).
    Sweep(sweep::SweepArgs),
    /// The table of a sweep: per arm bits, MACs, validation and integer test accuracy (mean +-
    /// std over seeds), the difference to the first arm; writes report.md, report.json and
    /// report.png into the sweep folder and prints the table.
    Report(report::ReportArgs),
    /// Average two or more trained models of one architecture into a new run folder: batch
    /// norms re-estimated, each input and the average scored on validation, the average's test
    /// accuracy read once (last line).
    Average(average::AverageArgs),
    /// Draw a run's training curves (loss and accuracy per epoch) as a PNG.
    Plot(plot::PlotArgs),
    /// Float accuracy of a run's model on the test split; last line `accuracy: 0.xxxx
    /// (correct/total)`.
    Eval(eval::EvalArgs),
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Summary(args) => summary::run(args),
        Command::BenchTrain(args) => bench::train(args),
        Command::BenchData(args) => bench::data(args),
        Command::Demo(args) => demo::run(args),
        Command::Train(args) => train::run(*args),
        Command::Sweep(args) => sweep::run(args),
        Command::Report(args) => report::run(args),
        Command::Average(args) => average::run(args),
        Command::Plot(args) => plot::run(args),
        Command::Eval(args) => eval::run(args),
    }
}
