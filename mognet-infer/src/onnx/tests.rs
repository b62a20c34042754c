//! The `exact` graph of random networks (every PW2 kind, gate mode, multiplexer, kernel size,
//! with and without the inner requantization) in tract: the engine's logits, image by image;
//! and the `qdq` graph, exact wherever its int8 scales are 1.

use tract_onnx::prelude::*;

use super::{export_exact, export_qdq};
use crate::fast::tests::{random_model, spec};
use crate::kernels::head::argmax;
use crate::model::IntModel;
use crate::random;
use mognet_arch::rng::SplitMix64;

#[test]
fn exact_graphs_of_random_networks_give_the_engines_logits() {
    let mut kinds = std::collections::HashSet::new();
    for seed in 0..24 {
        let spec = spec(seed);
        kinds.insert((spec.pw2, spec.gate, spec.inner_norm));
        let model = random_model(spec.clone(), seed + 1000);
        let export = export_exact(&model);
        assert!(export.inexact.is_empty(), "{:?}", export.inexact);
        let len = model.image_len();
        let pixels = random::pixels(&mut SplitMix64::new(seed), 3 * len);
        let logits = run_in_tract(&export.bytes, &model, &pixels);
        for (i, row) in logits.outer_iter().enumerate() {
            let image = &pixels[i * len..(i + 1) * len];
            let expected = model.predict(image).unwrap();
            let got: Vec<i64> = row.iter().copied().collect();
            assert_eq!(got, expected.logits, "seed {seed} image {i} {spec:?}");
        }
    }
    // The random specs cover the three PW2 kinds and the three gate modes.
    for kind in [
        mognet_arch::Pw2Kind::Ca,
        mognet_arch::Pw2Kind::Prng,
        mognet_arch::Pw2Kind::Ternary,
    ] {
        assert!(kinds.iter().any(|k| k.0 == kind), "{kinds:?}");
    }
    for gate in [
        mognet_arch::GateMode::Tgap,
        mognet_arch::GateMode::Always,
        mognet_arch::GateMode::Never,
    ] {
        assert!(kinds.iter().any(|k| k.1 == gate), "{kinds:?}");
    }
    assert!(kinds.iter().any(|k| k.2) && kinds.iter().any(|k| !k.2));
}

/// The int64 logits of an exported graph on `pixels` (whole images), from tract.
fn run_in_tract(graph: &[u8], model: &IntModel, pixels: &[u8]) -> tract_ndarray::Array2<i64> {
    let [c, h, w] = model.input_shape();
    let n = pixels.len() / model.image_len();
    let runnable = tract_onnx::onnx()
        .model_for_read(&mut &graph[..])
        .unwrap()
        .with_input_fact(0, f32::fact([n, c, h, w]).into())
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let floats: Vec<f32> = pixels.iter().map(|&p| p as f32).collect();
    let input = tract_ndarray::Array4::from_shape_vec((n, c, h, w), floats).unwrap();
    let out = runnable.run(tvec!(Tensor::from(input).into())).unwrap();
    // tract keeps int64 arithmetic as symbolic dimensions (TDim): cast back to i64.
    let logits = out[0].cast_to::<i64>().unwrap();
    logits
        .to_plain_array_view::<i64>()
        .unwrap()
        .into_dimensionality()
        .unwrap()
        .to_owned()
}

#[test]
fn qdq_graphs_are_exact_where_every_scale_is_one_and_close_elsewhere() {
    let (mut exact, mut scaled, mut agree, mut images) = (0, 0, 0, 0);
    for seed in 0..24 {
        // Every other network with its thresholds within +-100 and the inner requantization:
        // then every accumulator that matters fits in int8 at scale 1.
        let small = seed % 2 == 0;
        let mut spec = spec(seed);
        spec.inner_norm |= small;
        let mut model = random_model(spec, seed + 1000);
        if small {
            clamp_thresholds(&mut model, 100);
        }
        let pixels = random::pixels(&mut SplitMix64::new(seed), 4 * model.image_len());
        let export = export_qdq(&model, &pixels).unwrap();
        assert!(
            export.scales.iter().all(|(_, s)| *s >= 1.0),
            "{:?}",
            export.scales
        );
        let logits = run_in_tract(&export.bytes, &model, &pixels);
        let all_one = export.scales.iter().all(|(_, s)| *s == 1.0);
        for (i, image) in pixels.chunks_exact(model.image_len()).enumerate() {
            let expected = model.predict(image).unwrap();
            let got: Vec<i64> = logits.row(i).to_vec();
            if all_one {
                assert_eq!(got, expected.logits, "seed {seed} image {i}");
            } else {
                agree += (argmax(&got) == expected.class) as usize;
                images += 1;
            }
        }
        assert_eq!(all_one, small, "seed {seed}: {:?}", export.scales);
        exact += all_one as usize;
        scaled += !all_one as usize;
    }
    eprintln!("{exact} exact qdq graphs, {scaled} with scales above 1: {agree}/{images} classes");
    assert!(exact >= 3 && scaled >= 3, "{exact} exact, {scaled} scaled");
}

/// Every threshold of `model` clamped to `+-limit` (which keeps each channel's order).
fn clamp_thresholds(model: &mut IntModel, limit: i32) {
    use crate::kernels::requant::ChannelRequant;
    let clamp = |channels: &mut Vec<ChannelRequant>| {
        for rq in channels.iter_mut() {
            if let ChannelRequant::Up(t) | ChannelRequant::Down(t) = rq {
                t.iter_mut().for_each(|v| *v = (*v).clamp(-limit, limit));
            }
        }
    };
    clamp(&mut model.stem_out);
    for block in &mut model.blocks {
        clamp(&mut block.cflog.out);
        if let Some(inner) = &mut block.cflog.inner {
            clamp(inner);
        }
    }
}
