use super::*;
use burn::module::{Param, ParamId};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Int, TensorData};

/// A small network that still has every part: two stages, an MRB, pooling.
pub(crate) fn tiny_config() -> MognetConfig {
    MognetConfig::new(
        8,
        vec![
            StageSpec {
                n: 8,
                m: 8,
                groups: 2,
                blocks: 2,
            },
            StageSpec {
                n: 16,
                m: 16,
                groups: 4,
                blocks: 2,
            },
        ],
    )
    .with_in_channels(1)
    .with_num_classes(10)
    .with_input_size([16, 16])
}

/// Deterministic pseudo-images `p / 255` with u8 pixels.
pub(crate) fn images(
    batch: usize,
    channels: usize,
    size: usize,
    seed: u64,
    device: &Device,
) -> Tensor<4> {
    let mut rng = mognet_arch::ca::SplitMix64::new(seed);
    let n = batch * channels * size * size;
    let values: Vec<f32> = (0..n)
        .map(|_| (rng.next_u64() % 256) as f32 / 255.0)
        .collect();
    Tensor::from_data(
        TensorData::new(values, [batch, channels, size, size]),
        device,
    )
}

/// Synthetic 32x32 grayscale images: a bright 8x8 square whose position depends on the label,
/// over uniform noise.
fn class_patterns(labels: &[i64], seed: u64, device: &Device) -> Tensor<4> {
    let mut rng = mognet_arch::ca::SplitMix64::new(seed);
    let mut values = Vec::with_capacity(labels.len() * 1024);
    for &label in labels {
        let (top, left) = ((label as usize / 4) * 10 + 2, (label as usize % 4) * 7 + 2);
        for y in 0..32 {
            for x in 0..32 {
                let inside = (top..top + 8).contains(&y) && (left..left + 8).contains(&x);
                let p = if inside {
                    200 + rng.next_u64() % 56
                } else {
                    rng.next_u64() % 128
                };
                values.push(p as f32 / 255.0);
            }
        }
    }
    Tensor::from_data(TensorData::new(values, [labels.len(), 1, 32, 32]), device)
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

#[test]
fn every_preset_gives_batch_by_classes_logits_on_flex() {
    let device = Device::flex();
    for (preset, c, k) in [(Preset::S, 3, 10), (Preset::M, 1, 10), (Preset::L, 3, 100)] {
        let model = MognetConfig::preset(preset, c, k).init(&device).unwrap();
        let logits = model.forward(images(2, c, 32, 1, &device));
        assert_eq!(logits.dims(), [2, k], "{preset}");
        assert!(to_vec(logits).iter().all(|v| v.is_finite()));
    }
}

#[test]
fn same_seed_same_weights_and_logits_bit_for_bit() {
    let device = Device::flex();
    let a = tiny_config().with_seed(7).init(&device).unwrap();
    let b = tiny_config().with_seed(7).init(&device).unwrap();
    let c = tiny_config().with_seed(8).init(&device).unwrap();
    let wa = to_vec(a.stages[1].blocks[0].cflog.gconv.weight.val());
    let wb = to_vec(b.stages[1].blocks[0].cflog.gconv.weight.val());
    let wc = to_vec(c.stages[1].blocks[0].cflog.gconv.weight.val());
    assert_eq!(wa, wb);
    assert_ne!(wa, wc);
    let x = images(4, 1, 16, 3, &device);
    let la = to_vec(a.forward(x.clone()));
    let lb = to_vec(b.forward(x));
    assert_eq!(
        la.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        lb.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}

#[test]
fn trace_names_match_the_layer_list_and_codes_are_in_range() {
    let device = Device::flex();
    let config = tiny_config();
    let model = config.init(&device).unwrap();
    let (_, trace) = model.forward_trace(images(2, 1, 16, 5, &device));
    let names: Vec<&str> = trace.codes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "stem",
            "s1.b0.pw2",
            "s1.b1.pw2",
            "s1.b1.gate",
            "s2.pool",
            "s2.b0.pw2",
            "s2.b1.pw2",
            "s2.b1.gate"
        ]
    );
    let spec_names: Vec<String> = config.spec().layers().into_iter().map(|l| l.name).collect();
    for name in names {
        assert!(spec_names.iter().any(|n| n == name), "{name}");
    }
    for (name, codes) in &trace.codes {
        for v in to_vec(codes.clone()) {
            assert!(v == v.floor() && (0.0..=7.0).contains(&v), "{name}: {v}");
        }
    }
    assert_eq!(trace.gates.len(), 2);
    assert_eq!(trace.gates[1].1.dims(), [2, 16]);
}

/// Trainable parameters (running statistics are visited too, but need no gradient).
struct ParamIds(Vec<(ParamId, usize, usize)>);
impl burn::module::ModuleVisitor for ParamIds {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if param.val().is_require_grad() {
            self.0.push((param.id, param.shape().num_elements(), D));
        }
    }
}

#[test]
fn gradient_reaches_every_trainable_parameter_and_no_ca_weight() {
    let device = Device::flex().autodiff();
    let config = tiny_config().with_inner_norm(true);
    let model = config.init(&device).unwrap();
    let x = images(8, 1, 16, 9, &device);
    let labels =
        Tensor::<1, Int>::from_data(TensorData::from([0i64, 1, 2, 3, 4, 5, 6, 7]), &device);
    let loss = CrossEntropyLossConfig::new()
        .init(&device)
        .forward(model.forward(x), labels)
        + model.regularizer();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let mut ids = ParamIds(vec![]);
    model.visit(&mut ids);
    // stem conv + BN(2) ; per CFLOG: pw1, gconv, inner BN(2), out BN(2); per MRB tau; head conv + BN(2)
    assert_eq!(ids.0.len(), 3 + 4 * 6 + 2 + 3);
    for (id, numel, rank) in &ids.0 {
        let norm = match rank {
            4 => to_vec(grads.get::<4>(*id).expect("gradient").powi_scalar(2).sum())[0],
            1 => to_vec(grads.get::<1>(*id).expect("gradient").powi_scalar(2).sum())[0],
            _ => unreachable!("MOGNET has only rank-1 and rank-4 parameters"),
        };
        assert!(
            norm > 0.0,
            "zero gradient for a parameter of {numel} elements"
        );
    }
    // CA weights are constants, not tracked and not parameters.
    let ca = &model.stages[0].first.pw2.fixed().unwrap().weight;
    assert!(!ca.is_require_grad());
    // Every parameter Burn counts is a trainable one or a BN running statistic: no CA weight.
    let generated: usize = config
        .spec()
        .layers()
        .iter()
        .map(|l| l.generated_weights)
        .sum();
    let trainable: usize = ids.0.iter().map(|(_, n, _)| n).sum();
    let bn_channels = 8 + 2 * (8 + 8) + 2 * (16 + 16) + 10;
    assert_eq!(model.num_params(), trainable + 2 * bn_channels);
    assert!(generated > 0);
}

#[test]
fn config_json_and_bpk_round_trip_regenerate_ca() {
    let device = Device::flex();
    let dir = std::env::temp_dir().join(format!("mognet-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = tiny_config().with_seed(3).with_gate(GateMode::Always);
    let json = dir.join("model.json");
    std::fs::write(&json, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    let loaded_config = MognetConfig::from_file(&json).unwrap();
    assert_eq!(loaded_config.spec(), config.spec());
    assert_eq!(loaded_config.seed, 3);

    let model = config.init(&device).unwrap();
    let x = images(3, 1, 16, 11, &device);
    let before = to_vec(model.forward(x.clone()));
    let ca_before = to_vec(
        model.stages[1].blocks[0]
            .cflog
            .pw2
            .fixed()
            .unwrap()
            .weight
            .clone(),
    );
    let path = dir.join("model.bpk");
    model.save_file(&path).unwrap();
    let fresh = loaded_config.with_seed(3).init(&device).unwrap();
    let restored = fresh.try_load_file(&path).unwrap();
    assert_eq!(to_vec(restored.forward(x)), before);
    assert_eq!(
        to_vec(
            restored.stages[1].blocks[0]
                .cflog
                .pw2
                .fixed()
                .unwrap()
                .weight
                .clone()
        ),
        ca_before
    );

    std::fs::write(&json, "{\"stem_width\": 8").unwrap();
    let err = MognetConfig::from_file(&json).unwrap_err().to_string();
    assert!(err.contains("model.json"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn invalid_config_is_a_typed_error() {
    let device = Device::flex();
    let mut config = tiny_config();
    config.stages[0].groups = 3;
    assert!(matches!(config.init(&device), Err(ModelError::Spec(_))));
    let degenerate = tiny_config().with_ca_rule(0);
    let err = degenerate.init(&device).unwrap_err();
    assert!(matches!(err, ModelError::Ca { .. }), "{err}");
}

#[test]
fn every_preset_meets_its_budget_and_mac_count() {
    for preset in Preset::ALL {
        for (c, k) in [(1, 10), (3, 10), (3, 100)] {
            let s = MognetConfig::preset(preset, c, k).summary();
            assert!(
                s.total_bits_2bit <= preset.budget_bits(),
                "{preset} ({c} ch, {k} classes): {} > {}",
                s.total_bits_2bit,
                preset.budget_bits()
            );
        }
    }
    let macs = |p| MognetConfig::preset(p, 3, 10).summary().macs as f64 / 1e6;
    assert!((macs(Preset::S) - 22.0).abs() < 1.5, "{}", macs(Preset::S));
    assert!((macs(Preset::M) - 95.0).abs() < 3.0, "{}", macs(Preset::M));
    assert!((macs(Preset::L) - 210.0).abs() < 8.0, "{}", macs(Preset::L));
}

#[test]
fn sgd_memorises_a_fixed_batch() {
    let device = Device::flex().autodiff();
    let config = MognetConfig::new(
        16,
        vec![
            StageSpec {
                n: 16,
                m: 16,
                groups: 4,
                blocks: 2,
            },
            StageSpec {
                n: 32,
                m: 32,
                groups: 4,
                blocks: 2,
            },
        ],
    )
    .with_in_channels(1)
    .with_num_classes(10)
    .with_seed(1);
    let mut model = config.init(&device).unwrap();
    let labels: Vec<i64> = (0..64).map(|i| (i * 7 % 10) as i64).collect();
    let x = class_patterns(&labels, 21, &device);
    let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [64]), &device);
    let ce = CrossEntropyLossConfig::new().init(&device);
    let mut optim = SgdConfig::new()
        .with_momentum(Some(
            burn::optim::momentum::MomentumConfig::new().with_momentum(0.9),
        ))
        .init();
    let mut losses = Vec::new();
    for _ in 0..30 {
        let loss = ce.forward(model.forward(x.clone()), labels.clone());
        losses.push(to_vec(loss.clone())[0]);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(0.2, model, grads);
    }
    let first = losses[0];
    let last = *losses.last().unwrap();
    assert!(last < 0.5 * first, "loss {first} -> {last}: {losses:?}");
}

#[test]
fn recalibrated_batch_norms_hold_the_average_of_batch_statistics() {
    let device = Device::flex().autodiff();
    let mut model = tiny_config().init(&device).unwrap();
    let batches: Vec<Tensor<4>> = (0..3).map(|i| images(8, 1, 16, 40 + i, &device)).collect();
    model.recalibrate_batch_norms(batches.clone());
    let mean_after: Vec<f32> = to_vec(model.stem.out.bn.running_mean.value_sync());
    // The stem's statistics do not depend on later layers: average the three batches' means.
    let mut expected = vec![0.0f32; 8];
    for x in &batches {
        let probe = tiny_config().init(&device).unwrap();
        let mut probe = probe;
        for bn in probe.batch_norms_mut() {
            bn.momentum = 1.0;
        }
        let _ = probe.forward(x.clone());
        for (e, v) in expected
            .iter_mut()
            .zip(to_vec(probe.stem.out.bn.running_mean.value_sync()))
        {
            *e += v / 3.0;
        }
    }
    for (a, e) in mean_after.iter().zip(&expected) {
        assert!((a - e).abs() < 1e-5 * e.abs().max(1.0), "{a} vs {e}");
    }
    assert_eq!(model.stem.out.bn.momentum, 0.1, "momentum restored");
    assert_eq!(model.batch_norms_mut().len(), 1 + 4 + 1);
}

/// The running statistics of every batch norm, bit for bit, in order.
fn running_stats(model: &mut Mognet) -> Vec<Vec<u32>> {
    let bits = |t: Tensor<1>| to_vec(t).iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
    model
        .batch_norms_mut()
        .into_iter()
        .flat_map(|bn| {
            [
                bits(bn.running_mean.value_sync()),
                bits(bn.running_var.value_sync()),
            ]
        })
        .collect()
}

#[test]
fn recalibration_matches_tracked_forwards_and_leaves_parameters_trainable() {
    let device = Device::flex().autodiff();
    let batches: Vec<Tensor<4>> = (0..3).map(|i| images(8, 1, 16, 60 + i, &device)).collect();
    // Reference: the same averaging done with tracked parameters (the graph-recording path).
    let mut reference = tiny_config().init(&device).unwrap();
    for (k, x) in batches.iter().enumerate() {
        for bn in reference.batch_norms_mut() {
            bn.momentum = 1.0 / (k as f64 + 1.0);
        }
        let _ = reference.forward(x.clone());
    }
    let mut model = tiny_config().init(&device).unwrap();
    let before = running_stats(&mut model);
    model.recalibrate_batch_norms(batches);
    let after = running_stats(&mut model);
    assert_ne!(after, before, "recalibration moved the statistics");
    assert_eq!(after, running_stats(&mut reference));
    assert!(model.stem.conv.weight.val().is_require_grad());
    assert!(model.head.conv.weight.val().is_require_grad());
}

/// CRC-32 of every float parameter's values (`f32` bits), in the module's visiting order.
struct ParamCrc(crc32fast::Hasher);

impl burn::module::ModuleVisitor for ParamCrc {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let values = param.val().into_data().try_to_vec::<f32>().unwrap();
        for v in values {
            self.0.update(&v.to_bits().to_le_bytes());
        }
    }
}

/// The initial weights of a fixed config are a function of its seed alone, drawn in execution
/// order: a refactoring that reorders the draws (or the CA seed search) changes every model a
/// seed gives, and fails here. The CRC is of mognet-s's parameters (3 input channels, 100
/// classes, `inner_norm`, seed 7) on Flex, as the code gave them on 2026-12-01.
#[test]
fn initial_weights_of_a_seed_stay_the_same() {
    let config = MognetConfig::preset(Preset::S, 3, 100)
        .with_inner_norm(true)
        .with_seed(7);
    let model = config.init(&Device::flex()).unwrap();
    let mut crc = ParamCrc(crc32fast::Hasher::new());
    model.visit(&mut crc);
    assert_eq!(crc.0.finalize(), 3461537018);
}
