//! The `exact` ONNX export of every shipped model, run by tract (a pure-Rust ONNX runtime):
//! the same fixed-point logits and classes as the integer engine on the shipped test images.

use std::path::PathBuf;

use mognet_data::{Cifar100Label, DatasetKind, ImageSet, Split};
use mognet_infer::IntModel;
use mognet_infer::fast::{FastModel, Variant};
use mognet_infer::onnx::export_exact;
use tract_onnx::prelude::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Images per run of the graph.
const BATCH: usize = 250;

/// The graph, optimized by tract for batches of [`BATCH`] images of `set`'s shape.
fn runnable(graph: &[u8], set: &ImageSet) -> Arc<TypedRunnableModel> {
    let [c, s] = [set.channels, set.size];
    tract_onnx::onnx()
        .model_for_read(&mut &graph[..])
        .unwrap()
        .with_input_fact(0, f32::fact([BATCH, c, s, s]).into())
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap()
}

/// The graph's `logits` on `BATCH` images from `images.start`.
fn tract_logits(
    model: &Arc<TypedRunnableModel>,
    set: &ImageSet,
    images: std::ops::Range<usize>,
) -> Vec<Vec<i64>> {
    let n = images.len();
    assert_eq!(n, BATCH);
    let [c, s] = [set.channels, set.size];
    let pixels: Vec<f32> = images
        .flat_map(|i| set.image(i).iter().map(|&p| p as f32))
        .collect();
    let input = tract_ndarray::Array4::from_shape_vec((n, c, s, s), pixels).unwrap();
    let out = model.run(tvec!(Tensor::from(input).into())).unwrap();
    // tract keeps int64 arithmetic as symbolic dimensions (TDim): cast back to i64.
    let logits = out[0].cast_to::<i64>().unwrap();
    let logits = logits.to_plain_array_view::<i64>().unwrap();
    let classes = out[1].cast_to::<i64>().unwrap();
    let classes = classes.to_plain_array_view::<i64>().unwrap();
    logits
        .outer_iter()
        .zip(classes.iter())
        .map(|(row, &class)| {
            let row: Vec<i64> = row.iter().copied().collect();
            let first_max = row.iter().position(|v| v == row.iter().max().unwrap());
            assert_eq!(
                first_max,
                Some(class as usize),
                "ArgMax picks the first largest"
            );
            row
        })
        .collect()
}

#[test]
fn exact_export_of_the_shipped_models_gives_the_engines_logits_in_tract() {
    let set = DatasetKind::FashionMnist
        .load(
            &root().join("datasets/samples/fashion-mnist"),
            Split::Test,
            Cifar100Label::Fine,
        )
        .unwrap();
    let mut models = 0;
    for entry in std::fs::read_dir(root().join("checkpoints")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "mognet") {
            continue;
        }
        let (model, _) = IntModel::load(&path).unwrap();
        let graph = runnable(&export_exact(&model).bytes, &set);
        // The engine's answers (the fast engine, which the suite checks against the reference).
        let expected = FastModel::new(&model)
            .predict_batch(&set.pixels, 2, Variant::detect())
            .unwrap();
        assert_eq!(set.len() % BATCH, 0);
        for start in (0..set.len()).step_by(BATCH) {
            let range = start..start + BATCH;
            let logits = tract_logits(&graph, &set, range.clone());
            for (i, l) in range.zip(logits) {
                assert_eq!(l, expected[i].logits, "{} image {i}", path.display());
            }
        }
        models += 1;
    }
    assert!(models >= 2, "checkpoints/ ships mognet-s and mognet-m");
}
