//! A sweep's table: per arm, bits, MACs, validation and integer test accuracy as mean +- std
//! over seeds, and their differences to the first arm, with whether the test difference exceeds
//! twice the pooled standard deviation; written as `report.md`, `report.json` and a chart
//! `report.png`.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
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

/// Mean and sample standard deviation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanStd {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation; none for a single value, which has no spread to measure.
    pub std: Option<f64>,
}

impl MeanStd {
    /// Of `values`; none when there are none.
    pub fn of(values: &[f64]) -> Option<MeanStd> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1).max(1) as f64;
        Some(MeanStd {
            mean,
            std: (n > 1).then(|| var.sqrt()),
        })
    }

    /// `mean +- std` in percent, or the mean alone for a single value.
    fn percent(&self) -> String {
        match self.std {
            Some(std) => format!("{:.2} +- {:.2}", 100.0 * self.mean, 100.0 * std),
            None => format!("{:.2}", 100.0 * self.mean),
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
    /// Stored bits of the exported file (mean over seeds; the threshold widths vary a little);
    /// none before a run has finished.
    pub file_bits: Option<u64>,
    /// Multiply-accumulates per image; none before a run has finished.
    pub macs: Option<u64>,
    /// Validation accuracy; none without runs that validated.
    pub valid: Option<MeanStd>,
    /// Integer engine test accuracy; none before a run has finished.
    pub test: Option<MeanStd>,
    /// Validation accuracy minus the first arm's (none for the first arm): what a recipe
    /// decision, which never reads the test set, compares.
    pub valid_diff: Option<f64>,
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
            file_bits: bits.checked_div(results.len() as u64),
            macs: results.first().map(|r| r.macs),
            valid: valid.and_then(|v| MeanStd::of(&v)),
            test: MeanStd::of(&test),
            valid_diff: None,
            diff: None,
            exceeds_two_std: None,
        }
    }
}

/// Fills every later row's differences to the first arm in validation and test accuracy, and
/// whether the test difference exceeds twice the pooled std where both arms have two runs or
/// more.
fn compare_to_first(arms: &mut [ArmRow]) {
    let Some((first, rest)) = arms.split_first_mut() else {
        return;
    };
    for row in rest.iter_mut() {
        row.valid_diff = row.valid.zip(first.valid).map(|(v, b)| v.mean - b.mean);
        let Some((test, base)) = row.test.zip(first.test) else {
            continue;
        };
        let diff = test.mean - base.mean;
        row.diff = Some(diff);
        row.exceeds_two_std = test.std.zip(base.std).map(|(a, b)| {
            let pooled = ((a.powi(2) + b.powi(2)) / 2.0).sqrt();
            diff.abs() > 2.0 * pooled
        });
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

/// `text` for a markdown table cell: a `|` (as in `|w|`) would end the cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// A number, or `-` when there is none yet.
fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or("-".into(), |v| v.to_string())
}

impl SweepReport {
    /// The markdown table (accuracies in percent).
    pub fn markdown(&self) -> String {
        let mut s = String::from(
            "| arm | what it tests | runs | bits | MACs | validation % | valid vs first arm (points) | integer test % | test vs first arm (points) | beyond 2 pooled std |\n|---|---|---|---|---|---|---|---|---|---|\n",
        );
        let points = |d: Option<f64>| or_dash(d.map(|d| format!("{:+.2}", 100.0 * d)));
        for r in &self.arms {
            let (valid_diff, diff) = (points(r.valid_diff), points(r.diff));
            let sig = or_dash(r.exceeds_two_std.map(|yes| if yes { "yes" } else { "no" }));
            let valid = or_dash(r.valid.map(|m| m.percent()));
            let test = or_dash(r.test.map(|m| m.percent()));
            s.push_str(&format!(
                "| {} | {} | {}/{} | {} | {} | {valid} | {valid_diff} | {test} | {diff} | {sig} |\n",
                cell(&r.arm),
                cell(&r.about),
                r.runs,
                r.planned,
                or_dash(r.file_bits),
                or_dash(r.macs)
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
        let done = self.arms.iter().filter_map(|r| r.test);
        let (lo, hi) = done.fold((1.0f64, 0.0f64), |(lo, hi), t| {
            let std = t.std.unwrap_or(0.0);
            (lo.min(t.mean - std), hi.max(t.mean + std))
        });
        let pad = ((hi - lo) * 0.15).max(0.002);
        100.0 * (lo - pad)..100.0 * (hi + pad)
    }

    /// Draws the axes, the arms' names and one error bar per finished arm onto `root`.
    fn draw_chart(&self, root: &DrawingArea<BitMapBackend<'_>, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let n = self.arms.len() as f64;
        let range = self.test_range();
        let mut chart = ChartBuilder::on(root)
            .caption(
                "integer test accuracy (%) per arm, mean +- std over seeds",
                (FAMILY, 20),
            )
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(-0.5..n - 0.5, range.clone())
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_labels(self.arms.len().max(2) * 2 + 1)
            .x_label_formatter(&|_| String::new())
            .disable_x_mesh()
            .label_style((FAMILY, 13))
            .draw()
            .map_err(|e| e.to_string())?;
        // Names in two staggered rows: side by side, the long ones ran into each other.
        let style =
            TextStyle::from((FAMILY, 13).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
        for (i, row) in self.arms.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(i as f64, range.start));
            let y = y + 6 + 18 * (i as i32 % 2);
            root.draw(&Text::new(row.arm.as_str(), (x, y), &style))
                .map_err(|e| e.to_string())?;
        }
        // One run draws its mean with a zero-length bar: it has no spread to show.
        let bars = self.arms.iter().enumerate();
        let bars = bars.filter_map(|(i, r)| r.test.map(|t| (i, t)));
        let bars = bars.map(|(i, t)| {
            let (m, s) = (100.0 * t.mean, 100.0 * t.std.unwrap_or(0.0));
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
        let m = MeanStd::of(&[0.90, 0.92, 0.94]).unwrap();
        assert!((m.mean - 0.92).abs() < 1e-12);
        assert!((m.std.unwrap() - 0.02).abs() < 1e-12);
        let one = MeanStd::of(&[0.5]).unwrap();
        assert_eq!((one.mean, one.std), (0.5, None));
        assert_eq!(MeanStd::of(&[]), None);
    }

    /// A row of `runs` finished runs with test accuracy `[mean, std]` (std only for 2 or more).
    fn row(name: &str, runs: usize, test: [f64; 2]) -> ArmRow {
        ArmRow {
            arm: name.into(),
            about: String::new(),
            runs,
            planned: 3,
            file_bits: (runs > 0).then_some(218_776),
            macs: (runs > 0).then_some(21_348_352),
            valid: (runs > 0).then(|| MeanStd {
                mean: test[0] + 0.002,
                std: None,
            }),
            test: (runs > 0).then(|| MeanStd {
                mean: test[0],
                std: (runs > 1).then_some(test[1]),
            }),
            valid_diff: None,
            diff: None,
            exceeds_two_std: None,
        }
    }

    #[test]
    fn the_table_escapes_pipes_and_shows_no_numbers_an_arm_has_not_made() {
        let mut quantile = row("quantile", 3, [0.9012, 0.0034]);
        quantile.about = "threshold at the 1/3 quantile of |w|".into();
        let mut arms = [
            row("first", 1, [0.9099, 0.0]),
            quantile,
            row("unrun", 0, [0.0; 2]),
        ];
        compare_to_first(&mut arms);
        let md = SweepReport {
            arms: arms.to_vec(),
        }
        .markdown();
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(
            lines[2],
            "| first |  | 1/3 | 218776 | 21348352 | 91.19 | - | 90.99 | - | - |"
        );
        assert_eq!(
            lines[3],
            "| quantile | threshold at the 1/3 quantile of \\|w\\| | 3/3 | 218776 | 21348352 | 90.32 \
             | -0.87 | 90.12 +- 0.34 | -0.87 | - |"
        );
        assert_eq!(lines[4], "| unrun |  | 0/3 | - | - | - | - | - | - | - |");
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
        assert!((arms[1].valid_diff.unwrap() + 0.01).abs() < 1e-12);
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
