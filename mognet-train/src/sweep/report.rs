//! A sweep's table: per arm, bits, MACs, validation and integer test accuracy as mean +- std
//! over seeds, and the difference to the first arm with whether it exceeds twice the pooled
//! standard deviation; written as `report.md`, `report.json` and a chart `report.png`.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::plot::{FAMILY, encode_png, register_font};
use crate::sweep::grid::{Arm, Grid, GridError};
use crate::sweep::run::{JobResult, result_path};
use crate::train::checkpoint::{CheckpointError, read_json, write_atomic};

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file of the sweep.
    #[error(transparent)]
    File(#[from] CheckpointError),
    /// The stored grid.
    #[error(transparent)]
    Grid(#[from] GridError),
    /// A result or grid file does not parse.
    #[error("{path}: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What serde said.
        detail: String,
    },
    /// No job has finished.
    #[error("{0}: no finished run yet (no ARM/seed-S/result.json)")]
    Empty(PathBuf),
    /// Drawing the chart failed.
    #[error("drawing {path}: {detail}")]
    Draw {
        /// The picture.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
}

/// Mean and sample standard deviation (0 for fewer than two values).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanStd {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation.
    pub std: f64,
}

impl MeanStd {
    /// Of `values` (none: NaN-free zeros).
    pub fn of(values: &[f64]) -> MeanStd {
        let n = values.len();
        if n == 0 {
            return MeanStd {
                mean: 0.0,
                std: 0.0,
            };
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        MeanStd {
            mean,
            std: var.sqrt(),
        }
    }
}

/// One arm's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmRow {
    /// Arm name.
    pub arm: String,
    /// What it tests.
    pub about: String,
    /// Finished runs (seeds).
    pub runs: usize,
    /// Runs the grid asks for.
    pub planned: usize,
    /// Stored bits of the exported file (mean over seeds; the threshold widths vary a little).
    pub file_bits: u64,
    /// Multiply-accumulates per image.
    pub macs: u64,
    /// Validation accuracy.
    pub valid: Option<MeanStd>,
    /// Integer engine test accuracy.
    pub test: MeanStd,
    /// Test accuracy minus the first arm's (none for the first arm).
    pub diff: Option<f64>,
    /// Whether `|diff|` exceeds twice the pooled std (none when either arm has under 2 runs).
    pub exceeds_two_std: Option<bool>,
}

/// The whole table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepReport {
    /// Rows in grid order.
    pub arms: Vec<ArmRow>,
}

/// A job's `result.json`; an error naming the file.
fn read_result(path: PathBuf) -> Result<JobResult, ReportError> {
    serde_json::from_value(read_json(&path)?).map_err(|e| ReportError::Corrupt {
        path,
        detail: e.to_string(),
    })
}

impl ArmRow {
    /// The row of `arm` from its finished runs (`planned` asked for), not yet compared.
    fn new(arm: &Arm, results: &[JobResult], planned: usize) -> ArmRow {
        let test: Vec<f64> = results.iter().map(|r| r.int_test_acc).collect();
        let valid: Option<Vec<f64>> = results.iter().map(|r| r.valid_acc).collect();
        let bits: u64 = results.iter().map(|r| r.file_bits).sum();
        ArmRow {
            arm: arm.name.clone(),
            about: arm.about.clone(),
            runs: results.len(),
            planned,
            file_bits: bits.checked_div(results.len() as u64).unwrap_or(0),
            macs: results.first().map_or(0, |r| r.macs),
            valid: valid.filter(|v| !v.is_empty()).map(|v| MeanStd::of(&v)),
            test: MeanStd::of(&test),
            diff: None,
            exceeds_two_std: None,
        }
    }
}

/// Fills every later row's difference to the first arm, and whether it exceeds twice the
/// pooled std where both arms have two runs or more.
fn compare_to_first(arms: &mut [ArmRow]) {
    let Some((first, rest)) = arms.split_first_mut() else {
        return;
    };
    if first.runs == 0 {
        return;
    }
    for row in rest.iter_mut().filter(|r| r.runs > 0) {
        let diff = row.test.mean - first.test.mean;
        let pooled = ((row.test.std.powi(2) + first.test.std.powi(2)) / 2.0).sqrt();
        row.diff = Some(diff);
        row.exceeds_two_std = (row.runs > 1 && first.runs > 1).then(|| diff.abs() > 2.0 * pooled);
    }
}

/// Reads every finished job of the sweep in `dir`.
pub fn collect(dir: &Path) -> Result<SweepReport, ReportError> {
    // The stored grid, with the checks of any grid file (at least one arm and one seed).
    let grid = Grid::load(&dir.join("grid.json"))?;
    let mut results: Vec<Vec<JobResult>> = vec![Vec::new(); grid.arms.len()];
    for job in &grid.jobs()? {
        let path = result_path(&job.dir(dir));
        if path.exists() {
            results[job.arm].push(read_result(path)?);
        }
    }
    if results.iter().all(|r| r.is_empty()) {
        return Err(ReportError::Empty(dir.to_path_buf()));
    }
    let mut arms: Vec<ArmRow> = grid
        .arms
        .iter()
        .zip(&results)
        .map(|(arm, rs)| ArmRow::new(arm, rs, grid.seeds.len()))
        .collect();
    compare_to_first(&mut arms);
    Ok(SweepReport { arms })
}

fn pct(m: &MeanStd) -> String {
    format!("{:.2} +- {:.2}", 100.0 * m.mean, 100.0 * m.std)
}

impl SweepReport {
    /// The markdown table (accuracies in percent).
    pub fn markdown(&self) -> String {
        let mut s = String::from(
            "| arm | what it tests | runs | bits | MACs | validation % | integer test % | vs first arm (points) | beyond 2 pooled std |\n|---|---|---|---|---|---|---|---|---|\n",
        );
        for r in &self.arms {
            let diff = r.diff.map_or("-".into(), |d| format!("{:+.2}", 100.0 * d));
            let sig = match r.exceeds_two_std {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            };
            let (test, valid) = if r.runs == 0 {
                ("-".into(), "-".into())
            } else {
                (pct(&r.test), r.valid.as_ref().map_or("-".into(), pct))
            };
            s.push_str(&format!(
                "| {} | {} | {}/{} | {} | {} | {valid} | {test} | {diff} | {sig} |\n",
                r.arm, r.about, r.runs, r.planned, r.file_bits, r.macs
            ));
        }
        s
    }

    /// The chart: integer test accuracy per arm with +-1 std error bars, as PNG bytes.
    pub fn chart(&self) -> Result<Vec<u8>, String> {
        register_font();
        let size = (1200u32, 520u32);
        let mut buf = vec![255u8; (size.0 * size.1 * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
            self.draw_chart(&root)?;
            root.present().map_err(|e| e.to_string())?;
        }
        encode_png(&buf, size)
    }

    /// The y range of the chart in percent: every finished arm's mean +- std, with a margin.
    fn test_range(&self) -> std::ops::Range<f64> {
        let done = self.arms.iter().filter(|r| r.runs > 0);
        let (lo, hi) = done.fold((1.0f64, 0.0f64), |(lo, hi), r| {
            (
                lo.min(r.test.mean - r.test.std),
                hi.max(r.test.mean + r.test.std),
            )
        });
        let pad = ((hi - lo) * 0.15).max(0.002);
        100.0 * (lo - pad)..100.0 * (hi + pad)
    }

    /// Draws the axes, the arms' names and one error bar per finished arm onto `root`.
    fn draw_chart(&self, root: &DrawingArea<BitMapBackend<'_>, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let n = self.arms.len() as f64;
        let names: Vec<String> = self.arms.iter().map(|r| r.arm.clone()).collect();
        let mut chart = ChartBuilder::on(root)
            .caption(
                "integer test accuracy (%) per arm, mean +- std over seeds",
                (FAMILY, 20),
            )
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(-0.5..n - 0.5, self.test_range())
            .map_err(|e| e.to_string())?;
        // Names only at the arms' integer positions: the mesh has labels between them too.
        let label = move |x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .x_labels(self.arms.len().max(2) * 2 + 1)
            .x_label_formatter(&label)
            .disable_x_mesh()
            .label_style((FAMILY, 13))
            .draw()
            .map_err(|e| e.to_string())?;
        let bars = self.arms.iter().enumerate().filter(|(_, r)| r.runs > 0);
        let bars = bars.map(|(i, r)| {
            let (m, s) = (100.0 * r.test.mean, 100.0 * r.test.std);
            ErrorBar::new_vertical(i as f64, m - s, m, m + s, BLUE.filled(), 12)
        });
        chart.draw_series(bars).map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Writes `report.md`, `report.json` and `report.png` into `dir` (atomically).
    pub fn write(&self, dir: &Path) -> Result<(), ReportError> {
        write_atomic(&dir.join("report.md"), self.markdown().as_bytes())?;
        let json = serde_json::to_vec_pretty(self).expect("a report serializes");
        write_atomic(&dir.join("report.json"), &json)?;
        let png_path = dir.join("report.png");
        let png = self.chart().map_err(|detail| ReportError::Draw {
            path: png_path.clone(),
            detail,
        })?;
        write_atomic(&png_path, &png)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_std() {
        let m = MeanStd::of(&[0.90, 0.92, 0.94]);
        assert!((m.mean - 0.92).abs() < 1e-12);
        assert!((m.std - 0.02).abs() < 1e-12);
        assert_eq!(MeanStd::of(&[0.5]).std, 0.0);
    }

    fn row(name: &str, runs: usize, test: [f64; 2]) -> ArmRow {
        ArmRow {
            arm: name.into(),
            about: String::new(),
            runs,
            planned: 3,
            file_bits: 0,
            macs: 0,
            valid: None,
            test: MeanStd {
                mean: test[0],
                std: test[1],
            },
            diff: None,
            exceeds_two_std: None,
        }
    }

    #[test]
    fn later_arms_are_compared_to_the_first_with_the_pooled_std() {
        let mut arms = [
            row("first", 3, [0.91, 0.002]),
            row("far", 3, [0.90, 0.002]),
            row("near", 3, [0.908, 0.002]),
            row("one-seed", 1, [0.95, 0.0]),
            row("unrun", 0, [0.0, 0.0]),
        ];
        compare_to_first(&mut arms);
        assert_eq!(arms[0].diff, None);
        // -1.0 point against 2 x 0.2 points pooled: beyond; -0.2 points: within.
        assert!((arms[1].diff.unwrap() + 0.01).abs() < 1e-12);
        assert_eq!(arms[1].exceeds_two_std, Some(true));
        assert_eq!(arms[2].exceeds_two_std, Some(false));
        // One seed gives a difference but no verdict; an arm without runs gives neither.
        assert!((arms[3].diff.unwrap() - 0.04).abs() < 1e-12);
        assert_eq!(arms[3].exceeds_two_std, None);
        assert_eq!((arms[4].diff, arms[4].exceeds_two_std), (None, None));
    }

    #[test]
    fn without_a_finished_first_arm_nothing_is_compared() {
        let mut arms = [row("first", 0, [0.0, 0.0]), row("b", 3, [0.9, 0.01])];
        compare_to_first(&mut arms);
        assert_eq!(arms[1].diff, None);
    }

    #[test]
    fn chart_range_covers_every_finished_arm_with_a_margin() {
        let report = SweepReport {
            arms: vec![
                row("a", 3, [0.90, 0.01]),
                row("b", 3, [0.93, 0.01]),
                row("unrun", 0, [0.0, 0.0]),
            ],
        };
        // 0.89..0.94, padded by 15% of the 0.05 span on each side.
        let r = report.test_range();
        assert!(
            (r.start - 88.25).abs() < 1e-9 && (r.end - 94.75).abs() < 1e-9,
            "{r:?}"
        );
    }
}
