//! An epoch's bookkeeping in the training loop: its clock across sessions, the running sums of
//! its batches, when it last reported and checkpointed, and why a call stops.

use std::time::Instant;

use crate::train::checkpoint::EpochProgress;

/// Time spent on one epoch, earlier sessions included.
#[derive(Clone, Copy)]
pub(super) struct EpochClock {
    /// Seconds an interrupted session had spent on the epoch.
    pub(super) earlier: f64,
    /// When this session started it.
    pub(super) start: Instant,
}

impl EpochClock {
    pub(super) fn seconds(&self) -> f64 {
        self.earlier + self.start.elapsed().as_secs_f64()
    }
}

/// How an epoch's batches ended.
pub(super) struct EpochPass {
    pub(super) loss_sum: f64,
    pub(super) correct: usize,
    pub(super) seen: usize,
    /// Learning rate of the last step.
    pub(super) lr: f64,
    /// False when the time budget cut the epoch short (only with `budget_ends_epoch`).
    pub(super) complete: bool,
    /// Batches done when `stop_after_steps` or the time budget ended the call within the epoch
    /// (checkpointed there), and which of the two.
    pub(super) stopped_within: Option<(usize, StopWhy)>,
    /// Seconds of training in the epoch.
    pub(super) train_seconds: f64,
}

impl EpochPass {
    /// A pass that continues the `before` batches of an interrupted session.
    pub(super) fn after(before: &EpochProgress) -> Self {
        EpochPass {
            loss_sum: before.loss_sum,
            correct: before.correct,
            seen: before.seen,
            lr: 0.0,
            complete: true,
            stopped_within: None,
            train_seconds: 0.0,
        }
    }

    /// Counts a batch of `images` with mean loss `loss` and `hits` correct, stepped at `lr`.
    pub(super) fn record(&mut self, loss: f64, hits: f64, images: usize, lr: f64) {
        self.lr = lr;
        self.loss_sum += loss * images as f64;
        self.correct += hits.round() as usize;
        self.seen += images;
    }

    /// The running loss, accuracy and learning rate, for the progress bar.
    pub(super) fn progress(&self) -> String {
        let seen = self.seen.max(1) as f64;
        format!(
            "loss {:.4} acc {:.4} lr {:.2e}",
            self.loss_sum / seen,
            self.correct as f64 / seen,
            self.lr
        )
    }
}

/// Why the loop ends after an epoch.
pub(super) struct Stop {
    /// Before the run's last epoch (`--resume` continues it).
    pub(super) early: bool,
    /// What to tell the user.
    pub(super) message: Option<String>,
}

/// Why a call ends before the run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StopWhy {
    /// `stop_after_epochs` or `stop_after_steps` is reached.
    Asked,
    /// The time budget is spent.
    Budget,
}

impl StopWhy {
    /// For the log.
    pub(super) fn reason(self) -> &'static str {
        match self {
            StopWhy::Asked => "as asked",
            StopWhy::Budget => "the time budget is spent",
        }
    }
}

/// When an epoch last logged its progress and last checkpointed.
pub(super) struct BatchTimers {
    pub(super) last_report: Instant,
    pub(super) last_checkpoint: Instant,
}

impl BatchTimers {
    pub(super) fn new() -> Self {
        let now = Instant::now();
        BatchTimers {
            last_report: now,
            last_checkpoint: now,
        }
    }
}
