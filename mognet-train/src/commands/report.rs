//! `report`: the table and chart of a sweep.

use std::path::PathBuf;

use anyhow::Result;

/// Arguments of `report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The sweep folder.
    #[arg(long)]
    sweep: PathBuf,
    /// Print the JSON form instead of the markdown table.
    #[arg(long)]
    json: bool,
}

/// Writes report.md, report.json and report.png into the sweep folder and prints the table
/// (or the JSON).
pub fn run(args: ReportArgs) -> Result<()> {
    let sweep = &args.sweep;
    let report = mognet_train::sweep::collect(sweep)?;
    report.write(sweep)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.markdown());
        println!(
            "wrote {}, report.json and report.png",
            sweep.join("report.md").display()
        );
    }
    Ok(())
}
