//! A run made by averaging trained models: the element-wise mean of several weights files of
//! one architecture and one validation split ([`mognet_core::average`]), its batch norms
//! re-estimated, every input and the average scored on the validation set, and the average's
//! test accuracy read once, like a trained run's, into `test.json`.
//!
//! The output folder is a finished run (`config.json`, `best.bpk`, `best.json`, `test.json`)
//! plus `average.json`, so `eval`, `export` and `parity` take it like any other run. Its
//! `best.json` records epoch 0: the model is not an epoch of training.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Device;
use mognet_core::Mognet;
use mognet_core::average::average_models;
use mognet_core::persist::{load_weights_file, weights_config_path, weights_model_config};
use serde::{Deserialize, Serialize};

use crate::data::ImageSet;
use crate::eval::evaluate;
use crate::train::checkpoint::{save_model, write_atomic};
use crate::train::config::RunConfig;
use crate::train::final_test::{TestResult, test_best};
use crate::train::recalibrate::recalibrate;
use crate::train::run::{TrainError, load_sets};

/// One averaged input and its validation accuracy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AveragedInput {
    /// The weights file.
    pub weights: PathBuf,
    /// Its accuracy on the validation set (evaluated here, as stored).
    pub valid_acc: f64,
}

/// `RUN_DIR/average.json`: what was averaged and how each part scored on validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AverageRecord {
    /// The inputs, in the order given.
    pub inputs: Vec<AveragedInput>,
    /// Training images the batch norms were re-estimated on.
    pub bn_recalibration: usize,
    /// The average's validation accuracy.
    pub valid_acc: f64,
}

/// What [`average_run`] measured.
#[derive(Debug, Clone)]
pub struct AverageOutcome {
    /// Inputs and averaged model on validation.
    pub record: AverageRecord,
    /// The average's test accuracy, read once.
    pub test: TestResult,
}

/// Averages `inputs` (each `NAME.bpk` with its run config beside it, as shipped or as a run's
/// `best.bpk`) into the new run folder `out`, on `device` (without autodiff); the data are read
/// from `data_dir`, or from the folder the inputs' config names. `log` gets a line per model
/// scored.
pub fn average_run(
    inputs: &[PathBuf],
    out: &Path,
    data_dir: Option<&Path>,
    device: &Device,
    log: &mut dyn FnMut(&str),
) -> Result<AverageOutcome, TrainError> {
    let mut run = common_run_config(inputs)?;
    if let Some(dir) = data_dir {
        run.train.data_dir = dir.to_path_buf();
    }
    if out.join("best.bpk").exists() || out.join("last.json").exists() {
        return Err(TrainError::RunDir {
            path: out.to_path_buf(),
            detail: "already holds a run; give a new folder".into(),
        });
    }
    let sets = load_sets(&run)?;
    let valid = sets.valid.as_ref().ok_or_else(|| TrainError::RunDir {
        path: inputs[0].clone(),
        detail: "the inputs' run holds out no validation set (valid_split 0); averaging \
                 needs one to be judged"
            .into(),
    })?;
    let mut scored = Vec::with_capacity(inputs.len());
    let mut models = Vec::with_capacity(inputs.len());
    let ad = device.clone().autodiff();
    for path in inputs {
        let (_, model) = load_weights_file(path, &ad)?;
        let valid_acc = valid_accuracy(&model.valid(), valid, &run, device);
        log(&format!(
            "{}: validation accuracy {valid_acc:.4}",
            path.display()
        ));
        scored.push(AveragedInput {
            weights: path.clone(),
            valid_acc,
        });
        models.push(model);
    }
    let mut average = average_models(models)?;
    let n = run.train.bn_recalibration;
    recalibrate(&mut average, &sets.train, n, run.train.batch_size, &ad);
    let average = average.valid();
    let valid_acc = valid_accuracy(&average, valid, &run, device);
    let record = AverageRecord {
        inputs: scored,
        bn_recalibration: n.min(sets.train.len()),
        valid_acc,
    };
    write_average_run(out, &run, &average, &record)?;
    let test = test_best(out, device)?;
    Ok(AverageOutcome { record, test })
}

/// The run config every input shares: one architecture, one dataset and one validation split
/// (else their validation accuracies are not comparable); the first input's recipe.
fn common_run_config(inputs: &[PathBuf]) -> Result<RunConfig, TrainError> {
    let first = inputs.first().ok_or_else(|| TrainError::RunDir {
        path: PathBuf::new(),
        detail: "no weights file to average".into(),
    })?;
    let config_of = |path: &PathBuf| {
        // Names a missing weights file, or the config missing beside it.
        weights_model_config(path)?;
        RunConfig::load_file(&weights_config_path(path))
    };
    let run = config_of(first)?;
    let key = |r: &RunConfig| {
        let t = &r.train;
        let split = (
            t.dataset,
            t.valid_split,
            t.seed,
            t.limit_train,
            t.limit_valid,
        );
        (serde_json::to_value(&r.model).ok(), format!("{split:?}"))
    };
    for path in &inputs[1..] {
        if key(&config_of(path)?) != key(&run) {
            return Err(TrainError::RunDir {
                path: weights_config_path(path),
                detail: format!(
                    "another model, dataset or validation split than {}'s",
                    first.display()
                ),
            });
        }
    }
    Ok(run)
}

/// Top-1 accuracy of `model` on `valid`, in eval mode.
fn valid_accuracy(model: &Mognet, valid: &ImageSet, run: &RunConfig, device: &Device) -> f64 {
    let batch = run.train.batch_size.max(64);
    evaluate(model, valid, batch, device, None).accuracy()
}

/// Writes the run folder: config, best model and its record, `average.json`.
fn write_average_run(
    out: &Path,
    run: &RunConfig,
    average: &Mognet,
    record: &AverageRecord,
) -> Result<(), TrainError> {
    std::fs::create_dir_all(out).map_err(|e| TrainError::RunDir {
        path: out.to_path_buf(),
        detail: e.to_string(),
    })?;
    run.save(out)?;
    let crc = save_model(average, &out.join("best.bpk"))?;
    let best = serde_json::json!({ "epoch": 0, "valid_acc": record.valid_acc, "crc32": crc });
    write_atomic(&out.join("best.json"), best.to_string().as_bytes())?;
    let json = serde_json::to_vec_pretty(record).expect("average record serializes");
    write_atomic(&out.join("average.json"), &json)?;
    Ok(())
}
