//! The main job: train mognet-s on the shipped Fashion-MNIST sample for a short budget, export
//! it to a `.mognet` file, check parity and run the integer engine, and report the whole story.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use mognet_core::parity::{accuracy, parity};
use mognet_core::{MognetConfig, Preset};
use mognet_data::{Cifar100Label, DataError, DatasetKind, Split};
use mognet_infer::InputError;

use crate::backend::Selected;
use crate::bench::train_step;
use crate::export::{ExportError, export_best};
use crate::train::{RunConfig, TrainConfig, TrainError, train};

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// `--out` exists and was not written by a demo.
    #[error("{0} exists and is not a demo folder; choose another --out")]
    NotADemoFolder(PathBuf),
    /// The demo's folder cannot be prepared.
    #[error("{what} {path}: {source}")]
    Folder {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// The sample is too small to hold out validation images and still train.
    #[error("{dir} holds {images} training images; the demo needs at least {needed}")]
    TooFewImages {
        /// The data folder.
        dir: PathBuf,
        /// Training images found.
        images: usize,
        /// The least that works.
        needed: usize,
    },
    /// The data cannot be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// Training failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// The trained model cannot be exported to the integer format.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// The integer engine refused the test images.
    #[error(transparent)]
    Input(#[from] InputError),
}

/// Marks a folder as the demo's own, so that a later demo may replace it.
const MARKER: &str = "demo.json";

/// Training images of the sample held out to choose the best epoch (a tenth of the 6,000).
const VALID_SPLIT: usize = 600;

/// Whole epochs the demo trains at least when its budget covers one: with 1,000 images held
/// out, three epochs of the other 5,000 reached 81.3% test accuracy on a busy machine (two
/// epochs of all 6,000 had reached 81.9%).
const MIN_EPOCHS: usize = 3;

/// What the demo measured.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// The training run.
    pub training: DemoTraining,
    /// The exported model on the test images.
    pub test: DemoTest,
}

/// The demo's training run.
#[derive(Debug, Clone)]
pub struct DemoTraining {
    /// Epochs trained.
    pub epochs: usize,
    /// Training images per epoch.
    pub train_images: usize,
    /// Training wall time in seconds.
    pub train_seconds: f64,
    /// The epoch kept, chosen on the validation images.
    pub best_epoch: usize,
    /// Its accuracy on the validation images.
    pub valid_accuracy: f64,
}

/// The exported model, float and integer, on the test images (read once).
#[derive(Debug, Clone)]
pub struct DemoTest {
    /// Float (Burn, eval mode) accuracy on the test images.
    pub float_accuracy: f64,
    /// Integer engine accuracy on the test images.
    pub int_accuracy: f64,
    /// Images where both pick the same class.
    pub top1_agreement: f64,
    /// Fraction of activation codes that differ between the two.
    pub code_mismatch: f64,
    /// Test images.
    pub test_images: usize,
    /// The `.mognet` file.
    pub model_file: PathBuf,
    /// File size in bits.
    pub file_bits: u64,
    /// The size summary's stored total (2-bit packing).
    pub summary_bits: u64,
    /// Integer engine images per second.
    pub int_images_per_sec: f64,
}

/// How the demo's training is sized to its budget.
struct Plan {
    epochs: usize,
    /// Images per epoch when the budget covers less than one epoch.
    limit: Option<usize>,
    /// Training images per epoch.
    train_images: usize,
    /// Minutes the plan takes at the measured rate.
    minutes: f64,
}

/// Runs the demo into `out` with `minutes` of training on `selected`.
pub fn demo(
    out: &Path,
    data_dir: &Path,
    minutes: f64,
    selected: &Selected,
    log: &mut dyn FnMut(&str),
) -> Result<DemoReport, DemoError> {
    claim_folder(out)?;
    let train_len = sample_train_images(data_dir)?;
    let model = MognetConfig::preset(Preset::S, 1, 10).with_seed(1);
    // Small batches and no augmentation learn the most from few passes over 6,000 images
    // (measured after one epoch: 77.7% at batch 32 against 70.7% with batch 64 and
    // augmentation, 77.5% at batch 16, 76.3% with Adam; after two epochs at batch 32: 81.9%).
    let batch = 32;
    log("measuring training speed...");
    let rate = train_step(&model, batch, 1, 2, &selected.device).images_per_sec;
    let base = TrainConfig::new(DatasetKind::FashionMnist, data_dir.to_path_buf())
        .with_batch_size(batch)
        .with_augment(Some(mognet_data::Augment::NONE))
        .with_valid_split(Some(VALID_SPLIT))
        .with_seed(1);
    let plan = plan(
        rate,
        minutes,
        batch,
        train_len - VALID_SPLIT,
        base.bn_recalibration,
    );
    log(&format!(
        "training {} for {} epoch(s) of {} images ({rate:.0} images/s measured, {minutes} minute budget)",
        Preset::S,
        plan.epochs,
        plan.train_images
    ));
    // Whole epochs only: the budget, with room for a slower machine than measured, ends the
    // run at an epoch's end.
    let train_config = base
        .with_epochs(plan.epochs)
        .with_limit_train(plan.limit)
        .with_time_budget_minutes(Some(minutes.max(plan.minutes) * 1.5))
        .with_budget_ends_epoch(true);
    let run = RunConfig {
        model,
        train: train_config,
    };
    let run_dir = out.join("run");
    let started = Instant::now();
    let outcome = train(&run_dir, &run, false, &selected.device, log)?;
    let training = DemoTraining {
        epochs: outcome.epochs.len(),
        train_images: plan.train_images,
        train_seconds: started.elapsed().as_secs_f64(),
        best_epoch: outcome.best_epoch,
        valid_accuracy: outcome.best_valid_acc.unwrap_or(0.0),
    };
    let test = export_and_test(out, &run_dir, data_dir, log)?;
    Ok(DemoReport { training, test })
}

/// The training images of the sample in `data_dir`, which must leave some after the
/// validation split.
fn sample_train_images(data_dir: &Path) -> Result<usize, DemoError> {
    let train_len = DatasetKind::FashionMnist
        .load(data_dir, Split::Train, Cifar100Label::Fine)?
        .len();
    if train_len <= 2 * VALID_SPLIT {
        return Err(DemoError::TooFewImages {
            dir: data_dir.to_path_buf(),
            images: train_len,
            needed: 2 * VALID_SPLIT + 1,
        });
    }
    Ok(train_len)
}

/// Makes `out` the demo's folder: a new one, or an earlier demo's, emptied.
fn claim_folder(out: &Path) -> Result<(), DemoError> {
    let folder = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| DemoError::Folder { what, path, source }
    };
    if out.exists() {
        if !out.join(MARKER).exists() {
            return Err(DemoError::NotADemoFolder(out.to_path_buf()));
        }
        std::fs::remove_dir_all(out).map_err(folder("removing the old demo in", out))?;
    }
    std::fs::create_dir_all(out).map_err(folder("creating", out))?;
    let marker = out.join(MARKER);
    std::fs::write(&marker, b"{\"written_by\": \"mognet-train demo\"}\n")
        .map_err(folder("writing", &marker))
}

/// Sizes the run to the budget at `rate` images/s: as many whole epochs of `train_len` images
/// as fit or, below one epoch, as many images, so the one-cycle schedule completes in time.
///
/// A budget that covers one epoch trains at least [`MIN_EPOCHS`], so that a machine a little
/// slower than the one the default budget was sized on (or busy) still reaches 80%. Each epoch
/// also validates on [`VALID_SPLIT`] held-out images and re-estimates batch-norm statistics on
/// `recalibration` images: counted at the training rate, which over-estimates those
/// forward-only passes a little.
fn plan(rate: f64, minutes: f64, batch: usize, train_len: usize, recalibration: usize) -> Plan {
    let budget_images = (rate * minutes * 60.0 * 0.9) as usize;
    let epoch_cost = train_len + VALID_SPLIT + recalibration;
    let (epochs, limit) = if budget_images >= epoch_cost {
        ((budget_images / epoch_cost).clamp(MIN_EPOCHS, 30), None)
    } else {
        (1, Some((budget_images / batch).max(2) * batch))
    };
    Plan {
        epochs,
        limit,
        train_images: limit.unwrap_or(train_len).min(train_len),
        minutes: (limit.unwrap_or(train_len) * epochs) as f64 / rate / 60.0,
    }
}

/// Exports the run's best model into `out`, then reads the test images once: float and
/// integer accuracy, parity and the engine's speed.
fn export_and_test(
    out: &Path,
    run_dir: &Path,
    data_dir: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<DemoTest, DemoError> {
    log("exporting the best model to the integer format...");
    let model_file = out.join("mognet-s.mognet");
    let e = export_best(run_dir, &model_file)?;

    log("comparing the float model and the integer engine on the test images (read once, now)...");
    let test_set = DatasetKind::FashionMnist.load(data_dir, Split::Test, Cifar100Label::Fine)?;
    let p = parity(
        &e.float_model,
        &e.config,
        &e.fold_report,
        &e.int_model,
        &test_set,
        &Device::flex(),
        &mut |_| {},
    )?;
    let (correct, int_rate) = accuracy(&e.int_model, &test_set)?;
    let n = test_set.len().max(1) as f64;
    Ok(DemoTest {
        float_accuracy: p.float_correct as f64 / n,
        int_accuracy: correct as f64 / n,
        top1_agreement: p.top1(),
        code_mismatch: p.code_mismatch_rate(),
        test_images: test_set.len(),
        model_file,
        file_bits: e.file_bits,
        summary_bits: e.summary.total_bits_2bit,
        int_images_per_sec: int_rate,
    })
}

impl DemoTraining {
    /// The table's rows about training.
    fn rows(&self) -> [(&'static str, String); 2] {
        [
            (
                "training",
                format!(
                    "{} epoch(s) x {} images in {:.0} s",
                    self.epochs, self.train_images, self.train_seconds
                ),
            ),
            (
                "validation accuracy",
                format!(
                    "{:.4} (held-out training images; chose epoch {})",
                    self.valid_accuracy, self.best_epoch
                ),
            ),
        ]
    }
}

impl DemoTest {
    /// The table's rows about the test, the file and the engine.
    fn rows(&self) -> [(&'static str, String); 7] {
        let variant = mognet_infer::fast::Variant::detect().name();
        [
            (
                "float accuracy (Burn, eval)",
                format!("{:.4}", self.float_accuracy),
            ),
            (
                "integer accuracy (engine)",
                format!("{:.4}", self.int_accuracy),
            ),
            ("top-1 agreement", format!("{:.4}", self.top1_agreement)),
            (
                "activation codes mismatched",
                format!("{:.6}", self.code_mismatch),
            ),
            ("test images", format!("{}", self.test_images)),
            (
                "model file",
                format!(
                    "{} bits ({:.3} Mb; summary {} bits)",
                    self.file_bits,
                    self.file_bits as f64 / 1e6,
                    self.summary_bits
                ),
            ),
            (
                "integer images/s",
                format!(
                    "{:.0} (fast kernels: {variant}, all cores)",
                    self.int_images_per_sec
                ),
            ),
        ]
    }
}

impl DemoReport {
    /// The final table.
    pub fn render(&self, out: &Path) -> String {
        let mut s = String::from("\nmognet demo: mognet-s on the shipped Fashion-MNIST sample\n");
        for (k, v) in self.training.rows().into_iter().chain(self.test.rows()) {
            s.push_str(&format!("  {k:<30} {v}\n"));
        }
        let file = self.test.model_file.file_name().unwrap_or_default();
        s.push_str(&format!(
            "everything is in {} (run/, {})",
            out.display(),
            file.to_string_lossy()
        ));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_fits_whole_epochs_in_the_budget() {
        // 100 images/s for 10 minutes, 90% of it: 54,000 images; an epoch costs
        // 5,400 + 600 + 2,048 = 8,048, so 6 epochs.
        let p = plan(100.0, 10.0, 32, 5400, 2048);
        assert_eq!((p.epochs, p.limit, p.train_images), (6, None, 5400));
        assert!((p.minutes - 5.4).abs() < 1e-12, "{}", p.minutes);
    }

    #[test]
    fn plan_trains_at_least_min_epochs_and_at_most_30() {
        // Exactly one epoch's cost in the budget still trains MIN_EPOCHS.
        let p = plan(8048.0 / 54.0, 1.0, 32, 5400, 2048);
        assert_eq!((p.epochs, p.limit), (MIN_EPOCHS, None));
        let p = plan(1e6, 60.0, 32, 5400, 2048);
        assert_eq!((p.epochs, p.limit), (30, None));
    }

    #[test]
    fn the_table_reads_as_the_readme_shows_it() {
        let report = DemoReport {
            training: DemoTraining {
                epochs: 3,
                train_images: 5400,
                train_seconds: 131.6,
                best_epoch: 3,
                valid_accuracy: 0.8493,
            },
            test: DemoTest {
                float_accuracy: 0.835,
                int_accuracy: 0.835,
                top1_agreement: 1.0,
                code_mismatch: 0.0,
                test_images: 1000,
                model_file: PathBuf::from("runs/demo/mognet-s.mognet"),
                file_bits: 213_544,
                summary_bits: 212_952,
                int_images_per_sec: 3044.2,
            },
        };
        let variant = mognet_infer::fast::Variant::detect().name();
        let expected = format!(
            "
mognet demo: mognet-s on the shipped Fashion-MNIST sample
  training                       3 epoch(s) x 5400 images in 132 s
  validation accuracy            0.8493 (held-out training images; chose epoch 3)
  float accuracy (Burn, eval)    0.8350
  integer accuracy (engine)      0.8350
  top-1 agreement                1.0000
  activation codes mismatched    0.000000
  test images                    1000
  model file                     213544 bits (0.214 Mb; summary 212952 bits)
  integer images/s               3044 (fast kernels: {variant}, all cores)
everything is in runs/demo (run/, mognet-s.mognet)"
        );
        assert_eq!(report.render(Path::new("runs/demo")), expected);
    }

    #[test]
    fn plan_below_one_epoch_limits_images_to_whole_batches() {
        // 10 images/s for a minute: 540 images, 16 batches of 32.
        let p = plan(10.0, 1.0, 32, 5400, 2048);
        assert_eq!((p.epochs, p.limit, p.train_images), (1, Some(512), 512));
        // Never fewer than two batches.
        let p = plan(0.1, 1.0, 32, 5400, 2048);
        assert_eq!(p.limit, Some(64));
    }
}
