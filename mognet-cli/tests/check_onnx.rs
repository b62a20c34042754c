//! `export-onnx` then `check-onnx` from the command line: the shipped mognet-s's exact graph, run
//! by tract on shipped sample images, gives the integer engine's class on every one.

use std::process::Command;

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn mognet_infer(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mognet-infer"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_exact_export_checks_out_against_the_engine_in_tract() {
    let graph = std::env::temp_dir().join(format!("mognet-check-onnx-{}.onnx", std::process::id()));
    let graph_arg = graph.to_str().unwrap();
    let model = "checkpoints/mognet-s-fmnist.mognet";
    mognet_infer(&["export-onnx", "--model", model, "--out", graph_arg]);
    let report = mognet_infer(&[
        "check-onnx",
        "--model",
        model,
        "--graph",
        graph_arg,
        "--dataset",
        "fashion-mnist",
        "--data-dir",
        "datasets/samples/fashion-mnist",
        "--limit",
        "120",
    ]);
    let _ = std::fs::remove_file(&graph);
    assert!(
        report.contains("classes differing from the engine: 0 of 120"),
        "{report}"
    );
    // The sample's first 120 test images: the engine is right on most of them.
    let accuracy: f64 = report
        .split("accuracy ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .expect("an accuracy figure");
    assert!((0.85..=1.0).contains(&accuracy), "{report}");
}
