//! Sweeps end to end on the shipped Fashion-MNIST sample: a stopped sweep resumes, finished
//! runs are skipped, shards split the jobs, the folder's `.gitignore` keeps each job's results
//! and leaves its checkpoints out, and the report reads them all.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use mognet_train::sweep::{Grid, JobStatus, Shard, SweepError, SweepOptions, collect, run_sweep};

mod common;

fn scratch(name: &str) -> PathBuf {
    common::scratch("sweep", name)
}

fn grid() -> Grid {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../datasets/samples/fashion-mnist");
    let text = format!(
        r#"{{
            "dataset": "fashion-mnist", "data_dir": {data:?}, "preset": "mognet-s",
            "seeds": [4],
            "model": {{ "stem_width": 8, "stages": [
                {{ "n": 8, "m": 8, "groups": 2, "blocks": 2 }},
                {{ "n": 16, "m": 16, "groups": 4, "blocks": 1 }} ] }},
            "train": {{ "epochs": 2, "batch_size": 32, "limit_train": 128, "valid_split": 500,
                        "limit_valid": 100, "lr": 0.05 }},
            "arms": [
                {{ "name": "mognet", "about": "as shipped" }},
                {{ "name": "prng", "about": "PW2 from a PRNG", "model": {{ "pw2": "prng" }} }}
            ]
        }}"#
    );
    let path = scratch("grid-file").with_extension("json");
    std::fs::write(&path, text).unwrap();
    let grid = Grid::load(&path).unwrap();
    std::fs::remove_file(path).ok();
    grid
}

fn sweep(dir: &Path, shard: Shard, stop: Option<usize>) -> Vec<(String, JobStatus)> {
    let options = SweepOptions {
        shard,
        stop_after_steps: stop,
    };
    run_sweep(&grid(), dir, options, &Device::flex(), &mut |_| {})
        .unwrap()
        .into_iter()
        .map(|(job, status)| (job.name, status))
        .collect()
}

fn model_file(dir: &Path, arm: &str) -> Vec<u8> {
    std::fs::read(dir.join(arm).join("seed-4/model.mognet")).unwrap()
}

#[test]
fn a_stopped_sweep_resumes_skips_finished_runs_and_shards_split_it() {
    let dir = scratch("resumed");
    let s = |name: &str, status| (name.to_string(), status);
    // Stopped 3 steps into the first run (8 steps: 4 batches of 32, 2 epochs), checkpointed.
    assert_eq!(
        sweep(&dir, Shard::ALL, Some(3)),
        [s("mognet", JobStatus::Stopped)]
    );
    assert!(dir.join("mognet/seed-4/last.json").exists());
    assert!(!dir.join("mognet/seed-4/result.json").exists());
    // Resumed, then the second run; then nothing is left to do.
    assert_eq!(
        sweep(&dir, Shard::ALL, None),
        [s("mognet", JobStatus::Done), s("prng", JobStatus::Done)]
    );
    assert_eq!(
        sweep(&dir, Shard::ALL, None),
        [
            s("mognet", JobStatus::Skipped),
            s("prng", JobStatus::Skipped)
        ]
    );
    assert_committed_files(&dir);
    // Two shards run one job each; the resumed run's model equals the uninterrupted one's.
    let sharded = scratch("sharded");
    let first = Shard::parse("1/2").unwrap();
    let second = Shard::parse("2/2").unwrap();
    assert_eq!(sweep(&sharded, first, None), [s("mognet", JobStatus::Done)]);
    assert_eq!(sweep(&sharded, second, None), [s("prng", JobStatus::Done)]);
    for arm in ["mognet", "prng"] {
        assert!(model_file(&dir, arm) == model_file(&sharded, arm), "{arm}");
    }
    assert!(model_file(&dir, "mognet") != model_file(&dir, "prng"));
    // The report reads both arms.
    let report = collect(&dir).unwrap();
    assert_eq!(report.arms.len(), 2);
    assert_eq!((report.arms[0].runs, report.arms[1].runs), (1, 1));
    let (a, b) = (&report.arms[0], &report.arms[1]);
    let (ta, tb) = (a.test.unwrap(), b.test.unwrap());
    assert!(ta.mean > 0.1 && tb.mean > 0.1, "{a:?} {b:?}");
    assert_eq!((ta.std, tb.std), (None, None), "one seed: no std");
    assert_eq!(b.diff, Some(tb.mean - ta.mean));
    assert_eq!(
        b.exceeds_two_std, None,
        "one seed: no spread to compare with"
    );
    assert!(a.file_bits > Some(0) && a.macs > Some(0) && a.valid.is_some());
    report.write(&dir).unwrap();
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("| prng | PW2 from a PRNG | 1/1 |"), "{md}");
    assert!(std::fs::metadata(dir.join("report.png")).unwrap().len() > 1000);
    // A folder holding another grid's sweep is refused.
    let mut other = grid();
    other.seeds = vec![5];
    let options = SweepOptions {
        shard: Shard::ALL,
        stop_after_steps: None,
    };
    let err = run_sweep(&other, &dir, options, &Device::flex(), &mut |_| {}).unwrap_err();
    assert!(matches!(err, SweepError::OtherGrid { .. }), "{err}");
    std::fs::remove_dir_all(dir).ok();
    std::fs::remove_dir_all(sharded).ok();
}

/// What `git add` of a finished sweep folder takes, by its own `.gitignore`: the grid, the
/// report and each job's result, config, metrics and model, never a checkpoint.
fn assert_committed_files(dir: &Path) {
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    git(&["init", "--quiet"]);
    let status = git(&[
        "status",
        "--porcelain",
        "--ignored",
        "--untracked-files=all",
    ]);
    let mut kept: Vec<&str> = status
        .lines()
        .filter_map(|l| l.strip_prefix("?? "))
        .collect();
    kept.sort();
    let mut expected = vec![".gitignore".to_string(), "grid.json".to_string()];
    for arm in ["mognet", "prng"] {
        for file in [
            "config.json",
            "metrics.jsonl",
            "model.mognet",
            "result.json",
        ] {
            expected.push(format!("{arm}/seed-4/{file}"));
        }
    }
    assert_eq!(kept, expected, "{status}");
    let ignored: Vec<&str> = status
        .lines()
        .filter_map(|l| l.strip_prefix("!! "))
        .collect();
    assert!(
        ignored
            .iter()
            .any(|f| f.starts_with("mognet/seed-4/checkpoints/"))
            && ignored.contains(&"mognet/seed-4/best.bpk")
            && ignored.contains(&"mognet/seed-4/last.json"),
        "{status}"
    );
    std::fs::remove_dir_all(dir.join(".git")).unwrap();
}

/// The study's grid loads, expands to 10 arms x 3 seeds, and its arms have the bits they
/// claim: ternary PW2 costs 2 bits a weight more than the CA's records, the narrowed ternary
/// arm fits in the default's bits, the PRNG arm stores 40 bits less per PW2 (seed and CRC).
#[test]
fn the_ablation_grid_has_ten_arms_and_the_bits_they_claim() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ablations/mognet-s-fmnist.json");
    let grid = Grid::load(&path).unwrap();
    let jobs = grid.jobs().unwrap();
    assert_eq!((grid.arms.len(), jobs.len()), (10, 30));
    let bits = |arm: &str| {
        let job = jobs.iter().find(|j| j.name == arm).unwrap();
        job.run.model.summary().total_bits_2bit
    };
    let pw2_weights: u64 = [32u64, 64, 128].iter().map(|w| 2 * w * w).sum();
    assert_eq!(
        bits("ternary-pw2"),
        bits("mognet") + 2 * pw2_weights - 6 * 136
    );
    assert!(bits("ternary-pw2-equal-bits") <= bits("mognet"));
    assert!(bits("ternary-pw2-equal-bits") > bits("mognet") * 99 / 100);
    assert_eq!(bits("prng-pw2"), bits("mognet") - 6 * 40);
    assert!(jobs.iter().all(|j| j.run.train.valid_split == Some(5000)));
}

/// The label-smoothing recipe grid runs the ablation study's arm 1 under the same protocol
/// (so its finished runs can be reused) beside one arm that differs only in label smoothing.
#[test]
fn the_recipe_grid_shares_arm_one_with_the_ablation_grid() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let recipe = Grid::load(&root.join("recipes/label-smoothing-mognet-s-fmnist.json")).unwrap();
    let ablation = Grid::load(&root.join("ablations/mognet-s-fmnist.json")).unwrap();
    let (recipe, ablation) = (recipe.jobs().unwrap(), ablation.jobs().unwrap());
    assert_eq!(recipe.len(), 6);
    for seed in [1, 2, 3] {
        let find = |jobs: &[mognet_train::sweep::Job], arm: &str| {
            let job = jobs.iter().find(|j| j.name == arm && j.seed == seed);
            serde_json::to_value(&job.unwrap().run).unwrap()
        };
        assert_eq!(find(&recipe, "mognet"), find(&ablation, "mognet"));
        let mut smoothed = find(&recipe, "label-smoothing");
        assert_eq!(smoothed["train"]["label_smoothing"], 0.1);
        smoothed["train"]["label_smoothing"] = serde_json::Value::Null;
        assert_eq!(smoothed, find(&recipe, "mognet"));
    }
}
