//! `sweep`: a grid of arms times seeds, run as resumable run folders.

use std::path::PathBuf;

use anyhow::Result;
use mognet_train::BackendChoice;
use mognet_train::sweep::{Grid, JobStatus, Shard, SweepOptions, run_sweep};

/// Arguments of `sweep`.
#[derive(Debug, clap::Args)]
pub struct SweepArgs {
    /// The grid file (JSON; see the README's "Sweeps").
    #[arg(long)]
    grid: PathBuf,
    /// The sweep folder.
    #[arg(long)]
    out: PathBuf,
    /// Run only every N-th job, starting with the K-th (`K/N`, 1-based), so that N machines
    /// or processes share a sweep without coordination.
    #[arg(long)]
    shard: Option<String>,
    /// Backend for training.
    #[arg(long, value_enum, default_value = "auto")]
    backend: BackendChoice,
}

/// Runs this shard's jobs and counts what was run and what had finished before.
pub fn run(args: SweepArgs) -> Result<()> {
    let grid = Grid::load(&args.grid)?;
    let shard = args
        .shard
        .as_deref()
        .map(Shard::parse)
        .transpose()?
        .unwrap_or(Shard::ALL);
    let selected = args.backend.select()?;
    println!("backend: {}", selected.description);
    let options = SweepOptions {
        shard,
        stop_after_steps: None,
    };
    let statuses = run_sweep(&grid, &args.out, options, &selected.device, &mut |line| {
        println!("{line}")
    })?;
    let count = |s: JobStatus| statuses.iter().filter(|(_, x)| *x == s).count();
    println!(
        "shard {}/{}: {} jobs run, {} finished before; `mognet-train report --sweep {}` for the table",
        shard.k,
        shard.n,
        count(JobStatus::Done),
        count(JobStatus::Skipped),
        args.out.display()
    );
    Ok(())
}
