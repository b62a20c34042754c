//! One call of the training loop: what it carries from epoch to epoch, and each part of an
//! epoch as a method: [`Session::train_epoch`] (the batches, with mid-epoch checkpoints),
//! [`Session::end_epoch`] (batch-norm recalibration, validation, the best model, the epoch's
//! checkpoint and metrics) and [`Session::stop_after`] (the stop rules).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use burn::data::dataset::Dataset as _;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLoss;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use mognet_core::Mognet;

use crate::data::{AugmentedSet, ImageBatcher, ImageSet};
use crate::eval::evaluate;
use crate::progress::Progress;
use crate::train::batches::{BatchProducer, BatchReceiver, epoch_order, spawn_batches};
use crate::train::checkpoint::{self, EpochProgress, LoopState};
use crate::train::config::{RunConfig, TrainConfig};
use crate::train::distill::{Teachers, soft_loss};
use crate::train::epoch_pass::{BatchTimers, EpochClock, EpochPass, Stop, StopWhy};
use crate::train::loss::training_loss;
use crate::train::metrics::{EpochMetrics, LayerOccupancy, append_metrics, truncate_metrics};
use crate::train::recalibrate::recalibrate;
use crate::train::run::{TrainError, load_sets, optimizer};

/// Where the loop starts: the model and optimizer, the first epoch to run and how far into it.
pub(super) struct Start {
    pub(super) model: Mognet,
    pub(super) optim: ModuleOptimizer,
    pub(super) epoch: usize,
    pub(super) progress: Option<EpochProgress>,
}

/// One call of [`train`]: the run's fixed parts and the counters the loop carries.
pub(super) struct Session<'a> {
    run_dir: &'a Path,
    pub(super) t: TrainConfig,
    /// The training device without autodiff, for validation.
    device: Device,
    ad: Device,
    train_set: Arc<ImageSet>,
    /// None when the run holds out no validation set: the last epoch is then the best.
    valid_set: Option<ImageSet>,
    batcher: ImageBatcher,
    ce: CrossEntropyLoss,
    /// The distillation teachers, when the run has some.
    teachers: Option<Teachers>,
    metrics_path: PathBuf,
    started: Instant,
    budget: Option<Duration>,
    checkpoint_every: Option<Duration>,
    batch_size: usize,
    steps_per_epoch: usize,
    total_steps: usize,
    warmup: usize,
    /// Optimizer steps of the run.
    step: usize,
    /// Optimizer steps of this call.
    pub(super) session_steps: usize,
    pub(super) best_acc: f64,
    pub(super) best_epoch: usize,
    /// Wall seconds of earlier calls.
    wall_before: f64,
}

impl<'a> Session<'a> {
    pub(super) fn new(
        run_dir: &'a Path,
        run: &RunConfig,
        device: &Device,
        started: Instant,
    ) -> Result<Self, TrainError> {
        let sets = load_sets(run)?;
        let train_set = Arc::new(sets.train);
        let valid_set = sets.valid;
        let t = run.train.clone();
        let ad = device.clone().autodiff();
        let batch_size = t.batch_size.max(1);
        let steps_per_epoch = train_set.len().div_ceil(batch_size);
        let minutes = |m: f64| Duration::from_secs_f64(m * 60.0);
        let teachers = t
            .distill
            .as_ref()
            .map(|d| Teachers::load(d, run.model.in_channels, run.model.num_classes, device))
            .transpose()?;
        Ok(Session {
            teachers,
            run_dir,
            device: device.clone(),
            ce: training_loss(&t, &ad),
            ad,
            batcher: ImageBatcher::for_set(&train_set),
            train_set,
            valid_set,
            metrics_path: run_dir.join("metrics.jsonl"),
            started,
            budget: t.time_budget_minutes.map(minutes),
            checkpoint_every: (t.checkpoint_minutes > 0.0).then(|| minutes(t.checkpoint_minutes)),
            batch_size,
            steps_per_epoch,
            total_steps: steps_per_epoch * t.epochs,
            warmup: (t.warmup_epochs * steps_per_epoch as f64).round() as usize,
            step: 0,
            session_steps: 0,
            best_acc: -1.0,
            best_epoch: 0,
            wall_before: 0.0,
            t,
        })
    }

    /// A fresh model and optimizer, or the run's last checkpoint when `resume`.
    pub(super) fn start(
        &mut self,
        run: &RunConfig,
        resume: bool,
        log: &mut dyn FnMut(&str),
    ) -> Result<Start, TrainError> {
        let model = run.model.init(&self.ad)?;
        let optim = optimizer(run);
        if !resume {
            self.log_teachers(log);
            let model = match &run.train.init {
                Some(path) => {
                    log(&format!("starting from the weights in {}", path.display()));
                    checkpoint::load_model(model, path, None)?
                }
                None => model,
            };
            let _ = std::fs::remove_file(&self.metrics_path);
            return Ok(Start {
                model,
                optim,
                epoch: 0,
                progress: None,
            });
        }
        let loaded = checkpoint::load(&checkpoint::last_dir(self.run_dir)?, model, optim)?;
        let state = loaded.state;
        self.step = state.step;
        self.best_acc = state.best_valid_acc;
        self.best_epoch = state.best_epoch;
        // The time the interrupted epoch had run counts toward the run's wall time too.
        self.wall_before = truncate_metrics(&self.metrics_path, state.epoch)?
            + state.progress.as_ref().map_or(0.0, |p| p.seconds);
        let within = match &state.progress {
            Some(p) => format!(" and {} batches of epoch {}", p.batches, state.epoch + 1),
            None => String::new(),
        };
        log(&format!(
            "resuming {} after epoch {}{within} (step {}, best valid acc {:.4} at epoch {})",
            self.run_dir.display(),
            state.epoch,
            self.step,
            self.best_acc,
            self.best_epoch
        ));
        Ok(Start {
            model: loaded.model,
            optim: loaded.optim,
            epoch: state.epoch,
            progress: state.progress,
        })
    }

    /// One optimizer step on a batch: the updated model, the batch's loss and correct
    /// predictions. A non-finite loss is returned as is, before the step.
    fn step(
        &mut self,
        model: Mognet,
        optim: &mut ModuleOptimizer,
        (x, y): (TensorData, TensorData),
    ) -> (Mognet, f64, f64) {
        let b = x.shape()[0];
        let targets = self.soft_targets(&x);
        let x = Tensor::<4>::from_data(x, &self.ad);
        let y = Tensor::<1, Int>::from_data(y, &self.ad);
        let logits = model.forward(x);
        let ce_loss = self.ce.forward(logits.clone(), y.clone());
        let label_loss = match (targets, &self.t.distill) {
            (Some(targets), Some(d)) => {
                let soft = soft_loss(logits.clone(), targets, d.temperature);
                ce_loss.clone().mul_scalar(1.0 - d.weight) + soft.mul_scalar(d.weight)
            }
            _ => ce_loss.clone(),
        };
        let loss = if self.t.reg_lambda > 0.0 {
            label_loss + model.regularizer().mul_scalar(self.t.reg_lambda)
        } else {
            label_loss
        };
        let hits = logits.argmax(1).reshape([b]).equal(y).int().sum().float();
        let stats = Tensor::cat(vec![ce_loss.detach(), hits.detach()], 0)
            .into_data()
            .try_into_vec_as::<f64>()
            .expect("loss and hits are floats");
        self.step += 1;
        if !stats[0].is_finite() {
            return (model, stats[0], stats[1]);
        }
        let lr = self.lr();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        (optim.step(lr, model, grads), stats[0], stats[1])
    }

    /// The teachers' soft targets for the batch `x` on the autodiff device (without a
    /// gradient), when the run distills.
    fn soft_targets(&self, x: &TensorData) -> Option<Tensor<2>> {
        let (teachers, d) = (self.teachers.as_ref()?, self.t.distill.as_ref()?);
        let targets = teachers.soft_targets(x.clone(), d.temperature);
        Some(Tensor::<2>::from_data(targets.into_data(), &self.ad))
    }

    /// Says what the teachers are worth before a distilling run starts: their ensemble's
    /// validation accuracy, the level the student is drawn toward.
    fn log_teachers(&self, log: &mut dyn FnMut(&str)) {
        let (Some(teachers), Some(d)) = (&self.teachers, &self.t.distill) else {
            return;
        };
        let names: Vec<String> = d.teachers.iter().map(|p| p.display().to_string()).collect();
        let accuracy = self
            .valid_set
            .as_ref()
            .map(|set| teachers.accuracy(set, self.t.batch_size.max(64)));
        let accuracy = accuracy.map_or("no validation set".into(), |a| {
            format!("ensemble validation accuracy {a:.4}")
        });
        log(&format!(
            "distilling from {} (T {}, weight {}): {accuracy}",
            names.join(", "),
            d.temperature,
            d.weight
        ));
    }

    /// The learning rate of the step just counted.
    fn lr(&self) -> f64 {
        let t = &self.t;
        t.schedule
            .lr(t.lr, self.step - 1, self.total_steps, self.warmup)
    }

    /// The batches of `epoch`, after the `before` ones an interrupted session did; checkpoints
    /// within the epoch when they are due or when `stop_after_steps` ends the call.
    pub(super) fn train_epoch(
        &mut self,
        epoch: usize,
        mut model: Mognet,
        optim: &mut ModuleOptimizer,
        before: &EpochProgress,
        clock: EpochClock,
        log: &mut dyn FnMut(&str),
    ) -> Result<(Mognet, EpochPass), TrainError> {
        let n = self.train_set.len();
        let (rx, producer) = self.spawn_epoch_batches(epoch, before.batches);
        let pb = Progress::new(n as u64, format!("epoch {}/{}", epoch + 1, self.t.epochs));
        pb.set_position(before.seen as u64);
        let mut pass = EpochPass::after(before);
        let mut timers = BatchTimers::new();
        let mut failed = None;
        for (batch_index, batch) in (before.batches..).zip(rx.iter()) {
            if self.t.budget_ends_epoch && self.budget_spent() {
                pass.complete = false;
                break;
            }
            let b = batch.0.shape()[0];
            let (stepped, loss, hits) = self.step(model, optim, batch);
            model = stepped;
            if !loss.is_finite() {
                failed = Some(TrainError::NonFinite {
                    epoch: epoch + 1,
                    step: self.step,
                    batch: batch_index + 1,
                    loss,
                });
                break;
            }
            pass.record(loss, hits, b, self.lr());
            self.session_steps += 1;
            pb.inc(b as u64);
            pb.set_message(pass.progress());
            self.report_progress(epoch, &pass, &pb, &mut timers, log);
            let at = (epoch, batch_index + 1);
            if let Some(stop) = self.checkpoint_due(at, &timers) {
                self.checkpoint_within(at, &model, optim, &pass, clock)?;
                pb.suspend(|| log(&self.checkpoint_line(at)));
                timers.last_checkpoint = Instant::now();
                if let Some(reason) = stop {
                    pass.stopped_within = Some((at.1, reason));
                    break;
                }
            }
        }
        drop(rx);
        let _ = producer.join();
        if let Some(error) = failed {
            pb.abandon();
            return Err(error);
        }
        pb.finish();
        pass.train_seconds = clock.seconds();
        Ok((model, pass))
    }

    /// A thread that prepares the batches of `epoch` after the first `skip` ones, in order.
    fn spawn_epoch_batches(&self, epoch: usize, skip: usize) -> (BatchReceiver, BatchProducer) {
        let n = self.train_set.len();
        let order = epoch_order(n, self.t.seed, epoch);
        let order = order[(skip * self.batch_size).min(n)..].to_vec();
        let view = AugmentedSet {
            set: self.train_set.clone(),
            augment: self.t.augmentation(),
            seed: self.t.seed,
            epoch: epoch as u64,
        };
        spawn_batches(view, order, self.batch_size, self.batcher)
    }

    /// Without a terminal the bar is hidden: a line now and then shows the run is alive.
    fn report_progress(
        &self,
        epoch: usize,
        pass: &EpochPass,
        pb: &Progress,
        timers: &mut BatchTimers,
        log: &mut dyn FnMut(&str),
    ) {
        if pb.is_hidden() && timers.last_report.elapsed() >= PROGRESS_EVERY {
            timers.last_report = Instant::now();
            let (epoch, epochs, n) = (epoch + 1, self.t.epochs, self.train_set.len());
            log(&format!(
                "epoch {epoch}/{epochs}: {}/{n} images, {}",
                pass.seen,
                pass.progress()
            ));
        }
    }

    /// Whether batch `at = (epoch, batches)` is followed by a checkpoint: `Some(stop)` when
    /// one is due or when the call ends here (`stop` then says why). Only within the epoch: its
    /// last batch is followed by the epoch-end checkpoint, and `stop_after` ends the call there.
    fn checkpoint_due(&self, at: (usize, usize), timers: &BatchTimers) -> Option<Option<StopWhy>> {
        let stop = self.call_ends();
        let due = self
            .checkpoint_every
            .is_some_and(|every| timers.last_checkpoint.elapsed() >= every);
        ((stop.is_some() || due) && at.1 < self.steps_per_epoch).then_some(stop)
    }

    /// Why the call ends after the step just taken, if it does: `stop_after_steps` is reached,
    /// or the time budget is spent (unless the budget ends epochs instead).
    fn call_ends(&self) -> Option<StopWhy> {
        if self
            .t
            .stop_after_steps
            .is_some_and(|s| self.session_steps >= s)
        {
            Some(StopWhy::Asked)
        } else if !self.t.budget_ends_epoch && self.budget_spent() {
            Some(StopWhy::Budget)
        } else {
            None
        }
    }

    /// Whether the time budget is spent; never before this call's first step, so that every
    /// call makes progress.
    fn budget_spent(&self) -> bool {
        self.session_steps > 0 && self.budget.is_some_and(|b| self.started.elapsed() >= b)
    }

    /// What the log says after a checkpoint at `(epoch, batches)`.
    fn checkpoint_line(&self, (epoch, batches): (usize, usize)) -> String {
        format!(
            "checkpoint at batch {batches}/{} of epoch {} (step {})",
            self.steps_per_epoch,
            epoch + 1,
            self.step
        )
    }

    /// A checkpoint after `batches` batches of `epoch`.
    fn checkpoint_within(
        &self,
        (epoch, batches): (usize, usize),
        model: &Mognet,
        optim: &ModuleOptimizer,
        pass: &EpochPass,
        clock: EpochClock,
    ) -> Result<(), TrainError> {
        let progress = EpochProgress {
            batches,
            loss_sum: pass.loss_sum,
            correct: pass.correct,
            seen: pass.seen,
            seconds: clock.seconds(),
        };
        let state = LoopState::new(
            epoch,
            self.step,
            self.t.seed,
            self.best_acc,
            self.best_epoch,
        );
        let state = LoopState {
            progress: Some(progress),
            ..state
        };
        Ok(checkpoint::save(self.run_dir, model, optim, state)?)
    }

    /// Validation and the epoch's metrics.
    fn validate(
        &self,
        epoch: usize,
        model: &Mognet,
        pass: &EpochPass,
        clock: EpochClock,
    ) -> EpochMetrics {
        let eval_model = model.valid();
        let report = self.valid_set.as_ref().map(|set| {
            let vb = Progress::new(
                set.len() as u64,
                format!("valid {}/{}", epoch + 1, self.t.epochs),
            );
            let batch = self.t.batch_size.max(64);
            let report = evaluate(&eval_model, set, batch, &self.device, Some(&vb));
            vb.finish();
            report
        });
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
        EpochMetrics {
            epoch: epoch + 1,
            lr: pass.lr,
            train_loss: pass.loss_sum / pass.seen.max(1) as f64,
            train_acc: pass.correct as f64 / pass.seen.max(1) as f64,
            valid_loss: report.as_ref().map(|r| r.loss),
            valid_acc: report.as_ref().map(|r| r.accuracy()),
            regularizer,
            occupancy,
            gate_on: report.map(|r| r.gate_on).unwrap_or_default(),
            images_per_sec: pass.seen as f64 / pass.train_seconds.max(1e-9),
            epoch_seconds: clock.seconds(),
            wall_seconds: self.wall_before + self.started.elapsed().as_secs_f64(),
            steps: self.step,
            complete: pass.complete,
        }
    }

    /// After the epoch's batches: recalibration, validation, the best model, the epoch's
    /// checkpoint, its metrics line and its log line.
    pub(super) fn end_epoch(
        &mut self,
        epoch: usize,
        model: &mut Mognet,
        optim: &ModuleOptimizer,
        pass: &EpochPass,
        clock: EpochClock,
        log: &mut dyn FnMut(&str),
    ) -> Result<EpochMetrics, TrainError> {
        if self.t.bn_recalibration > 0 {
            // The running averages trail weights that moved a lot during the epoch.
            let n = self.t.bn_recalibration;
            recalibrate(model, &self.train_set, n, self.batch_size, &self.ad);
        }
        let metrics = self.validate(epoch, model, pass, clock);
        // Without a validation set every epoch replaces the best: the last one is kept.
        if metrics.valid_acc.is_none_or(|acc| acc > self.best_acc) {
            self.best_acc = metrics.valid_acc.unwrap_or(-1.0);
            self.best_epoch = epoch + 1;
            let crc = checkpoint::save_model(model, &self.run_dir.join("best.bpk"))?;
            let best = serde_json::json!({ "epoch": self.best_epoch, "valid_acc": metrics.valid_acc, "crc32": crc });
            checkpoint::write_atomic(&self.run_dir.join("best.json"), best.to_string().as_bytes())?;
        }
        let state = LoopState::new(
            epoch + 1,
            self.step,
            self.t.seed,
            self.best_acc,
            self.best_epoch,
        );
        let state = LoopState {
            epoch_complete: pass.complete,
            ..state
        };
        checkpoint::save(self.run_dir, model, optim, state)?;
        append_metrics(&self.metrics_path, &metrics)?;
        log(&metrics.summary(self.t.epochs));
        Ok(metrics)
    }

    /// Whether the loop ends after `epoch`, the `epochs_run`-th of this call, which took
    /// `took` in this session.
    pub(super) fn stop_after(
        &self,
        epoch: usize,
        epochs_run: usize,
        complete: bool,
        took: Duration,
    ) -> Option<Stop> {
        let t = &self.t;
        let more = epoch + 1 < t.epochs;
        let why = if t.stop_after_epochs == Some(epochs_run) {
            Some(StopWhy::Asked)
        } else {
            self.call_ends()
        };
        if why == Some(StopWhy::Asked) && more {
            let message = format!(
                "stopping after {epochs_run} epochs and {} steps as asked; continue with --resume",
                self.session_steps
            );
            return Some(Stop {
                early: true,
                message: Some(message),
            });
        }
        // With `budget_ends_epoch`, no epoch is begun that would not fit in what is left of
        // the budget; otherwise the next epoch runs until the budget is spent, then checkpoints.
        let wont_fit = t.budget_ends_epoch
            && self
                .budget
                .is_some_and(|b| self.started.elapsed() + took > b);
        if !complete || ((why == Some(StopWhy::Budget) || wont_fit) && more) {
            let message = more.then(|| {
                format!(
                    "time budget reached after epoch {}; continue with --resume",
                    epoch + 1
                )
            });
            return Some(Stop {
                early: more,
                message,
            });
        }
        None
    }
}

/// How often a run without a terminal logs its progress within an epoch.
const PROGRESS_EVERY: Duration = Duration::from_secs(120);
