//! Every subcommand of `mognet-train` given absurd or missing values: an error naming the
//! problem and a failing exit status, never a panic, and no checkpoint left behind.

use std::process::Command;

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

const DATA: &str = "--dataset fashion-mnist --data-dir datasets/samples/fashion-mnist";

/// `(arguments, text the error must contain)`; `{data}` is the shipped sample, `{out}` a
/// fresh folder.
const CASES: &[(&str, &str)] = &[
    (
        "train {data} --out {out} --time-budget nan",
        "time_budget_minutes must be",
    ),
    (
        "train {data} --out {out} --time-budget 0",
        "time_budget_minutes must be",
    ),
    (
        "train {data} --out {out} --time-budget 1e300",
        "time_budget_minutes must be",
    ),
    ("train {data} --out {out} --lr nan", "lr must be"),
    ("train {data} --out {out} --lr 0", "lr must be"),
    ("train {data} --out {out} --lr=-1", "lr must be"),
    (
        "train {data} --out {out} --warmup-epochs nan",
        "warmup_epochs must be",
    ),
    (
        "train {data} --out {out} --weight-decay inf",
        "weight_decay must be",
    ),
    (
        "train {data} --out {out} --reg-lambda=-0.5",
        "reg_lambda must be",
    ),
    (
        "train {data} --out {out} --label-smoothing 1",
        "label_smoothing must be",
    ),
    (
        "train {data} --out {out} --label-smoothing=-0.1",
        "label_smoothing must be",
    ),
    (
        "train {data} --out {out} --checkpoint-minutes nan",
        "checkpoint_minutes must be",
    ),
    ("train {data} --out {out} --epochs 0", "epochs must be"),
    (
        "train {data} --out {out} --epochs 99999999999999999999999",
        "invalid value",
    ),
    (
        "train {data} --out {out} --batch-size 0",
        "batch_size must be",
    ),
    (
        "train {data} --out {out} --limit-train 0",
        "limit_train must be",
    ),
    (
        "train {data} --out {out} --limit-valid 0",
        "limit_valid must be",
    ),
    (
        "train {data} --out {out} --stop-after 0",
        "stop_after_epochs must be",
    ),
    (
        "train {data} --out {out} --stop-after-steps 0",
        "stop_after_steps must be",
    ),
    (
        "train {data} --out {out} --valid-split 6000",
        "--valid-split",
    ),
    ("train {data} --out {out} --resume", "--resume given"),
    ("train {data} --out {out} --init MISSING.bpk", "MISSING.bpk"),
    (
        "train {data} --out {out} --config MISSING.json",
        "MISSING.json",
    ),
    (
        "train {data} --out {out} --preset mognet-x",
        "unknown preset",
    ),
    (
        "train --dataset fashion-mnist --data-dir MISSING --out {out}",
        "MISSING",
    ),
    (
        "train --dataset cifar10 --data-dir datasets/samples/fashion-mnist --out {out}",
        "data_batch",
    ),
    ("train {data}", "--out"),
    (
        "train {data} --out {out} --teacher T.bpk --distill-weight 2",
        "distill_weight must be",
    ),
    (
        "train {data} --out {out} --teacher T.bpk --distill-temperature 0",
        "distill_temperature must be",
    ),
    ("train {data} --out {out} --distill-weight 0.3", "--teacher"),
    (
        "train {data} --out {out} --teacher MISSING.bpk",
        "MISSING.bpk",
    ),
    ("average --weights A.bpk --out {out}", "--weights"),
    (
        "average --weights MISSING.bpk MISSING2.bpk --out {out}",
        "MISSING",
    ),
    ("bench-train --batch 0", "must be at least 1"),
    ("bench-train --steps 0", "must be at least 1"),
    ("bench-train --threads 0", "--threads must be at least 1"),
    ("bench-data --batch 0", "must be at least 1"),
    ("bench-data --workers 0", "must be at least 1"),
    ("bench-data --rounds 0", "must be at least 1"),
    ("bench-data --images 0", "must be at least 1"),
    ("demo --minutes nan --out {out}", "--minutes must be"),
    ("demo --minutes 0 --out {out}", "--minutes must be"),
    ("demo --minutes inf --out {out}", "--minutes must be"),
    ("demo --data-dir MISSING --out {out}", "MISSING"),
    ("summary --in-channels 0", "in_channels"),
    ("summary --forward 100000000", "--forward must be"),
    ("summary --config MISSING.json", "MISSING.json"),
    ("plot --run MISSING", "MISSING"),
    ("eval --run MISSING {data}", "MISSING"),
    ("eval {data}", "--run"),
    ("eval --weights MISSING.bpk {data}", "MISSING.bpk"),
    (
        "eval --run MISSING {data} --limit 0",
        "--limit must be at least 1",
    ),
    (
        "eval --run MISSING {data} --batch-size 0",
        "must be at least 1",
    ),
    ("sweep --grid MISSING.json --out {out}", "MISSING.json"),
    (
        "sweep --grid ablations/mognet-s-fmnist.json --out {out} --shard 0/2",
        "--shard 0/2",
    ),
    (
        "sweep --grid ablations/mognet-s-fmnist.json --out {out} --shard 3/2",
        "--shard 3/2",
    ),
    ("sweep --grid README.md --out {out}", "README.md"),
    ("report --sweep MISSING", "MISSING"),
    ("frobnicate", "unrecognized subcommand"),
];

#[test]
fn absurd_arguments_are_errors_never_panics() {
    let scratch = std::env::temp_dir().join(format!("mognet-args-{}", std::process::id()));
    for (i, (args, expected)) in CASES.iter().enumerate() {
        let out_dir = scratch.join(format!("case-{i}"));
        let line = args
            .replace("{data}", DATA)
            .replace("{out}", &out_dir.display().to_string());
        let out = Command::new(env!("CARGO_BIN_EXE_mognet-train"))
            .args(line.split_whitespace())
            .current_dir(root())
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "`{line}` succeeded:\n{stderr}");
        assert!(!stderr.contains("panicked"), "`{line}` panicked:\n{stderr}");
        assert!(
            stderr.contains(expected),
            "`{line}`: the error should say \"{expected}\":\n{stderr}"
        );
        // A refused run leaves no checkpoint that a later --resume would take up.
        assert!(
            !out_dir.join("last.json").exists(),
            "`{line}` wrote a checkpoint"
        );
    }
    assert_eq!(CASES.len(), 59);
    std::fs::remove_dir_all(scratch).ok();
}

/// The last line of `train` says what the run holds: a run stopped before its first epoch
/// ended has no best epoch, with or without a validation split.
#[test]
fn a_run_stopped_before_its_first_epoch_says_none_has_finished() {
    for (split, limit) in [("600", "256"), ("0", "64")] {
        let out_dir =
            std::env::temp_dir().join(format!("mognet-early-stop-{split}-{}", std::process::id()));
        let line = format!(
            "train {DATA} --limit-train {limit} --batch-size 32 --valid-split {split} \
             --stop-after-steps 1 --backend flex --out {}",
            out_dir.display()
        );
        let out = Command::new(env!("CARGO_BIN_EXE_mognet-train"))
            .args(line.split_whitespace())
            .current_dir(root())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "`{line}` failed:\n{stdout}");
        let last = stdout.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("no epoch has finished yet; run folder"),
            "`{line}` ended with: {last}"
        );
        assert!(!stdout.contains("evaluating the best model on the test split"));
        std::fs::remove_dir_all(out_dir).ok();
    }
}
