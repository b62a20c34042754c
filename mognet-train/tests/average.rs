//! `average_run` end to end on the shipped Fashion-MNIST sample: two tiny trained runs averaged
//! into a third run folder.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use mognet_core::persist::{RunWeights, load_run_model};
use mognet_train::train::average::{AverageRecord, average_run};
use mognet_train::train::final_test::read_best;
use mognet_train::train::{RunConfig, TrainError, read_test, train};

mod common;

/// The shared tiny run with learning rate `lr`, its batch norms re-estimated on 96 images.
fn tiny_run(epochs: usize, lr: f64) -> RunConfig {
    let mut run = common::tiny_run(epochs, 256);
    run.train.lr = lr;
    run.train.bn_recalibration = 96;
    run
}

/// The stem's latent weights of a run's best model.
fn stem_weights(run: &Path) -> Vec<f32> {
    let (_, model) = load_run_model(run, RunWeights::Best, &Device::flex()).unwrap();
    let w = model.stem.conv.weight.val();
    w.into_data().try_into_vec::<f32>().unwrap()
}

/// Two runs of one model and one split, trained differently.
fn two_runs(name: &str) -> (PathBuf, PathBuf) {
    let device = Device::flex();
    let (a, b) = (
        common::scratch("average", &format!("{name}-a")),
        common::scratch("average", &format!("{name}-b")),
    );
    train(&a, &tiny_run(1, 0.05), false, &device, &mut |_| {}).unwrap();
    train(&b, &tiny_run(2, 0.02), false, &device, &mut |_| {}).unwrap();
    (a, b)
}

#[test]
fn the_average_is_a_finished_run_scored_on_validation_and_tested_once() {
    let (a, b) = two_runs("run");
    let out = common::scratch("average", "out");
    let inputs = [a.join("best.bpk"), b.join("best.bpk")];
    let mut lines = Vec::new();
    let mut log = |l: &str| lines.push(l.to_string());
    let outcome = average_run(&inputs, &out, None, &Device::flex(), &mut log).unwrap();
    // One line per input scored, naming it.
    assert_eq!(lines.len(), 2);
    for (line, input) in lines.iter().zip(&inputs) {
        assert!(line.starts_with(&input.display().to_string()), "{line}");
    }
    // Each input's validation accuracy is the one its training recorded, to the image.
    for (input, run) in outcome.record.inputs.iter().zip([&a, &b]) {
        assert_eq!(Some(input.valid_acc), read_best(run).unwrap().1);
    }
    // Latent weights are the mean of the inputs' (batch norms were re-estimated afterwards).
    let (wa, wb, wm) = (stem_weights(&a), stem_weights(&b), stem_weights(&out));
    assert!(wa.iter().zip(&wb).filter(|(x, y)| x != y).count() > 10);
    for ((x, y), m) in wa.iter().zip(&wb).zip(&wm) {
        assert!((m - (x + y) / 2.0).abs() <= 1e-6, "{m} vs mean of {x}, {y}");
    }
    // The folder is a finished run: best model with epoch 0, its record, and one test.
    assert_eq!(
        read_best(&out).unwrap(),
        (0, Some(outcome.record.valid_acc))
    );
    let stored: AverageRecord =
        serde_json::from_slice(&std::fs::read(out.join("average.json")).unwrap()).unwrap();
    assert_eq!(stored, outcome.record);
    assert_eq!(stored.bn_recalibration, 96);
    let test = read_test(&out).unwrap().unwrap();
    assert_eq!(test, outcome.test);
    assert_eq!((test.total, test.epoch), (1000, 0));
    assert_eq!(test.valid_acc, Some(outcome.record.valid_acc));
    assert!(test.accuracy > 0.1, "test accuracy {}", test.accuracy);
    // A second average into the same folder is refused.
    let again = average_run(&inputs, &out, None, &Device::flex(), &mut |_| {}).unwrap_err();
    assert!(matches!(again, TrainError::RunDir { .. }), "{again}");
    for d in [a, b, out] {
        std::fs::remove_dir_all(d).ok();
    }
}

#[test]
fn inputs_of_another_split_or_without_a_config_are_refused() {
    let (a, b) = two_runs("refused");
    // Another validation split: b's config says seed 12.
    let mut other = RunConfig::load(&b).unwrap();
    other.train.seed = 12;
    other.save(&b).unwrap();
    let out = common::scratch("average", "refused-out");
    let inputs = [a.join("best.bpk"), b.join("best.bpk")];
    let err = average_run(&inputs, &out, None, &Device::flex(), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("validation split"), "{err}");
    // A weights file with no config beside it names the missing file.
    let lone = common::scratch("average", "lone");
    std::fs::create_dir_all(&lone).unwrap();
    std::fs::copy(a.join("best.bpk"), lone.join("w.bpk")).unwrap();
    let err = average_run(
        &[lone.join("w.bpk"), inputs[0].clone()],
        &out,
        None,
        &Device::flex(),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("config.json"), "{err}");
    assert!(!out.exists(), "nothing written on error");
    for d in [a, b, lone] {
        std::fs::remove_dir_all(d).ok();
    }
}
