//! `plot`: a run's training curves as a PNG.

use std::path::PathBuf;

use anyhow::Result;

/// Arguments of `plot`.
#[derive(Debug, clap::Args)]
pub struct PlotArgs {
    /// The run folder (reads its metrics.jsonl).
    #[arg(long)]
    run: PathBuf,
    /// The picture; default RUN_DIR/curves.png.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Draws the curves and says where they went.
pub fn run(args: PlotArgs) -> Result<()> {
    let out = args.out.unwrap_or_else(|| args.run.join("curves.png"));
    let epochs = mognet_train::plot::plot_run(&args.run, &out)?;
    println!("wrote {} ({epochs} epochs)", out.display());
    Ok(())
}
