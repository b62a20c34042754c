//! The `exact` graph of random networks (every PW2 kind, gate mode, multiplexer, kernel size,
//! with and without the inner requantization) in tract: the engine's logits, image by image.

use tract_onnx::prelude::*;

use super::export_exact;
use crate::fast::tests::{random_model, spec};
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
        let [c, h, w] = model.input_shape();
        let n = 3;
        let mut rng = SplitMix64::new(seed);
        let pixels: Vec<u8> = (0..n * c * h * w).map(|_| rng.next_u64() as u8).collect();
        let runnable = tract_onnx::onnx()
            .model_for_read(&mut &export.bytes[..])
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
        let logits = logits.to_plain_array_view::<i64>().unwrap();
        for (i, row) in logits.outer_iter().enumerate() {
            let image = &pixels[i * c * h * w..(i + 1) * c * h * w];
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
