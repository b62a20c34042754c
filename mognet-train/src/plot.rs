//! Training curves of a run (`RUN_DIR/metrics.jsonl`) as a PNG: loss and accuracy per epoch.
//!
//! The font is compiled in (DejaVu Sans Mono, `assets/`), so plotting needs no system fonts and
//! draws the same picture on every machine.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::prelude::*;
use thiserror::Error;

use crate::train::EpochMetrics;

const FONT: &[u8] = include_bytes!("../assets/DejaVuSansMono.ttf");
pub(crate) const FAMILY: &str = "mognet-mono";
/// Picture size in pixels.
pub const SIZE: (u32, u32) = (1200, 480);

/// Why a plot could not be made.
#[derive(Debug, Error)]
pub enum PlotError {
    /// The metrics file is missing or unreadable.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line of the metrics file is not an epoch record.
    #[error("{path}, line {line}: not an epoch record: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What serde said.
        message: String,
    },
    /// No epoch has finished yet.
    #[error("{path} has no epochs yet: train at least one epoch first")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A loss or accuracy is NaN or infinite.
    #[error("{path}: epoch {epoch} has a non-finite {what}")]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// The epoch.
        epoch: usize,
        /// Which value.
        what: &'static str,
    },
    /// Drawing failed.
    #[error("drawing {path}: {message}")]
    Draw {
        /// The picture.
        path: PathBuf,
        /// What plotters said.
        message: String,
    },
    /// Encoding or writing the PNG failed.
    #[error("writing {path}: {message}")]
    Write {
        /// The picture.
        path: PathBuf,
        /// The cause.
        message: String,
    },
}

/// Reads every epoch record of a `metrics.jsonl`, checking that the curves are finite.
pub fn read_metrics(path: &Path) -> Result<Vec<EpochMetrics>, PlotError> {
    let text = std::fs::read_to_string(path).map_err(|source| PlotError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut epochs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let m: EpochMetrics = serde_json::from_str(line).map_err(|e| PlotError::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            message: e.to_string(),
        })?;
        for (what, v) in [
            ("train loss", Some(m.train_loss)),
            ("valid loss", m.valid_loss),
            ("train accuracy", Some(m.train_acc)),
            ("valid accuracy", m.valid_acc),
        ] {
            if v.is_some_and(|v| !v.is_finite()) {
                return Err(PlotError::NonFinite {
                    path: path.to_path_buf(),
                    epoch: m.epoch,
                    what,
                });
            }
        }
        epochs.push(m);
    }
    if epochs.is_empty() {
        return Err(PlotError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(epochs)
}

/// Registers the bundled font under [`FAMILY`] (once).
pub(crate) fn register_font() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("the bundled font parses"));
    });
}

/// Draws the curves of `epochs` into an RGB buffer of [`SIZE`]; `title` heads the picture.
pub fn render(epochs: &[EpochMetrics], title: &str) -> Result<Vec<u8>, String> {
    register_font();
    let (w, h) = SIZE;
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let root = root
            .titled(title, (FAMILY, 22))
            .map_err(|e| e.to_string())?;
        let (left, right) = root.split_horizontally(w / 2);
        let loss_max = epochs
            .iter()
            .flat_map(|m| [Some(m.train_loss), m.valid_loss])
            .flatten()
            .fold(0.0f64, f64::max)
            * 1.1;
        panel(
            &left,
            "cross-entropy loss",
            0.0..loss_max.max(1e-3),
            epochs,
            |m| (m.train_loss, m.valid_loss),
        )?;
        let acc_min = epochs
            .iter()
            .flat_map(|m| [Some(m.train_acc), m.valid_acc])
            .flatten()
            .fold(1.0f64, f64::min);
        let lo = ((acc_min * 100.0 - 5.0) / 10.0).floor().max(0.0) * 10.0;
        panel(&right, "top-1 accuracy (%)", lo..100.0, epochs, |m| {
            (100.0 * m.train_acc, m.valid_acc.map(|a| 100.0 * a))
        })?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(buf)
}

/// Whole epochs only: plotters also places ticks between them.
fn epoch_label(x: &f64) -> String {
    if (x - x.round()).abs() < 1e-6 && *x >= 1.0 {
        format!("{x:.0}")
    } else {
        String::new()
    }
}

/// One chart: the training and validation values (`value` gives both) of every epoch.
fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    y: std::ops::Range<f64>,
    epochs: &[EpochMetrics],
    value: impl Fn(&EpochMetrics) -> (f64, Option<f64>),
) -> Result<(), String> {
    let last = epochs.iter().map(|m| m.epoch).max().unwrap_or(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FAMILY, 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.5..last + 0.5, y)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .x_label_formatter(&epoch_label)
        .label_style((FAMILY, 14))
        .draw()
        .map_err(|e| e.to_string())?;
    series(&mut chart, epochs, |m| Some(value(m).0), "train", BLUE)?;
    if epochs.iter().any(|m| value(m).1.is_some()) {
        series(&mut chart, epochs, |m| value(m).1, "validation", RED)?;
    }
    legend(&mut chart)
}

type Chart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

fn series<'a>(
    chart: &mut Chart<'a, 'a>,
    epochs: &[EpochMetrics],
    value: impl Fn(&EpochMetrics) -> Option<f64>,
    label: &str,
    color: RGBColor,
) -> Result<(), String> {
    let points: Vec<(f64, f64)> = epochs
        .iter()
        .filter_map(|m| Some((m.epoch as f64, value(m)?)))
        .collect();
    chart
        .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
        .map_err(|e| e.to_string())?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    chart
        .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn legend<'a>(chart: &mut Chart<'a, 'a>) -> Result<(), String> {
    chart
        .configure_series_labels()
        .label_font((FAMILY, 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| e.to_string())
}

/// Plots `RUN_DIR/metrics.jsonl` into `out` (written atomically); returns the epochs drawn.
pub fn plot_run(run_dir: &Path, out: &Path) -> Result<usize, PlotError> {
    let metrics = run_dir.join("metrics.jsonl");
    let epochs = read_metrics(&metrics)?;
    let name = run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| run_dir.display().to_string());
    // The test accuracy is reported apart from the curves: it was read once, at the end.
    let test = match crate::train::read_test(run_dir) {
        Ok(Some(t)) => format!(
            "; test {:.2}% (epoch {}, read once)",
            100.0 * t.accuracy,
            t.epoch
        ),
        _ => String::new(),
    };
    let title = format!("{name}: {} epoch(s){test}", epochs.len());
    let rgb = render(&epochs, &title).map_err(|message| PlotError::Draw {
        path: out.to_path_buf(),
        message,
    })?;
    let png = encode_png(&rgb, SIZE).map_err(|message| PlotError::Write {
        path: out.to_path_buf(),
        message,
    })?;
    mognet_core::persist::write_atomic(out, &png).map_err(|e| PlotError::Write {
        path: out.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(epochs.len())
}

/// An RGB buffer of `w x h` as PNG bytes.
pub(crate) fn encode_png(rgb: &[u8], (w, h): (u32, u32)) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(rgb).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(n: usize, loss: f64, acc: f64) -> String {
        format!(
            r#"{{"epoch":{n},"lr":0.1,"train_loss":{loss},"train_acc":{acc},"valid_loss":{},"valid_acc":{},"regularizer":0.0,"occupancy":[],"gate_on":[],"images_per_sec":1.0,"epoch_seconds":1.0,"wall_seconds":1.0,"steps":1,"complete":true}}"#,
            loss + 0.1,
            acc - 0.05
        )
    }

    #[test]
    fn plots_a_run_and_draws_the_curves() {
        let dir = std::env::temp_dir().join(format!("mognet-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lines = [epoch(1, 1.2, 0.6), epoch(2, 0.7, 0.8), epoch(3, 0.5, 0.88)].join("\n");
        std::fs::write(dir.join("metrics.jsonl"), lines + "\n").unwrap();
        let out = dir.join("curves.png");
        assert_eq!(plot_run(&dir, &out).unwrap(), 3);
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&out).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        assert_eq!((reader.info().width, reader.info().height), SIZE);
        let mut rgb = vec![0; reader.output_buffer_size().unwrap()];
        reader.next_frame(&mut rgb).unwrap();
        let count = |c: [u8; 3]| rgb.chunks(3).filter(|p| *p == c).count();
        // Both curves of both panels are drawn (lines and markers), and text is rendered.
        assert!(count([0, 0, 255]) > 500, "blue train curves");
        assert!(count([255, 0, 0]) > 500, "red validation curves");
        assert!(
            rgb.chunks(3)
                .filter(|p| p[0] < 100 && p[0] == p[1] && p[1] == p[2])
                .count()
                > 2000
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_metrics_name_the_file_and_line() {
        let dir = std::env::temp_dir().join(format!("mognet-plot-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("metrics.jsonl");
        std::fs::write(&path, format!("{}\n{{\"epoch\": 2}}\n", epoch(1, 1.0, 0.5))).unwrap();
        let err = plot_run(&dir, &dir.join("c.png")).unwrap_err().to_string();
        assert!(err.contains("metrics.jsonl, line 2"), "{err}");
        std::fs::write(&path, "").unwrap();
        let err = plot_run(&dir, &dir.join("c.png")).unwrap_err().to_string();
        assert!(err.contains("no epochs yet"), "{err}");
        std::fs::write(&path, epoch(1, 1.0, 0.5).replace("1.1", "NaN")).unwrap();
        assert!(plot_run(&dir, &dir.join("c.png")).is_err());
        let err = plot_run(&dir.join("missing"), &dir.join("c.png"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing/metrics.jsonl"), "{err}");
        assert!(!dir.join("c.png").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
