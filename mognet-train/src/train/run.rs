//! The training loop: epochs of SGD/Adam over shuffled, augmented batches, validation, metrics,
//! checkpoints, the best model, exact resume.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::Instant;

use burn::data::dataset::Dataset as _;
use burn::module::{Module, ParamGroup};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mognet_core::init::derive_seed;
use mognet_core::{ModelError, Mognet, SplitMix64};
use serde::{Deserialize, Serialize};

use crate::data::{AugmentedSet, DataError, ImageBatcher, ImageSet, Split};
use crate::eval::evaluate;
use crate::train::checkpoint::{self, CheckpointError, EpochProgress, LoopState};
use crate::train::config::{OptimizerKind, RunConfig};

/// Stream id of the data-order permutation.
const ORDER_STREAM: u64 = 0x0DE7;

/// Why training stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The data could not be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A checkpoint could not be written or read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The model could not be built.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The loss became NaN or infinite.
    #[error(
        "loss is {loss} at epoch {epoch}, step {step} (batch {batch} of the epoch); training stopped, \
         the last good checkpoint is kept (lower the learning rate?)"
    )]
    NonFinite {
        /// Epoch (1-based).
        epoch: usize,
        /// Global optimizer step (1-based).
        step: usize,
        /// Batch within the epoch (1-based).
        batch: usize,
        /// The loss value.
        loss: f64,
    },
    /// The run folder is in a state the request does not fit.
    #[error("{path}: {detail}")]
    RunDir {
        /// The folder or file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The data and the model disagree.
    #[error("the model expects {model} but {dataset} has {data}")]
    Mismatch {
        /// What the model expects.
        model: String,
        /// The dataset.
        dataset: String,
        /// What the data has.
        data: String,
    },
}

/// Real occupancy of one ternary layer, as logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerOccupancy {
    /// Layer name.
    pub layer: String,
    /// Fraction of -1.
    pub minus: f64,
    /// Fraction of 0.
    pub zero: f64,
    /// Fraction of +1.
    pub plus: f64,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch (1-based).
    pub epoch: usize,
    /// Learning rate at the epoch's last step.
    pub lr: f64,
    /// Mean training cross-entropy.
    pub train_loss: f64,
    /// Training top-1 accuracy (on augmented images, in training mode).
    pub train_acc: f64,
    /// Validation cross-entropy.
    pub valid_loss: f64,
    /// Validation top-1 accuracy.
    pub valid_acc: f64,
    /// BTQ regularizer at the end of the epoch.
    pub regularizer: f64,
    /// Ternary occupancy per layer.
    pub occupancy: Vec<LayerOccupancy>,
    /// Gate-on rate per MRB on the validation set.
    pub gate_on: Vec<(String, f64)>,
    /// Training images per second in this epoch.
    pub images_per_sec: f64,
    /// Seconds this epoch took (training and validation).
    pub epoch_seconds: f64,
    /// Seconds since the run started, summed over sessions.
    pub wall_seconds: f64,
    /// Optimizer steps so far.
    pub steps: usize,
    /// Whether the epoch ran to its end (false when the time budget cut it).
    pub complete: bool,
}

/// How a call to [`train`] ended.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// Metrics of every epoch run in this call.
    pub epochs: Vec<EpochMetrics>,
    /// Best validation accuracy of the run.
    pub best_valid_acc: f64,
    /// Epoch of the best validation accuracy.
    pub best_epoch: usize,
    /// The time budget (or `stop_after_epochs`, `stop_after_steps`) ended the call before the
    /// end of the run.
    pub stopped_by_budget: bool,
    /// The trained model (on the training device, in training mode).
    pub model: Mognet,
}

/// A fixed permutation of `0..n` for `epoch`, from the run seed.
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut rng = SplitMix64::new(derive_seed(seed ^ ORDER_STREAM, epoch as u64));
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

fn optimizer(run: &RunConfig) -> ModuleOptimizer {
    let t = &run.train;
    // Weight decay applies to the convolutions' proxy weights only: BN and gate parameters are
    // left alone (their paths do not end in "weight").
    let decay = (t.weight_decay > 0.0).then(|| WeightDecayConfig::new(t.weight_decay as f32));
    let weights = ParamGroup::from_regex(r"(^|\.)weight$").expect("valid regex");
    match t.optimizer {
        OptimizerKind::Sgd => {
            let momentum = MomentumConfig::new()
                .with_momentum(t.momentum)
                .with_dampening(0.0)
                .with_nesterov(true);
            let plain = SgdConfig::new().with_momentum(Some(momentum.clone()));
            let decayed = plain.clone().with_weight_decay(decay);
            plain.init().with_group(weights, decayed.build(), None)
        }
        OptimizerKind::Adam => {
            let plain = AdamConfig::new();
            let decayed = AdamConfig::new().with_weight_decay(decay);
            plain.init().with_group(weights, decayed.build(), None)
        }
    }
}

fn load_split(run: &RunConfig, split: Split) -> Result<ImageSet, TrainError> {
    let t = &run.train;
    let set = t.dataset.load(&t.data_dir, split, t.cifar100_label)?;
    let limit = match split {
        Split::Train => t.limit_train,
        Split::Test => t.limit_valid,
    };
    let set = match limit {
        Some(n) => set.truncated(n),
        None => set,
    };
    let m = &run.model;
    if set.channels != m.in_channels
        || set.num_classes != m.num_classes
        || set.size != m.input_size[0]
    {
        return Err(TrainError::Mismatch {
            model: format!(
                "{} channels, {} classes, {}x{} inputs",
                m.in_channels, m.num_classes, m.input_size[0], m.input_size[1]
            ),
            dataset: t.dataset.name().into(),
            data: format!(
                "{} channels, {} classes, {}x{} images",
                set.channels, set.num_classes, set.size, set.size
            ),
        });
    }
    if set.is_empty() {
        return Err(TrainError::RunDir {
            path: t.data_dir.clone(),
            detail: format!("the {split:?} split is empty"),
        });
    }
    Ok(set)
}

fn bar(len: u64, prefix: String) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let pb = ProgressBar::with_draw_target(Some(len), target);
    pb.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} {msg} ({per_sec}, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    pb.set_prefix(prefix);
    pb
}

/// The trainer's input pipeline: a helper thread builds the batches of `view` in `order` (host
/// data: images, labels), at most three ahead, while the device works. Dropping the receiver
/// stops the thread; join it afterwards.
pub fn spawn_batches(
    view: AugmentedSet,
    order: Vec<usize>,
    batch: usize,
    batcher: ImageBatcher,
) -> (
    Receiver<(TensorData, TensorData)>,
    std::thread::JoinHandle<()>,
) {
    let (tx, rx) = sync_channel::<(TensorData, TensorData)>(3);
    let producer = std::thread::spawn(move || {
        for chunk in order.chunks(batch) {
            let items: Vec<_> = chunk
                .iter()
                .map(|&i| view.get(i).expect("index within the set"))
                .collect();
            if tx.send(batcher.host_data(&items)).is_err() {
                return;
            }
        }
    });
    (rx, producer)
}

/// Metrics lines kept from an earlier session: those of epochs `1..=epoch`.
fn truncate_metrics(path: &Path, epoch: usize) -> Result<f64, CheckpointError> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(0.0);
    };
    let mut kept = String::new();
    let mut wall = 0.0;
    for line in text.lines() {
        let Ok(m) = serde_json::from_str::<EpochMetrics>(line) else {
            continue;
        };
        if m.epoch <= epoch {
            wall = m.wall_seconds;
            kept.push_str(line);
            kept.push('\n');
        }
    }
    checkpoint::write_atomic(path, kept.as_bytes())?;
    Ok(wall)
}

fn append_metrics(path: &Path, m: &EpochMetrics) -> Result<(), CheckpointError> {
    let mut text = std::fs::read_to_string(path).unwrap_or_default();
    text.push_str(&serde_json::to_string(m).expect("metrics serialize"));
    text.push('\n');
    checkpoint::write_atomic(path, text.as_bytes())
}

/// Trains the run in `run_dir` with `run` (written to `config.json`), from scratch, or from its
/// last checkpoint when `resume` (the stored config is then used; `run` only supplies
/// `epochs`, `time_budget_minutes`, `stop_after_epochs`, `stop_after_steps` and
/// `checkpoint_minutes`). `device` is the training device without autodiff.
pub fn train(
    run_dir: &Path,
    run: &RunConfig,
    resume: bool,
    device: &Device,
    log: &mut dyn FnMut(&str),
) -> Result<TrainOutcome, TrainError> {
    let started = Instant::now();
    let has_checkpoint = run_dir.join("last.json").exists();
    let mut run = run.clone();
    if resume {
        if !has_checkpoint {
            return Err(TrainError::RunDir {
                path: run_dir.to_path_buf(),
                detail: "--resume given but the folder holds no checkpoint (last.json)".into(),
            });
        }
        let stored = RunConfig::load(run_dir)?;
        let session = run.train.clone();
        run = stored;
        run.train.epochs = session.epochs;
        run.train.time_budget_minutes = session.time_budget_minutes;
        run.train.stop_after_epochs = session.stop_after_epochs;
        run.train.stop_after_steps = session.stop_after_steps;
        run.train.checkpoint_minutes = session.checkpoint_minutes;
    } else if has_checkpoint {
        return Err(TrainError::RunDir {
            path: run_dir.to_path_buf(),
            detail: "already holds a run; pass --resume to continue it or choose another --out"
                .into(),
        });
    }
    std::fs::create_dir_all(run_dir).map_err(|e| CheckpointError::Io {
        path: run_dir.to_path_buf(),
        source: e,
    })?;
    run.save(run_dir)?;

    let train_set = Arc::new(load_split(&run, Split::Train)?);
    let valid_set = load_split(&run, Split::Test)?;
    let t = run.train.clone();
    let ad = device.clone().autodiff();
    let mut model = run.model.init(&ad)?;
    let mut optim = optimizer(&run);
    let metrics_path = run_dir.join("metrics.jsonl");
    let (mut start_epoch, mut step, mut best_acc, mut best_epoch, mut wall_before) =
        (0, 0, -1.0, 0, 0.0);
    let mut resumed_progress: Option<EpochProgress> = None;
    if resume {
        let dir = checkpoint::last_dir(run_dir)?;
        let loaded = checkpoint::load(&dir, model, optim)?;
        model = loaded.model;
        optim = loaded.optim;
        start_epoch = loaded.state.epoch;
        step = loaded.state.step;
        best_acc = loaded.state.best_valid_acc;
        best_epoch = loaded.state.best_epoch;
        wall_before = truncate_metrics(&metrics_path, start_epoch)?;
        resumed_progress = loaded.state.progress;
        // The time the interrupted epoch had run counts toward the run's wall time too.
        wall_before += resumed_progress.as_ref().map_or(0.0, |p| p.seconds);
        let within = match &resumed_progress {
            Some(p) => format!(" and {} batches of epoch {}", p.batches, start_epoch + 1),
            None => String::new(),
        };
        log(&format!(
            "resuming {} after epoch {start_epoch}{within} (step {step}, best valid acc {best_acc:.4} at epoch {best_epoch})",
            run_dir.display()
        ));
    } else {
        let _ = std::fs::remove_file(&metrics_path);
    }

    let n = train_set.len();
    let steps_per_epoch = n.div_ceil(t.batch_size.max(1));
    let total_steps = steps_per_epoch * t.epochs;
    let warmup = (t.warmup_epochs * steps_per_epoch as f64).round() as usize;
    let ce = CrossEntropyLossConfig::new().init(&ad);
    let batcher = ImageBatcher {
        channels: train_set.channels,
        size: train_set.size,
    };
    let budget = t
        .time_budget_minutes
        .map(|m| std::time::Duration::from_secs_f64(m * 60.0));
    let bs = t.batch_size.max(1);
    let mut outcome_epochs = Vec::new();
    let mut stopped_by_budget = false;
    let mut session_steps = 0usize;
    let checkpoint_every = (t.checkpoint_minutes > 0.0)
        .then(|| std::time::Duration::from_secs_f64(t.checkpoint_minutes * 60.0));

    for epoch in start_epoch..t.epochs {
        let epoch_start = Instant::now();
        let mut last_checkpoint = Instant::now();
        // A checkpoint within this epoch: its first batches are done already.
        let before = resumed_progress.take().unwrap_or_default();
        let order = epoch_order(n, t.seed, epoch);
        let order = order[(before.batches * bs).min(n)..].to_vec();
        let view = AugmentedSet {
            set: train_set.clone(),
            augment: t.augmentation(),
            seed: t.seed,
            epoch: epoch as u64,
        };
        let (rx, producer) = spawn_batches(view, order, bs, batcher);
        let pb = bar(n as u64, format!("epoch {}/{}", epoch + 1, t.epochs));
        pb.set_position(before.seen as u64);
        let (mut loss_sum, mut correct, mut seen, mut lr) =
            (before.loss_sum, before.correct, before.seen, 0.0);
        let epoch_seconds = |start: Instant| before.seconds + start.elapsed().as_secs_f64();
        let mut complete = true;
        // Set when `stop_after_steps` ends the session within this epoch (just checkpointed).
        let mut stopped_within = None;
        for (batch_index, (x, y)) in (before.batches..).zip(rx.iter()) {
            if let Some(budget) = budget
                && started.elapsed() >= budget
            {
                complete = false;
                break;
            }
            let b = x.shape()[0];
            let x = Tensor::<4>::from_data(x, &ad);
            let y = Tensor::<1, Int>::from_data(y, &ad);
            let logits = model.forward(x);
            let ce_loss = ce.forward(logits.clone(), y.clone());
            let loss = if t.reg_lambda > 0.0 {
                ce_loss.clone() + model.regularizer().mul_scalar(t.reg_lambda)
            } else {
                ce_loss.clone()
            };
            let hits = logits
                .clone()
                .argmax(1)
                .reshape([b])
                .equal(y)
                .int()
                .sum()
                .float();
            let stats = Tensor::cat(vec![ce_loss.clone().detach(), hits.detach()], 0)
                .into_data()
                .try_into_vec_as::<f64>()
                .expect("loss and hits are floats");
            step += 1;
            if !stats[0].is_finite() {
                drop(rx);
                let _ = producer.join();
                pb.abandon();
                return Err(TrainError::NonFinite {
                    epoch: epoch + 1,
                    step,
                    batch: batch_index + 1,
                    loss: stats[0],
                });
            }
            lr = t.schedule.lr(t.lr, step - 1, total_steps, warmup);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
            loss_sum += stats[0] * b as f64;
            correct += stats[1].round() as usize;
            seen += b;
            pb.inc(b as u64);
            pb.set_message(format!(
                "loss {:.4} acc {:.4} lr {:.2e}",
                loss_sum / seen as f64,
                correct as f64 / seen as f64,
                lr
            ));
            session_steps += 1;
            let stop = t.stop_after_steps.is_some_and(|s| session_steps >= s);
            let due = checkpoint_every.is_some_and(|every| last_checkpoint.elapsed() >= every);
            // Within the epoch only: its last batch is followed by the epoch-end checkpoint.
            if (stop || due) && batch_index + 1 < steps_per_epoch {
                let progress = EpochProgress {
                    batches: batch_index + 1,
                    loss_sum,
                    correct,
                    seen,
                    seconds: epoch_seconds(epoch_start),
                };
                checkpoint::save(
                    run_dir,
                    &model,
                    &optim,
                    LoopState {
                        progress: Some(progress),
                        ..LoopState::new(epoch, step, t.seed, best_acc, best_epoch)
                    },
                )?;
                last_checkpoint = Instant::now();
                pb.suspend(|| {
                    log(&format!(
                        "checkpoint at batch {}/{steps_per_epoch} of epoch {} (step {step})",
                        batch_index + 1,
                        epoch + 1
                    ))
                });
                if stop {
                    stopped_within = Some(batch_index + 1);
                    break;
                }
            }
        }
        drop(rx);
        let _ = producer.join();
        pb.finish_and_clear();
        if let Some(batches) = stopped_within {
            log(&format!(
                "stopping after {session_steps} steps as asked, at batch {batches} of epoch {}; continue with --resume",
                epoch + 1
            ));
            stopped_by_budget = true;
            break;
        }
        let train_seconds = epoch_seconds(epoch_start);

        if t.bn_recalibration > 0 {
            // The running averages trail weights that moved a lot this epoch: re-estimate them
            // from the final weights, deterministically (first images, no augmentation).
            let n = t.bn_recalibration.min(train_set.len());
            let batches = (0..n).step_by(bs).map(|start| {
                let items: Vec<_> = (start..(start + bs).min(n))
                    .map(|i| train_set.item(i).expect("index within the set"))
                    .collect();
                Tensor::<4>::from_data(batcher.host_data(&items).0, &ad)
            });
            model.recalibrate_batch_norms(batches);
        }
        let eval_model = model.valid();
        let eval_device = device.clone();
        let vb = bar(
            valid_set.len() as u64,
            format!("valid {}/{}", epoch + 1, t.epochs),
        );
        let report = evaluate(
            &eval_model,
            &valid_set,
            t.batch_size.max(64),
            &eval_device,
            Some(&vb),
        );
        vb.finish_and_clear();
        let regularizer = eval_model
            .regularizer()
            .into_data()
            .try_into_vec_as::<f64>()
            .expect("regularizer is a float")[0];
        let occupancy = eval_model
            .occupancy()
            .into_iter()
            .map(|(layer, o)| LayerOccupancy {
                layer,
                minus: o.minus,
                zero: o.zero,
                plus: o.plus,
            })
            .collect();
        let valid_acc = report.accuracy();
        let metrics = EpochMetrics {
            epoch: epoch + 1,
            lr,
            train_loss: loss_sum / seen.max(1) as f64,
            train_acc: correct as f64 / seen.max(1) as f64,
            valid_loss: report.loss,
            valid_acc,
            regularizer,
            occupancy,
            gate_on: report.gate_on.clone(),
            images_per_sec: seen as f64 / train_seconds.max(1e-9),
            epoch_seconds: epoch_seconds(epoch_start),
            wall_seconds: wall_before + started.elapsed().as_secs_f64(),
            steps: step,
            complete,
        };
        if valid_acc > best_acc {
            best_acc = valid_acc;
            best_epoch = epoch + 1;
            let crc = checkpoint::save_model(&model, &run_dir.join("best.bpk"))?;
            let best =
                serde_json::json!({ "epoch": best_epoch, "valid_acc": best_acc, "crc32": crc });
            checkpoint::write_atomic(&run_dir.join("best.json"), best.to_string().as_bytes())?;
        }
        checkpoint::save(
            run_dir,
            &model,
            &optim,
            LoopState {
                epoch_complete: complete,
                ..LoopState::new(epoch + 1, step, t.seed, best_acc, best_epoch)
            },
        )?;
        append_metrics(&metrics_path, &metrics)?;
        log(&format!(
            "epoch {:>3}/{} train loss {:.4} acc {:.4} | valid loss {:.4} acc {:.4} | reg {:.4} | lr {:.2e} | {:.0} img/s | {:.0}s{}",
            epoch + 1,
            t.epochs,
            metrics.train_loss,
            metrics.train_acc,
            metrics.valid_loss,
            metrics.valid_acc,
            metrics.regularizer,
            metrics.lr,
            metrics.images_per_sec,
            metrics.epoch_seconds,
            if complete {
                ""
            } else {
                " (cut by the time budget)"
            }
        ));
        outcome_epochs.push(metrics);
        let steps_reached = t.stop_after_steps.is_some_and(|s| session_steps >= s);
        if (t.stop_after_epochs == Some(outcome_epochs.len()) || steps_reached)
            && epoch + 1 < t.epochs
        {
            log(&format!(
                "stopping after {} epochs and {session_steps} steps as asked; continue with --resume",
                outcome_epochs.len()
            ));
            stopped_by_budget = true;
            break;
        }
        if !complete
            || budget.is_some_and(|b| {
                // Stop before an epoch that would not fit in what is left of the budget.
                let per_epoch = epoch_start.elapsed();
                started.elapsed() + per_epoch > b && epoch + 1 < t.epochs
            })
        {
            stopped_by_budget = epoch + 1 < t.epochs;
            if stopped_by_budget {
                log(&format!(
                    "time budget reached after epoch {}; continue with --resume",
                    epoch + 1
                ));
            }
            break;
        }
    }
    Ok(TrainOutcome {
        epochs: outcome_epochs,
        best_valid_acc: best_acc.max(0.0),
        best_epoch,
        stopped_by_budget,
        model,
    })
}
