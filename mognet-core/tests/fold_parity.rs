//! Fold + integer engine against the Burn model in eval mode, code by code, on the shipped
//! Fashion-MNIST sample; and the file's round trip and corruption handling.

use std::path::PathBuf;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use mognet_core::fold::fold;
use mognet_core::parity::parity;
use mognet_core::{
    BtqConfig, GateMode, Mognet, MognetConfig, MuxInputs, Pw2Kind, StageSpec, ThresholdMode,
};
use mognet_data::{Cifar100Label, DatasetKind, ImageSet, Split};
use mognet_infer::{FormatError, IntModel, Packing};

fn sample(split: Split) -> ImageSet {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../datasets/samples/fashion-mnist");
    DatasetKind::FashionMnist
        .load(&dir, split, Cifar100Label::Fine)
        .unwrap()
}

fn tiny() -> MognetConfig {
    let stage = |n, groups| StageSpec {
        n,
        m: n,
        groups,
        blocks: 2,
    };
    MognetConfig::new(8, vec![stage(8, 2), stage(16, 4)])
        .with_in_channels(1)
        .with_num_classes(10)
        .with_seed(5)
}

fn batch(
    set: &ImageSet,
    range: std::ops::Range<usize>,
    device: &Device,
) -> (Tensor<4>, Tensor<1, Int>) {
    let n = range.len();
    let pixels: Vec<f32> = range
        .clone()
        .flat_map(|i| set.image(i).iter().map(|&p| p as f32 / 255.0))
        .collect();
    let labels: Vec<i64> = range.map(|i| set.labels[i] as i64).collect();
    (
        Tensor::from_data(TensorData::new(pixels, [n, 1, 32, 32]), device),
        Tensor::from_data(TensorData::new(labels, [n]), device),
    )
}

/// A few SGD steps so that batch-norm statistics, alphas and gates are far from their init.
fn briefly_trained(config: &MognetConfig) -> Mognet {
    let device = Device::flex().autodiff();
    let train = sample(Split::Train);
    let mut model = config.init(&device).unwrap();
    let mut optim = SgdConfig::new().init();
    let ce = CrossEntropyLossConfig::new().init(&device);
    for step in 0..6 {
        let (x, y) = batch(&train, step * 32..(step + 1) * 32, &device);
        let loss = ce.forward(model.forward(x), y) + model.regularizer().mul_scalar(0.01);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(0.05, model, grads);
    }
    model.valid()
}

/// Every layer's codes and the top-1 class agree between the float eval model and the engine.
fn assert_parity(model: &Mognet, config: &MognetConfig, images: usize) {
    let (int_model, report) = fold(model, config).unwrap();
    assert!(report.f32_inexact.is_empty(), "{:?}", report.f32_inexact);
    let test = sample(Split::Test);
    let device = Device::flex();
    let (x, _) = batch(&test, 0..images, &device);
    let (logits, trace) = model.valid().forward_trace(x);
    let float_classes: Vec<i64> = logits
        .argmax(1)
        .into_data()
        .try_into_vec_as::<i64>()
        .unwrap();
    let mut compared = 0usize;
    for i in 0..images {
        let (pred, t) = int_model.predict_trace(test.image(i)).unwrap();
        assert_eq!(t.codes.len(), trace.codes.len());
        for ((name, ints), (fname, floats)) in t.codes.iter().zip(&trace.codes) {
            assert_eq!(name, fname);
            let floats: Vec<f32> = floats.clone().into_data().try_into_vec_as::<f32>().unwrap();
            let per = ints.len();
            let floats = &floats[i * per..(i + 1) * per];
            for (j, (a, b)) in ints.iter().zip(floats).enumerate() {
                assert_eq!(*a as f32, *b, "image {i} layer {name} element {j}");
            }
            compared += per;
        }
        assert_eq!(
            pred.class as i64, float_classes[i],
            "image {i}: top-1 differs"
        );
    }
    assert!(compared > 0);
}

#[test]
fn fresh_model_folds_exactly() {
    let config = tiny();
    let model = config.init(&Device::flex()).unwrap();
    assert_parity(&model, &config, 64);
}

#[test]
fn briefly_trained_model_folds_exactly() {
    let config = tiny();
    assert_parity(&briefly_trained(&config), &config, 128);
}

/// `parity` over a set the batch size does not divide: every image counted once, progress after
/// every batch.
#[test]
fn parity_reports_progress_per_batch() {
    let config = tiny();
    let model = briefly_trained(&config);
    let (int_model, report) = fold(&model, &config).unwrap();
    let test = sample(Split::Test).truncated(250);
    let mut seen = Vec::new();
    let p = parity(
        &model,
        &config,
        &report,
        &int_model,
        &test,
        &Device::flex(),
        &mut |done| seen.push(done),
    )
    .unwrap();
    assert_eq!(seen, vec![100, 200, 250]);
    assert_eq!(p.images, 250);
    assert_eq!(p.top1(), 1.0);
    assert_eq!(p.code_mismatch_rate(), 0.0);
    assert!(p.layers.iter().all(|l| l.2 > 0), "{:?}", p.layers);
}

#[test]
fn options_fold_exactly() {
    for config in [
        tiny().with_inner_norm(true),
        tiny().with_gate(GateMode::Always).with_mux(MuxInputs::Skip),
        tiny().with_gate(GateMode::Never),
    ] {
        assert_parity(&briefly_trained(&config), &config, 48);
    }
}

/// The ablation arms that change the network (the PRNG and the ternary PW2, the quantile
/// threshold, 2- and 4-bit activations) train, fold and run in the integer engine exactly as
/// the default does, and survive the file.
#[test]
fn ablation_arms_fold_exactly_and_round_trip() {
    let quantile = BtqConfig::new().with_mode(ThresholdMode::Quantile);
    for config in [
        tiny().with_pw2(Pw2Kind::Prng),
        tiny().with_pw2(Pw2Kind::Ternary),
        tiny().with_pw2(Pw2Kind::Ternary).with_inner_norm(true),
        tiny().with_gate(GateMode::Always),
        tiny().with_btq(quantile),
        tiny().with_bits(2),
        tiny().with_bits(4),
    ] {
        let model = briefly_trained(&config);
        assert_parity(&model, &config, 48);
        let (int_model, _) = fold(&model, &config).unwrap();
        let bytes = int_model.to_bytes(Packing::TwoBit).unwrap();
        let (back, _) = IntModel::from_bytes(&bytes).unwrap();
        assert_eq!(back, int_model);
    }
    // The PRNG arm's PW2 differs from the CA's, and its file records which generator it used.
    let ca = tiny().init(&Device::flex()).unwrap();
    let prng = tiny()
        .with_pw2(Pw2Kind::Prng)
        .init(&Device::flex())
        .unwrap();
    let w = |m: &Mognet| {
        m.stages[0]
            .first
            .pw2
            .fixed()
            .unwrap()
            .weight
            .clone()
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap()
    };
    assert_ne!(w(&ca), w(&prng));
    let (int_model, _) = fold(&prng, &tiny().with_pw2(Pw2Kind::Prng)).unwrap();
    assert!(matches!(
        int_model.blocks[0].cflog.pw2.generator,
        Some(mognet_arch::FixedPw::Prng(_))
    ));
    assert_eq!(
        int_model.to_bytes(Packing::TwoBit).unwrap()[11],
        1,
        "PW2 kind byte"
    );
}

#[test]
fn file_round_trips_in_both_packings() {
    let config = tiny();
    let (int_model, _) = fold(&briefly_trained(&config), &config).unwrap();
    for packing in [Packing::TwoBit, Packing::Base3] {
        let bytes = int_model.to_bytes(packing).unwrap();
        let (back, info) = IntModel::from_bytes(&bytes).unwrap();
        assert_eq!(back, int_model);
        assert_eq!(info.packing, packing);
        assert_eq!(info.bytes, bytes.len());
        // The summary from the file is within 2 KiB of the file's size.
        let summary = mognet_arch::Summary::new(&back.spec, &info.widths);
        let stored = match packing {
            Packing::TwoBit => summary.total_bits_2bit,
            Packing::Base3 => summary.total_bits_base3,
        };
        let file_bits = bytes.len() as i64 * 8;
        assert!(
            (file_bits - stored as i64).abs() <= 2048 * 8,
            "{file_bits} vs {stored}"
        );
    }
}

fn with_crc(mut body: Vec<u8>) -> Vec<u8> {
    let crc = crc32fast::hash(&body);
    body.extend(crc.to_le_bytes());
    body
}

#[test]
fn every_corruption_is_a_typed_error() {
    let config = tiny();
    let (int_model, _) = fold(&config.init(&Device::flex()).unwrap(), &config).unwrap();
    let good = int_model.to_bytes(Packing::TwoBit).unwrap();
    let body = good[..good.len() - 4].to_vec();

    // Truncated anywhere: never a panic, always an error.
    for cut in [0, 5, 11, 15, 40, good.len() / 2, good.len() - 1] {
        let err = IntModel::from_bytes(&good[..cut]).unwrap_err();
        assert!(
            matches!(
                err,
                FormatError::Magic | FormatError::Truncated { .. } | FormatError::Checksum { .. }
            ),
            "cut {cut}: {err}"
        );
    }
    // A flipped byte anywhere past the header is caught by the checksum.
    for at in [12, 100, good.len() / 2, good.len() - 5] {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        assert!(
            matches!(
                IntModel::from_bytes(&bad),
                Err(FormatError::Checksum { .. })
            ),
            "byte {at}"
        );
    }
    // Wrong magic and version.
    let mut bad = good.clone();
    bad[0] = b'X';
    assert!(matches!(
        IntModel::from_bytes(&bad),
        Err(FormatError::Magic)
    ));
    let mut bad = body.clone();
    bad[8] = 9;
    assert!(matches!(
        IntModel::from_bytes(&with_crc(bad)),
        Err(FormatError::Version { found: 9 })
    ));
    // Absurd shapes with a valid checksum: refused before any large allocation.
    let mut bad = body.clone();
    bad[12..14].copy_from_slice(&60000u16.to_le_bytes()); // in_channels
    assert!(matches!(
        IntModel::from_bytes(&with_crc(bad)),
        Err(FormatError::Invalid { .. })
    ));
    let mut bad = body.clone();
    bad[22..24].copy_from_slice(&0u16.to_le_bytes()); // stem width 0
    assert!(matches!(
        IntModel::from_bytes(&with_crc(bad)),
        Err(FormatError::Spec(_))
    ));
    // Trailing garbage.
    let mut bad = body.clone();
    bad.push(0);
    assert!(matches!(
        IntModel::from_bytes(&with_crc(bad)),
        Err(FormatError::Trailing(1))
    ));
    // A CA seed that no longer regenerates the stored rows.
    let ca_at = find_ca(&body, &int_model);
    let mut bad = body.clone();
    bad[ca_at + 1] ^= 1;
    let err = IntModel::from_bytes(&with_crc(bad)).unwrap_err();
    assert!(matches!(err, FormatError::Ca { .. }), "{err}");
    // The loader names the file.
    let path = std::env::temp_dir().join(format!("mognet-corrupt-{}.mognet", std::process::id()));
    std::fs::write(&path, &good[..good.len() / 3]).unwrap();
    let err = IntModel::load(&path).unwrap_err().to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    std::fs::remove_file(path).ok();
}

/// Offset of the first CA record (rule byte) in an encoded tiny model.
fn find_ca(body: &[u8], model: &IntModel) -> usize {
    let Some(mognet_arch::FixedPw::Ca(g)) = &model.blocks[0].cflog.pw2.generator else {
        panic!("the tiny model's PW2 is the CA");
    };
    let mut needle = vec![g.rule];
    needle.extend(g.seed.to_le_bytes());
    body.windows(needle.len())
        .position(|w| w == needle.as_slice())
        .expect("the CA record is in the file")
}

/// A ternary PW2 is a trained layer: it has parameters, a regularizer and occupancy, gets
/// gradients, and the file stores its weights (2 bits each) where the CA stores 17 bytes.
#[test]
fn ternary_pw2_is_trained_and_stored() {
    let config = tiny().with_pw2(Pw2Kind::Ternary);
    let fresh = config.init(&Device::flex()).unwrap();
    let names: Vec<String> = fresh.ternary_layers().into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"s1.b0.pw2".to_string()), "{names:?}");
    assert_eq!(names.len(), 1 + 4 * 3 + 1);
    let ca_params = tiny().init(&Device::flex()).unwrap().num_params();
    // Two 8x8 PW2s in stage 1, two 16x16 in stage 2.
    let pw2_weights = 2 * 64 + 2 * 256;
    assert_eq!(fresh.num_params(), ca_params + pw2_weights);
    let trained = briefly_trained(&config);
    let before = fresh.stages[1].first.pw2.ternary().unwrap().weight.val();
    let after = trained.stages[1].first.pw2.ternary().unwrap().weight.val();
    assert!(
        !before.equal(after).all().into_scalar::<bool>(),
        "PW2 did not train"
    );
    let (int_model, _) = fold(&trained, &config).unwrap();
    assert_eq!(int_model.blocks[2].cflog.pw2.generator, None);
    let (ca_model, _) = fold(&briefly_trained(&tiny()), &tiny()).unwrap();
    let bytes = |m: &IntModel| m.to_bytes(Packing::TwoBit).unwrap();
    assert_eq!(bytes(&int_model)[11], 2, "PW2 kind byte");
    // Same thresholds' layout aside, the file grows by the packed weights less the CA records.
    let summary = |m: &IntModel| {
        let (_, info) = IntModel::from_bytes(&bytes(m)).unwrap();
        mognet_arch::Summary::new(&m.spec, &info.widths)
    };
    let (t, c) = (summary(&int_model), summary(&ca_model));
    assert_eq!(t.stored_weights, c.stored_weights + pw2_weights as u64);
    assert_eq!(t.generated_weights, 0);
    let t_rows: u64 = t.rows.iter().map(|r| r.weight_bits_2bit + r.ca_bits).sum();
    let c_rows: u64 = c.rows.iter().map(|r| r.weight_bits_2bit + r.ca_bits).sum();
    assert_eq!(t_rows, c_rows + 2 * pw2_weights as u64 - 4 * 136);
}

/// The `float` ONNX graph of a briefly trained model, run by tract, gives the float model's
/// logits (within f32 rounding) and its class on every image.
#[test]
fn float_onnx_graph_gives_the_float_models_classes() {
    use tract_onnx::prelude::*;
    for config in [tiny(), tiny().with_inner_norm(true)] {
        let model = briefly_trained(&config);
        let (int_model, _) = fold(&model, &config).unwrap();
        let parts = mognet_core::onnx::float_parts(&model);
        let graph = mognet_infer::onnx::export_float(&int_model, &parts).bytes;
        let test = sample(Split::Test);
        let n = 64;
        let runnable = tract_onnx::onnx()
            .model_for_read(&mut &graph[..])
            .unwrap()
            .with_input_fact(0, f32::fact([n, 1, 32, 32]).into())
            .unwrap()
            .into_optimized()
            .unwrap()
            .into_runnable()
            .unwrap();
        let pixels: Vec<f32> = (0..n)
            .flat_map(|i| test.image(i).iter().map(|&p| p as f32))
            .collect();
        let input = tract_ndarray::Array4::from_shape_vec((n, 1, 32, 32), pixels).unwrap();
        let out = runnable.run(tvec!(Tensor::from(input).into())).unwrap();
        let logits = out[0].to_plain_array_view::<f32>().unwrap();
        let (x, _) = batch(&test, 0..n, &Device::flex());
        let burn_logits: Vec<f32> = model
            .valid()
            .forward(x)
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap();
        for (i, row) in logits.outer_iter().enumerate() {
            let expected = &burn_logits[i * 10..(i + 1) * 10];
            let argmax =
                |v: &[f32]| (0..v.len()).fold(0, |best, j| if v[j] > v[best] { j } else { best });
            let got: Vec<f32> = row.iter().copied().collect();
            assert_eq!(argmax(&got), argmax(expected), "image {i}");
            for (g, e) in got.iter().zip(expected) {
                assert!(
                    (g - e).abs() <= 1e-3 * e.abs().max(1.0),
                    "image {i}: {g} vs {e}"
                );
            }
        }
    }
}
