//! The trainer end to end on the shipped Fashion-MNIST sample, on Flex (and 2 steps on WGPU).

use std::path::{Path, PathBuf};

use burn::tensor::{Device, DeviceKind};
use common::{last_weights, sample_dir, tiny_run};
use mognet_train::train::checkpoint::{self, CheckpointError};
use mognet_train::train::{EpochMetrics, RunConfig, TrainError, read_test, test_best, train};

mod common;

fn scratch(name: &str) -> PathBuf {
    common::scratch("trainer", name)
}

fn quiet(_: &str) {}

fn metrics(run: &Path) -> Vec<EpochMetrics> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn loss_falls_on_the_fashion_sample() {
    let dir = scratch("falls");
    let outcome = train(&dir, &tiny_run(3, 640), false, &Device::flex(), &mut quiet).unwrap();
    let m = metrics(&dir);
    assert_eq!(m.len(), 3);
    assert_eq!(outcome.epochs, m);
    assert!(
        m[2].train_loss < 0.8 * m[0].train_loss,
        "train loss {} -> {}",
        m[0].train_loss,
        m[2].train_loss
    );
    let valid = m[2].valid_acc.unwrap();
    assert!(valid > 0.3, "valid acc {valid}");
    // Per-layer occupancy and per-MRB gate rates are logged.
    assert_eq!(m[0].occupancy.len(), 1 + 2 * 4 + 1);
    assert_eq!(m[0].gate_on.len(), 2);
    assert!(dir.join("best.bpk").exists() && dir.join("config.json").exists());
    let stored = RunConfig::load(&dir).unwrap();
    assert_eq!(stored.model.spec(), tiny_run(3, 640).model.spec());
    std::fs::remove_dir_all(dir).ok();
}

/// The two run folders trained the same 2-epoch run: the same final weights, bit for bit, and
/// the same per-epoch losses, accuracies and step counts.
fn assert_same_run(whole: &Path, split: &Path) {
    let (w_whole, w_split) = (last_weights(whole), last_weights(split));
    assert!(w_whole.len() > 1000);
    assert!(w_whole == w_split, "weights differ after resume");
    let (a, b) = (metrics(whole), metrics(split));
    assert_eq!((a.len(), b.len()), (2, 2));
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            (
                x.train_loss,
                x.train_acc,
                x.valid_loss,
                x.valid_acc,
                x.steps
            ),
            (
                y.train_loss,
                y.train_acc,
                y.valid_loss,
                y.valid_acc,
                y.steps
            )
        );
    }
}

#[test]
fn resume_after_epoch_one_equals_an_uninterrupted_run_bit_for_bit() {
    let device = Device::flex();
    let whole = scratch("whole");
    let split = scratch("split");
    train(&whole, &tiny_run(2, 192), false, &device, &mut quiet).unwrap();
    // The same 2-epoch run, stopped after its first epoch (as a killed session would be)...
    let mut first = tiny_run(2, 192);
    first.train.stop_after_epochs = Some(1);
    let stopped = train(&split, &first, false, &device, &mut quiet).unwrap();
    assert!(stopped.stopped_by_budget);
    assert_eq!(stopped.epochs.len(), 1);
    // ...then continued by a fresh call with --resume.
    let resumed = train(&split, &tiny_run(2, 192), true, &device, &mut quiet).unwrap();
    assert_eq!(resumed.epochs.len(), 1);
    assert_same_run(&whole, &split);
    std::fs::remove_dir_all(whole).ok();
    std::fs::remove_dir_all(split).ok();
}

#[test]
fn resume_within_an_epoch_equals_an_uninterrupted_run_bit_for_bit() {
    let device = Device::flex();
    let whole = scratch("whole-steps");
    let split = scratch("split-steps");
    // 192 images in batches of 32: 6 steps per epoch, 12 in all.
    train(&whole, &tiny_run(2, 192), false, &device, &mut quiet).unwrap();
    let session = |steps| {
        let mut run = tiny_run(2, 192);
        run.train.stop_after_steps = steps;
        run
    };
    // Stopped at batch 4 of epoch 1, then at batch 3 of epoch 2 (4 + 5 steps), then finished.
    let first = train(&split, &session(Some(4)), false, &device, &mut quiet).unwrap();
    assert!(first.stopped_by_budget && first.epochs.is_empty());
    let state = checkpoint::load_state(&checkpoint::last_dir(&split).unwrap()).unwrap();
    assert_eq!((state.epoch, state.step), (0, 4));
    assert_eq!(
        state.progress.as_ref().map(|p| (p.batches, p.seen)),
        Some((4, 128))
    );
    let second = train(&split, &session(Some(5)), true, &device, &mut quiet).unwrap();
    assert!(second.stopped_by_budget);
    assert_eq!(second.epochs.len(), 1);
    let state = checkpoint::load_state(&checkpoint::last_dir(&split).unwrap()).unwrap();
    assert_eq!((state.epoch, state.step), (1, 9));
    assert_eq!(state.progress.map(|p| p.batches), Some(3));
    let last = train(&split, &session(None), true, &device, &mut quiet).unwrap();
    assert!(!last.stopped_by_budget);
    assert_same_run(&whole, &split);
    // Only the newest checkpoint is kept.
    let kept = std::fs::read_dir(split.join("checkpoints"))
        .unwrap()
        .count();
    assert_eq!(kept, 1);
    std::fs::remove_dir_all(whole).ok();
    std::fs::remove_dir_all(split).ok();
}

/// A time budget spent after one step stops every call there with a checkpoint, within the
/// epoch or at its end; one call per step still trains the uninterrupted run's weights.
#[test]
fn a_time_budget_stops_within_an_epoch_and_resume_is_exact() {
    let device = Device::flex();
    let whole = scratch("whole-budget");
    let split = scratch("split-budget");
    // 192 images in batches of 32: 6 steps per epoch, 12 in all.
    train(&whole, &tiny_run(2, 192), false, &device, &mut quiet).unwrap();
    let mut run = tiny_run(2, 192);
    // 60 microseconds: spent before the first step ends, and a call always takes one step.
    run.train.time_budget_minutes = Some(1e-6);
    let mut positions = Vec::new();
    for call in 0..20 {
        let outcome = train(&split, &run, call > 0, &device, &mut quiet).unwrap();
        let state = checkpoint::load_state(&checkpoint::last_dir(&split).unwrap()).unwrap();
        positions.push((state.step, state.progress.map(|p| p.batches)));
        if !outcome.stopped_by_budget {
            break;
        }
    }
    let within = |step: usize| (step, Some(step % 6));
    let expected: Vec<_> = (1..=12)
        .map(|step| {
            if step % 6 == 0 {
                (step, None)
            } else {
                within(step)
            }
        })
        .collect();
    assert_eq!(
        positions, expected,
        "one step per call, checkpointed where it stopped"
    );
    assert_same_run(&whole, &split);
    std::fs::remove_dir_all(whole).ok();
    std::fs::remove_dir_all(split).ok();
}

/// With `budget_ends_epoch` (the demo's choice), a spent budget ends the epoch it cuts there:
/// validated, logged as cut and kept as the best model, so a budget shorter than one epoch still
/// leaves a model; a resume goes on with the next epoch.
#[test]
fn a_budget_that_ends_epochs_leaves_a_validated_model() {
    let dir = scratch("budget-ends-epoch");
    let mut run = tiny_run(2, 192);
    run.train.time_budget_minutes = Some(1e-6);
    run.train.budget_ends_epoch = true;
    let outcome = train(&dir, &run, false, &Device::flex(), &mut quiet).unwrap();
    assert!(outcome.stopped_by_budget);
    let m = metrics(&dir);
    assert_eq!(m, outcome.epochs);
    assert_eq!(m.len(), 1);
    assert_eq!((m[0].epoch, m[0].steps, m[0].complete), (1, 1, false));
    assert!(m[0].valid_acc.is_some() && dir.join("best.bpk").exists());
    let state = checkpoint::load_state(&checkpoint::last_dir(&dir).unwrap()).unwrap();
    assert_eq!((state.epoch, state.step, state.progress), (1, 1, None));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn corrupted_or_missing_checkpoints_are_typed_errors() {
    let dir = scratch("corrupt");
    train(&dir, &tiny_run(1, 64), false, &Device::flex(), &mut quiet).unwrap();
    // Starting over a run without --resume is refused.
    let err = train(&dir, &tiny_run(1, 64), false, &Device::flex(), &mut quiet).unwrap_err();
    assert!(matches!(err, TrainError::RunDir { .. }), "{err}");

    let last = checkpoint::last_dir(&dir).unwrap();
    let model = last.join("model.bpk");
    let mut bytes = std::fs::read(&model).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&model, &bytes).unwrap();
    let err = train(&dir, &tiny_run(2, 64), true, &Device::flex(), &mut quiet).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, TrainError::Checkpoint(CheckpointError::Corrupt { .. })),
        "{msg}"
    );
    assert!(msg.contains("model.bpk"), "{msg}");

    std::fs::write(last.join("state.json"), b"{\"version\": 99}").unwrap();
    let err = train(&dir, &tiny_run(2, 64), true, &Device::flex(), &mut quiet).unwrap_err();
    assert!(
        matches!(
            err,
            TrainError::Checkpoint(CheckpointError::Version { found: 99, .. })
        ),
        "{err}"
    );
    std::fs::remove_file(dir.join("last.json")).unwrap();
    let err = train(&dir, &tiny_run(2, 64), true, &Device::flex(), &mut quiet).unwrap_err();
    assert!(err.to_string().contains("no checkpoint"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn non_finite_loss_stops_with_epoch_and_step() {
    let dir = scratch("nan");
    let mut run = tiny_run(2, 128);
    run.train.lr = 1e30;
    let err = train(&dir, &run, false, &Device::flex(), &mut quiet).unwrap_err();
    match err {
        TrainError::NonFinite { epoch, step, .. } => {
            assert!(epoch >= 1 && step >= 2, "epoch {epoch} step {step}");
            assert!(
                err.to_string()
                    .contains(&format!("epoch {epoch}, step {step}"))
            );
        }
        other => panic!("expected a non-finite loss, got {other}"),
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn wgpu_backend_completes_two_steps() {
    let dir = scratch("wgpu");
    let outcome = train(
        &dir,
        &tiny_run(1, 64),
        false,
        &Device::wgpu(DeviceKind::DefaultDevice),
        &mut quiet,
    )
    .unwrap();
    assert_eq!(outcome.epochs[0].steps, 2);
    assert!(outcome.epochs[0].train_loss.is_finite());
    assert!(outcome.epochs[0].valid_acc.unwrap() >= 0.0);
    std::fs::remove_dir_all(dir).ok();
}

/// A copy of the sample's training files only: any read of the test split fails.
fn train_files_only(name: &str) -> PathBuf {
    let dir = scratch(name);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"] {
        std::fs::copy(sample_dir().join(f), dir.join(f)).unwrap();
    }
    dir
}

#[test]
fn training_never_reads_the_test_split_and_the_test_is_read_once_at_the_end() {
    let data = train_files_only("no-test-data");
    let dir = scratch("no-test");
    let mut run = tiny_run(2, 320);
    run.train.data_dir = data.clone();
    let outcome = train(&dir, &run, false, &Device::flex(), &mut quiet).unwrap();
    assert_eq!(outcome.epochs.len(), 2);
    let best = outcome.best_valid_acc.unwrap();
    assert!(best > 0.1, "validation accuracy {best}");
    // The test split is read after training only, by test_best: missing here, it is an error
    // naming the file, and no test.json is written.
    let err = test_best(&dir, &Device::flex()).unwrap_err().to_string();
    assert!(err.contains("t10k"), "{err}");
    assert_eq!(read_test(&dir).unwrap(), None);
    for f in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        std::fs::copy(sample_dir().join(f), data.join(f)).unwrap();
    }
    let test = test_best(&dir, &Device::flex()).unwrap();
    assert_eq!((test.total, test.epoch), (1000, outcome.best_epoch));
    assert_eq!(test.valid_acc, Some(best));
    assert!(!test.validated_on_test);
    assert!(test.accuracy > 0.1 && test.correct == (test.accuracy * 1000.0).round() as usize);
    assert_eq!(read_test(&dir).unwrap(), Some(test));
    // Runs written before the split existed validate on the test split, as they did.
    let legacy = scratch("legacy-valid");
    run.train.valid_split = None;
    run.train.epochs = 1;
    std::fs::remove_file(data.join("t10k-images-idx3-ubyte.gz")).unwrap();
    let err = train(&legacy, &run, false, &Device::flex(), &mut quiet)
        .unwrap_err()
        .to_string();
    assert!(err.contains("t10k"), "{err}");
    for d in [data, dir, legacy] {
        std::fs::remove_dir_all(d).ok();
    }
}

#[test]
fn without_a_validation_split_the_last_epoch_is_kept() {
    let dir = scratch("no-valid");
    let mut run = tiny_run(2, 128);
    run.train.valid_split = Some(0);
    let outcome = train(&dir, &run, false, &Device::flex(), &mut quiet).unwrap();
    assert_eq!((outcome.best_valid_acc, outcome.best_epoch), (None, 2));
    let m = metrics(&dir);
    assert!(
        m.iter()
            .all(|e| e.valid_acc.is_none() && e.valid_loss.is_none())
    );
    assert!(
        m[1].summary(2).contains("no validation"),
        "{}",
        m[1].summary(2)
    );
    // A split as large as the training set is refused, naming the flag.
    run.train.valid_split = Some(6000);
    let err = train(
        &scratch("too-large"),
        &run,
        false,
        &Device::flex(),
        &mut quiet,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("--valid-split") && err.contains("6000"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).ok();
}
