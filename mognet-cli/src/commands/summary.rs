//! `summary`: the bit table of a `.mognet` file.

use std::path::PathBuf;

use anyhow::Result;
use mognet_arch::Summary;
use mognet_infer::{IntModel, Packing};

/// Arguments of `summary`.
#[derive(Debug, clap::Args)]
pub struct SummaryArgs {
    /// The model file.
    #[arg(long)]
    model: PathBuf,
}

/// Prints the bit table with the file's actual widths, and the file's size.
pub fn run(args: SummaryArgs) -> Result<()> {
    let (model, info) = IntModel::load(&args.model)?;
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
