//! `demo`: the main job on the shipped sample, in one command.

use std::path::PathBuf;

use anyhow::{Result, bail};
use mognet_train::{BackendChoice, demo};

/// Arguments of `demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Output folder (replaced if an earlier demo wrote it).
    #[arg(long, default_value = "runs/demo")]
    out: PathBuf,
    /// Folder with the Fashion-MNIST files.
    #[arg(long, default_value = "datasets/samples/fashion-mnist")]
    data_dir: PathBuf,
    /// Training budget in minutes (the default fits about seven epochs of the sample on 2
    /// idle cores; the demo needs three for 80% test accuracy). A budget that covers one
    /// epoch trains at least three, even where they take longer.
    #[arg(long, default_value_t = 4.0)]
    minutes: f64,
    /// Backend for training.
    #[arg(long, value_enum, default_value = "auto")]
    backend: BackendChoice,
}

/// Trains, exports, checks parity and prints the demo's table.
pub fn run(args: DemoArgs) -> Result<()> {
    let minutes = args.minutes;
    if !(minutes.is_finite() && minutes > 0.0 && minutes <= 24.0 * 60.0) {
        bail!("--minutes must be above 0 and at most a day (1440), got {minutes}");
    }
    let selected = args.backend.select()?;
    println!("backend: {}", selected.description);
    let report = demo::demo(&args.out, &args.data_dir, minutes, &selected, &mut |line| {
        println!("{line}")
    })?;
    println!("{}", report.render(&args.out));
    Ok(())
}
