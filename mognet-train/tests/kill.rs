//! Crash safety from outside: a training process killed with SIGKILL at random moments (some in
//! the middle of a checkpoint), resumed each time, ends with exactly the weights of a run that
//! was never interrupted, and never loses its last checkpoint.
#![cfg(unix)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use burn::prelude::Config as _;
use common::{last_weights, scratch};
use mognet_core::{MognetConfig, SplitMix64, StageSpec};
use mognet_train::train::checkpoint::{self, PAUSE_VAR};

mod common;

/// Kills of the interrupted run.
const KILLS: usize = 24;

/// How long each checkpoint pauses between its files in the killed run (see [`PAUSE_VAR`]).
const PAUSE_MS: u64 = 15;

/// When a kill lands, relative to what the run is doing.
#[derive(Clone, Copy)]
enum Moment {
    /// Up to 150 ms after the process starts: loading, or the first step.
    StartUp,
    /// Just after a checkpoint newer than the last one seen is complete: within a step.
    MidStep,
    /// While a checkpoint newer than the last one seen is being written.
    MidCheckpoint,
}

impl Moment {
    const ALL: [Moment; 3] = [Moment::StartUp, Moment::MidStep, Moment::MidCheckpoint];

    /// Waits for this moment of the run in `run`, whose last checkpoint was at `step`; false
    /// when the process ended first.
    fn wait(self, child: &mut Child, run: &Path, step: usize, rng: &mut SplitMix64) -> bool {
        let newer = || progress_step(run).is_some_and(|s| s > step);
        let reached = match self {
            Moment::StartUp => {
                std::thread::sleep(Duration::from_millis(rng.next_u64() % 150));
                true
            }
            Moment::MidStep => poll(child, newer),
            Moment::MidCheckpoint => {
                poll(child, newer) && poll(child, || killed_mid_checkpoint(run))
            }
        };
        let jitter = match self {
            Moment::StartUp => 0,
            Moment::MidStep => rng.next_u64() % 10,
            Moment::MidCheckpoint => rng.next_u64() % PAUSE_MS,
        };
        std::thread::sleep(Duration::from_millis(jitter));
        reached && child.try_wait().unwrap().is_none()
    }
}

/// Polls `condition` every millisecond until it holds (true) or the process ends (false).
fn poll(child: &mut Child, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if condition() {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        assert!(
            Instant::now() < deadline,
            "the run made no progress in 300 s"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The step of the checkpoint `last.json` names, read while the run may be replacing it: a
/// failed read (the folder just removed) is `None`, as before the first checkpoint.
fn progress_step(run: &Path) -> Option<usize> {
    let dir = checkpoint::last_dir(run).ok()?;
    checkpoint::load_state(&dir).ok().map(|s| s.step)
}

/// A small network, 4 epochs of 16 steps, a checkpoint after every step.
fn start(config: &Path, run: &Path, pause_ms: u64) -> Child {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/samples/fashion-mnist");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mognet-train"));
    cmd.args(["train", "--dataset", "fashion-mnist", "--data-dir"])
        .arg(&sample)
        .arg("--config")
        .arg(config)
        .args([
            "--epochs",
            "4",
            "--batch-size",
            "32",
            "--limit-train",
            "512",
        ])
        .args([
            "--valid-split",
            "1000",
            "--limit-valid",
            "100",
            "--seed",
            "5",
        ])
        .args([
            "--backend",
            "flex",
            "--checkpoint-minutes",
            "0.00001",
            "--no-test",
        ])
        .arg("--out")
        .arg(run)
        .env(PAUSE_VAR, pause_ms.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if run.join("last.json").exists() {
        cmd.arg("--resume");
    }
    cmd.spawn().expect("mognet-train starts")
}

/// The step of the checkpoint `last.json` names, after checking that it is whole: its state
/// reads and both binary files match their recorded CRCs. `None` before the first checkpoint.
fn intact_checkpoint_step(run: &Path) -> Option<usize> {
    if !run.join("last.json").exists() {
        return None;
    }
    let dir = checkpoint::last_dir(run).expect("last.json names a checkpoint");
    let state = checkpoint::load_state(&dir).expect("the named checkpoint's state reads");
    checkpoint::read_verified(&dir.join("model.bpk"), state.model_crc).expect("model.bpk whole");
    checkpoint::read_verified(&dir.join("optim.bpk"), state.optim_crc).expect("optim.bpk whole");
    Some(state.step)
}

/// Whether the kill left a checkpoint half-written: a temporary file, or a checkpoint folder
/// beside the one `last.json` names (a new one being written, or the old one not yet removed).
fn killed_mid_checkpoint(run: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(run.join("checkpoints")) else {
        return false;
    };
    let last = checkpoint::last_dir(run).ok();
    entries.flatten().any(|e| {
        let path = e.path();
        let tmp = std::fs::read_dir(&path)
            .map(|files| {
                files
                    .flatten()
                    .any(|f| f.path().extension() == Some("tmp".as_ref()))
            })
            .unwrap_or(false);
        tmp || Some(&path) != last.as_ref()
    })
}

#[test]
fn a_run_killed_at_random_moments_resumes_to_the_uninterrupted_weights() {
    let dir = scratch("kill", "run");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("model.json");
    let stage = |n, groups| StageSpec {
        n,
        m: n,
        groups,
        blocks: 1,
    };
    MognetConfig::new(8, vec![stage(8, 2), stage(16, 4)])
        .with_in_channels(1)
        .with_num_classes(10)
        .with_seed(3)
        .save(&config)
        .unwrap();

    let whole = dir.join("whole");
    let started = Instant::now();
    let status = start(&config, &whole, 0).wait().unwrap();
    assert!(status.success(), "the uninterrupted run failed: {status}");
    let whole_time = started.elapsed();

    let killed = dir.join("killed");
    let mut rng = SplitMix64::new(2026);
    let (mut mid_checkpoint, mut last_step) = (0, 0);
    for kill in 0..KILLS {
        let mut child = start(&config, &killed, PAUSE_MS);
        // Timed from the run's progress, not from its start, so that each kill costs the run
        // about one step on a fast machine or a slow one.
        let moment = Moment::ALL[(rng.next_u64() % 3) as usize];
        let still_running = moment.wait(&mut child, &killed, last_step, &mut rng);
        assert!(
            still_running,
            "kill {kill}: the run finished before it was killed; make it longer"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        mid_checkpoint += killed_mid_checkpoint(&killed) as usize;
        if let Some(step) = intact_checkpoint_step(&killed) {
            assert!(
                step >= last_step,
                "kill {kill}: checkpoint went back from step {last_step} to {step}"
            );
            last_step = step;
        }
    }
    let status = start(&config, &killed, PAUSE_MS).wait().unwrap();
    assert!(status.success(), "the resumed run failed: {status}");
    eprintln!(
        "{KILLS} kills, {mid_checkpoint} in the middle of a checkpoint; last checkpoint before \
         the final resume at step {last_step}; uninterrupted run {whole_time:?}"
    );
    assert!(
        mid_checkpoint >= 3,
        "only {mid_checkpoint} kills landed mid-checkpoint"
    );
    assert!(
        last_step > 0,
        "no checkpoint was ever written between kills"
    );
    assert_eq!(last_weights(&killed), last_weights(&whole));
    let _ = std::fs::remove_dir_all(&dir);
}
