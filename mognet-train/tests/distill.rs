//! Distillation end to end on the shipped Fashion-MNIST sample: a tiny trained teacher teaches
//! a tiny student.

use std::path::PathBuf;

use burn::tensor::Device;
use common::{last_weights, tiny_run};
use mognet_train::train::{DistillConfig, RunConfig, TrainError, train};

mod common;

/// A one-epoch tiny run distilling from `teachers` with weight `w` (none: no distillation).
fn student(teachers: &[PathBuf], w: Option<f64>) -> RunConfig {
    let mut run = tiny_run(1, 128);
    run.train.distill = w.map(|w| {
        DistillConfig::new(teachers.to_vec())
            .with_temperature(3.0)
            .with_weight(w)
    });
    run
}

#[test]
fn the_teachers_soft_targets_move_the_student_and_weight_zero_is_plain_training() {
    let device = Device::flex();
    let teacher = common::scratch("distill", "teacher");
    train(&teacher, &tiny_run(2, 256), false, &device, &mut |_| {}).unwrap();
    let teachers = vec![teacher.join("best.bpk"), teacher.join("best.bpk")];
    let runs: Vec<(PathBuf, Vec<String>)> = [None, Some(0.0), Some(0.7)]
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            let dir = common::scratch("distill", &format!("student-{i}"));
            let mut lines = Vec::new();
            train(&dir, &student(&teachers, w), false, &device, &mut |l| {
                lines.push(l.to_string())
            })
            .unwrap();
            (dir, lines)
        })
        .collect();
    let [plain, zero, taught] = [0, 1, 2].map(|i| last_weights(&runs[i].0));
    assert!(plain.len() > 1000);
    // Weight 0 adds 0 times the soft term: the plain run, bit for bit.
    assert!(plain == zero, "weight 0 changed the run");
    let moved = plain.iter().zip(&taught).filter(|(a, b)| a != b).count();
    assert!(moved > plain.len() / 2, "only {moved} values moved");
    // A distilling run says what its teachers are worth on validation; a plain one does not.
    let said = |lines: &[String]| {
        lines
            .iter()
            .find(|l| l.starts_with("distilling from"))
            .cloned()
    };
    assert_eq!(said(&runs[0].1), None);
    let line = said(&runs[2].1).expect("the teachers are announced");
    let accuracy: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    // Two copies of one teacher: their ensemble is that teacher, scored as in its training.
    let teacher_valid = mognet_train::train::final_test::read_best(&teacher)
        .unwrap()
        .1;
    assert_eq!(
        Some(accuracy),
        teacher_valid.map(|a| (a * 1e4).round() / 1e4)
    );
    // The run's config records the distillation, so that resume distills too.
    let stored = RunConfig::load(&runs[2].0).unwrap();
    assert_eq!(
        stored.train.distill,
        student(&teachers, Some(0.7)).train.distill
    );
    for dir in runs.into_iter().map(|(d, _)| d).chain([teacher]) {
        std::fs::remove_dir_all(dir).ok();
    }
}

#[test]
fn a_missing_teacher_or_absurd_settings_are_errors_before_training() {
    let dir = common::scratch("distill", "missing");
    let missing = PathBuf::from("no/such/teacher.bpk");
    let err = train(
        &dir,
        &student(&[missing], Some(0.5)),
        false,
        &Device::flex(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("teacher.bpk"), "{err}");
    assert!(!dir.join("last.json").exists());
    let mut run = student(&[PathBuf::from("t.bpk")], Some(1.5));
    let err = train(&dir, &run, false, &Device::flex(), &mut |_| {}).unwrap_err();
    assert!(matches!(err, TrainError::Config(_)), "{err}");
    assert!(err.to_string().contains("distill_weight"), "{err}");
    run.train.distill = Some(DistillConfig::new(Vec::new()));
    let err = train(&dir, &run, false, &Device::flex(), &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("teacher"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}
