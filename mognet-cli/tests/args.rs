//! Every subcommand of `mognet-infer` given absurd or missing values: an error naming the
//! problem and a failing exit status, never a panic.

use std::process::Command;

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `(arguments, text the error must contain)`.
const CASES: &[(&str, &str)] = &[
    (
        "bench --preset mognet-s --batch 0",
        "--batch must be between 1",
    ),
    (
        "bench --preset mognet-s --batch 100000000",
        "--batch must be between 1",
    ),
    (
        "bench --preset mognet-s --threads 0",
        "--threads must be between 1",
    ),
    (
        "bench --preset mognet-s --rounds 0",
        "--rounds must be between 1",
    ),
    ("bench --preset mognet-s --batch nan", "invalid value"),
    ("bench --preset mognet-s --in-channels 0", "in_channels"),
    ("bench --preset mognet-s --num-classes 0", "num_classes"),
    ("bench --preset mognet-x", "unknown preset"),
    ("bench", "give --model, --run or --preset"),
    ("bench --model MISSING.mognet", "MISSING.mognet"),
    (
        "check-onnx --model checkpoints/mognet-s-fmnist.mognet --graph MISSING.onnx --dataset fashion-mnist --data-dir datasets/samples/fashion-mnist --limit 10",
        "MISSING.onnx",
    ),
    (
        "check-onnx --model checkpoints/mognet-s-fmnist.mognet --graph README.md --dataset fashion-mnist --data-dir datasets/samples/fashion-mnist --limit 10",
        "loading README.md in tract",
    ),
    (
        "bench --preset mognet-s --batch 1 --onnx-dir /proc/nope",
        "creating /proc/nope",
    ),
    ("summary --model MISSING.mognet", "MISSING.mognet"),
    ("summary --model README.md", "README.md"),
    (
        "eval --model MISSING.mognet --dataset fashion-mnist --data-dir datasets/samples/fashion-mnist",
        "MISSING.mognet",
    ),
    (
        "eval --model checkpoints/mognet-s-fmnist.mognet --dataset fashion-mnist --data-dir MISSING",
        "MISSING",
    ),
    (
        "eval --model checkpoints/mognet-s-fmnist.mognet --dataset fashion-mnist --data-dir datasets/samples/fashion-mnist --limit 0",
        "--limit must be at least 1",
    ),
    (
        "eval --model checkpoints/mognet-s-fmnist.mognet --dataset cifar10 --data-dir datasets/samples/fashion-mnist",
        "cifar",
    ),
    (
        "eval --model checkpoints/mognet-s-fmnist.mognet --dataset fashion-mnist --data-dir datasets/samples/fashion-mnist --limit -3",
        "unexpected argument",
    ),
    ("export --run MISSING --out /tmp/x.mognet", "MISSING"),
    ("export --out /tmp/x.mognet", "--run"),
    (
        "export --weights MISSING.bpk --out /tmp/x.mognet",
        "MISSING",
    ),
    (
        "parity --weights MISSING.bpk --model checkpoints/mognet-s-fmnist.mognet --dataset fashion-mnist --data-dir datasets/samples/fashion-mnist",
        "MISSING",
    ),
    (
        "classify --model checkpoints/mognet-s-fmnist.mognet MISSING.png",
        "MISSING.png",
    ),
    (
        "classify --model checkpoints/mognet-s-fmnist.mognet README.md",
        "README.md",
    ),
    ("classify --model MISSING.mognet x.png", "MISSING.mognet"),
    (
        "export-onnx --model MISSING.mognet --out /tmp/x.onnx",
        "MISSING.mognet",
    ),
    (
        "export-onnx --model checkpoints/mognet-s-fmnist.mognet --out /proc/x.onnx",
        "/proc",
    ),
    (
        "export-onnx --model checkpoints/mognet-s-fmnist.mognet --out /tmp/x.onnx --style nope",
        "invalid value",
    ),
    (
        "export-onnx --model checkpoints/mognet-s-fmnist.mognet --out /tmp/x.onnx --style qdq --calibration-images 0",
        "--calibration-images must be between 1",
    ),
    (
        "export-onnx --model checkpoints/mognet-s-fmnist.mognet --out /tmp/x.onnx --style qdq --calibration-dir MISSING",
        "MISSING",
    ),
    (
        "export-onnx --model checkpoints/mognet-s-fmnist.mognet --out /tmp/x.onnx --style qdq --calibration-dataset cifar10",
        "cifar",
    ),
    ("frobnicate", "unrecognized subcommand"),
];

#[test]
fn absurd_arguments_are_errors_never_panics() {
    for (args, expected) in CASES {
        let out = Command::new(env!("CARGO_BIN_EXE_mognet-infer"))
            .args(args.split_whitespace())
            .current_dir(root())
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "`{args}` succeeded:\n{stderr}");
        assert!(!stderr.contains("panicked"), "`{args}` panicked:\n{stderr}");
        assert!(
            stderr.contains(expected),
            "`{args}`: the error should say \"{expected}\":\n{stderr}"
        );
    }
    assert_eq!(CASES.len(), 34);
}
