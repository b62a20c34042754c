//! The trained models shipped in `checkpoints/`: each loads, gives its recorded accuracy on the
//! shipped Fashion-MNIST sample (the first 1,000 test images), re-encodes to the same bytes, and
//! the fast engine agrees with the reference engine image by image.
use std::path::{Path, PathBuf};

use mognet_data::{Cifar100Label, DatasetKind, Split};
use mognet_infer::IntModel;
use mognet_infer::fast::{FastModel, Variant};

/// Every shipped model and its correct answers on the sample, as `mognet-infer eval --data-dir
/// datasets/samples/fashion-mnist` printed them when the file was shipped.
const SHIPPED: &[(&str, usize)] = &[
    ("mognet-l-fmnist.mognet", 955),
    ("mognet-m-fmnist.mognet", 947),
    ("mognet-s-fmnist.mognet", 934),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn shipped_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".mognet"))
        .collect();
    names.sort();
    names
}

#[test]
fn shipped_models_keep_their_accuracy_and_engines_agree() {
    let dir = root().join("checkpoints");
    let mut listed: Vec<String> = SHIPPED.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(
        shipped_files(&dir),
        listed,
        "every shipped model has its line here"
    );
    let set = DatasetKind::FashionMnist
        .load(
            &root().join("datasets/samples/fashion-mnist"),
            Split::Test,
            Cifar100Label::Fine,
        )
        .unwrap();
    assert_eq!(set.labels.len(), 1000);
    for &(name, correct) in SHIPPED {
        let (model, info) = IntModel::load(&dir.join(name)).unwrap();
        // The writer gives back the shipped file, byte for byte.
        let bytes = std::fs::read(dir.join(name)).unwrap();
        assert!(
            model.to_bytes(info.packing).unwrap() == bytes,
            "{name}: re-encoded"
        );
        let fast = FastModel::new(&model);
        let predictions = fast
            .predict_batch(&set.pixels, 2, Variant::detect())
            .unwrap();
        let got = predictions
            .iter()
            .zip(&set.labels)
            .filter(|(p, l)| p.class == **l as usize)
            .count();
        assert_eq!(got, correct, "{name}: correct answers on the sample");
        // The reference engine (plain loops) on the first 50 images: the same logits.
        let len = fast.image_len();
        for (i, p) in predictions.iter().take(50).enumerate() {
            assert_eq!(
                &model.predict(&set.pixels[i * len..(i + 1) * len]).unwrap(),
                p,
                "{name}: image {i}"
            );
        }
    }
}
