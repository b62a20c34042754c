//! The sweep folder itself: `grid.json`, which ties the folder to one grid, and a
//! `.gitignore`, so that committing the folder keeps each finished job's results and leaves
//! its checkpoints out.

use std::path::{Path, PathBuf};

use mognet_core::persist::read_json;

use crate::sweep::grid::Grid;
use crate::sweep::run::SweepError;
use crate::train::checkpoint::{CheckpointError, write_atomic};

/// What `git add` of a sweep folder takes: per job (`ARM/seed-S/`) the four files a finished
/// job leaves for the report and for anyone who checks it. A job with a `result.json` is
/// skipped by a rerun, so committed results survive fresh clones; the checkpoints (megabytes per
/// job) stay local, and an interrupted job resumes from them or starts over on a new clone.
pub const SWEEP_GITIGNORE: &str = "\
# Written by `mognet-train sweep`. Committing this folder keeps, per finished job, what the
# report reads (result.json) and what checks it (config, per-epoch metrics, exported model);
# checkpoints stay local.
/*/*/*
!/*/*/result.json
!/*/*/config.json
!/*/*/metrics.jsonl
!/*/*/model.mognet
";

/// Writes `DIR/grid.json`, or checks that the folder's is this grid; writes `DIR/.gitignore`
/// when the folder has none (one already there is the user's and kept).
pub(crate) fn claim_folder(grid: &Grid, dir: &Path) -> Result<(), SweepError> {
    let path = dir.join("grid.json");
    let ours = serde_json::to_value(grid).expect("a grid serializes");
    match read_json(&path) {
        Ok(stored) if stored != ours => return Err(SweepError::OtherGrid { path }),
        Ok(_) => {}
        Err(CheckpointError::Missing { .. }) => {
            create_dir(dir)?;
            let json = serde_json::to_vec_pretty(&ours).expect("a grid serializes");
            write_atomic(&path, &json)?;
        }
        Err(e) => return Err(e.into()),
    }
    let ignore = dir.join(".gitignore");
    if !ignore.exists() {
        write_atomic(&ignore, SWEEP_GITIGNORE.as_bytes())?;
    }
    Ok(())
}

fn create_dir(dir: &Path) -> Result<(), CheckpointError> {
    std::fs::create_dir_all(dir).map_err(|source| CheckpointError::Io {
        path: PathBuf::from(dir),
        source,
    })
}
