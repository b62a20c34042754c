//! Every shipped float model (`checkpoints/NAME.bpk` with `NAME.config.json`) folds to exactly
//! the shipped integer model `NAME.mognet`, and the two agree code for code on the sample.

use std::path::PathBuf;

use burn::tensor::Device;
use mognet_core::fold::fold;
use mognet_core::parity::parity;
use mognet_core::persist::load_weights_file;
use mognet_data::{Cifar100Label, DatasetKind, Split};
use mognet_infer::{IntModel, Packing};

/// Sample images compared per model: the float model of mognet-l is slow on 2 debug cores.
const IMAGES: usize = 200;

#[test]
fn shipped_weights_fold_to_the_shipped_integer_models() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut names: Vec<PathBuf> = std::fs::read_dir(root.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bpk"))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "checkpoints/ ships float weights");
    let test = DatasetKind::FashionMnist
        .load(
            &root.join("datasets/samples/fashion-mnist"),
            Split::Test,
            Cifar100Label::Fine,
        )
        .unwrap()
        .truncated(IMAGES);
    let device = Device::flex();
    for bpk in names {
        let (config, model) = load_weights_file(&bpk, &device).unwrap();
        let (int_model, report) = fold(&model, &config).unwrap();
        let shipped = std::fs::read(bpk.with_extension("mognet")).unwrap();
        let bytes = int_model.to_bytes(Packing::TwoBit).unwrap();
        assert!(
            bytes == shipped,
            "{}: the fold differs from the shipped file",
            bpk.display()
        );
        let (loaded, _) = IntModel::load(&bpk.with_extension("mognet")).unwrap();
        let p = parity(
            &model,
            &config,
            &report,
            &loaded,
            &test,
            &device,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(p.images, IMAGES);
        assert_eq!(p.top1(), 1.0, "{}", bpk.display());
        assert_eq!(p.code_mismatch_rate(), 0.0, "{}", bpk.display());
    }
}
