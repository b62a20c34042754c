//! The fast engine against the scalar reference, bit for bit, on random networks, weights,
//! thresholds and images, for every variant this CPU can run.

use mognet_arch::rng::SplitMix64;
use mognet_arch::{GateMode, MuxInputs, NetSpec, Pw2Kind, StageSpec};

use super::geom::Geom;
use super::kernels::{Post, Rq, Terms, conv};
use super::{FastModel, Variant};
use crate::kernels::conv::ternary_conv;
use crate::model::{IntModel, TernaryWeights};

use crate::random::{self, Choices as _};

pub(crate) fn random_model(spec: NetSpec, seed: u64) -> IntModel {
    random::model(&mut SplitMix64::new(seed), spec).expect("a valid PW2 seed")
}

/// The constructor refuses parts that do not fit the network, naming the part.
#[test]
fn inconsistent_parts_are_refused_by_name() {
    let model = random_model(spec(3), 4);
    let parts = |m: &IntModel| {
        (
            m.spec.clone(),
            (m.stem.clone(), m.stem_out.clone()),
            m.blocks.clone(),
            m.head.clone(),
        )
    };
    let build = |(spec, stem, blocks, head)| IntModel::new(spec, stem, blocks, head);
    assert_eq!(build(parts(&model)).unwrap(), model);

    let (spec, stem, mut blocks, head) = parts(&model);
    blocks[0].cflog.pw1.codes[0] = 2;
    let err = build((spec, stem, blocks, head)).unwrap_err().to_string();
    assert!(
        err.contains("s1.b0.pw1") && err.contains("not ternary"),
        "{err}"
    );

    let (spec, stem, mut blocks, head) = parts(&model);
    blocks.pop();
    let err = build((spec, stem, blocks, head)).unwrap_err().to_string();
    assert!(err.contains("blocks"), "{err}");

    let (spec, stem, blocks, mut head) = parts(&model);
    head.offsets.push(0);
    let err = build((spec, stem, blocks, head)).unwrap_err().to_string();
    assert!(err.contains("head offsets"), "{err}");

    let (spec, (w, mut t), blocks, head) = parts(&model);
    t.pop();
    let err = build((spec, (w, t), blocks, head)).unwrap_err().to_string();
    assert!(err.contains("stem thresholds"), "{err}");
}

pub(crate) fn spec(seed: u64) -> NetSpec {
    random::spec(&mut SplitMix64::new(seed))
}

#[test]
fn every_variant_matches_the_reference_on_random_networks() {
    let variants = Variant::available();
    assert!(variants.contains(&Variant::Portable));
    // CFLOGs taking the Winograd kernel, and of those the i16 CA path (VNNI variant).
    let (mut wino, mut ca16) = (0, 0);
    let mut kinds = std::collections::HashMap::new();
    for seed in 0..40 {
        let spec = spec(seed);
        spec.validate().unwrap();
        *kinds.entry(spec.pw2).or_insert(0) += 1;
        let model = random_model(spec.clone(), seed + 1000);
        let fast = FastModel::new(&model);
        for b in fast.cflogs() {
            wino += b.gconv_wino.is_some() as usize;
            ca16 += b.ca16 as usize;
        }
        let mut rng = SplitMix64::new(seed);
        let images = random::pixels(&mut rng, 3 * fast.image_len());
        for img in images.chunks_exact(fast.image_len()) {
            let expected = model.predict(img).unwrap();
            for &v in &variants {
                let mut scratch = fast.scratch();
                // Twice with the same scratch: nothing of one image leaks into the next.
                for _ in 0..2 {
                    assert_eq!(
                        fast.predict(img, &mut scratch, v).unwrap(),
                        expected,
                        "seed {seed} {spec:?} {v:?}"
                    );
                }
            }
        }
        let batch = fast.predict_batch(&images, 2, Variant::detect()).unwrap();
        let one = fast.predict_batch(&images, 1, Variant::Portable).unwrap();
        assert_eq!(batch, one);
    }
    assert!(
        ca16 >= 5 && wino >= ca16 + 5,
        "{wino} Winograd CFLOGs, {ca16} with i16 CA sums: too few to test both"
    );
    for kind in [Pw2Kind::Ca, Pw2Kind::Prng, Pw2Kind::Ternary] {
        assert!(kinds.get(&kind).is_some_and(|&n| n >= 5), "{kinds:?}");
    }
}

#[test]
fn convolution_kernel_matches_the_reference_on_random_shapes() {
    for seed in 0..30 {
        let mut r = SplitMix64::new(seed);
        let groups = [1, 2, 3][r.below(3) as usize];
        let (c_in, c_out) = (
            groups * (1 + r.below(5) as usize),
            groups * (1 + r.below(5) as usize),
        );
        let k = [1, 3, 5][r.below(3) as usize];
        let (h, w) = (1 + r.below(12) as usize, 1 + r.below(12) as usize);
        let weights = random::ternary(&mut r, TernaryWeights::len_for(c_out, c_in, k, groups));
        let input: Vec<i32> = (0..c_in * h * w)
            .map(|_| r.below(2001) as i32 - 1000)
            .collect();
        let expected = ternary_conv(&input, c_in, h, w, &weights, c_out, k, groups);
        let g = Geom::new(h, w, k / 2);
        let mut planes = vec![0; g.buffer_len(c_in.max(c_out))];
        for c in 0..c_in {
            for y in 0..h {
                for x in 0..w {
                    planes[g.at(c, y, x)] = input[(c * h + y) * w + x];
                }
            }
        }
        let terms = Terms::new(&weights, c_out, c_in, k, groups, &g);
        let mut out = vec![0; planes.len()];
        conv(&planes, &mut out, &g, &terms, Post::Store);
        for o in 0..c_out {
            for y in 0..h {
                for x in 0..w {
                    assert_eq!(
                        out[g.at(o, y, x)],
                        expected[(o * h + y) * w + x],
                        "seed {seed}"
                    );
                }
            }
        }
    }
}

#[test]
fn pw1_sums_too_wide_for_i16_take_the_i32_path() {
    // 7500 input channels: about 5000 nonzero weights per PW1 row, sums up to ~35000.
    let spec = NetSpec {
        in_channels: 1,
        num_classes: 3,
        input_size: [4, 4],
        bits: 3,
        stem_width: 7500,
        kernel_size: 3,
        stages: vec![StageSpec {
            n: 8,
            m: 8,
            groups: 2,
            blocks: 2,
        }],
        inner_norm: false,
        gate: GateMode::Tgap,
        mux: MuxInputs::Avg,
        pw2: Pw2Kind::Ca,
    };
    spec.validate().unwrap();
    let model = random_model(spec, 7);
    let fast = FastModel::new(&model);
    let blocks: Vec<_> = fast.cflogs().collect();
    assert!(blocks[0].gconv_half.is_none(), "the wide PW1 must use i32");
    assert!(blocks[1].gconv_half.is_some(), "an 8-channel PW1 fits i16");
    let mut rng = SplitMix64::new(3);
    for _ in 0..3 {
        let img = random::pixels(&mut rng, fast.image_len());
        let expected = model.predict(&img).unwrap();
        for v in Variant::available() {
            assert_eq!(
                fast.predict(&img, &mut fast.scratch(), v).unwrap(),
                expected,
                "{v:?}"
            );
        }
    }
}

#[test]
fn every_preset_takes_the_winograd_form_even_with_dense_weights() {
    // The bounds Winograd needs hold for the worst PW1 rows (every weight nonzero), not just
    // for typical ones: a preset never falls back to the direct kernel. With `inner_norm` the
    // CA layer sums codes, and in i16 at every width of the presets.
    for (preset, inner_norm) in mognet_arch::Preset::ALL
        .into_iter()
        .flat_map(|p| [(p, false), (p, true)])
    {
        let spec = NetSpec {
            in_channels: 3,
            num_classes: 100,
            input_size: [32, 32],
            bits: 3,
            stem_width: preset.stem_width(),
            kernel_size: 3,
            stages: preset.stages(),
            inner_norm,
            gate: GateMode::Tgap,
            mux: MuxInputs::Avg,
            pw2: Pw2Kind::Ca,
        };
        let mut model = random_model(spec, 11);
        for c in model.blocks.iter_mut().map(|b| &mut b.cflog) {
            c.pw1.codes.iter_mut().for_each(|w| *w = 1);
            c.gconv.codes.iter_mut().for_each(|w| *w = -1);
        }
        let fast = FastModel::new(&model);
        for b in fast.cflogs() {
            assert!(b.gconv_wino.is_some(), "{}", preset.name());
            assert_eq!(b.ca16, inner_norm, "{}: CA sums in i16", preset.name());
        }
    }
}

#[test]
fn table_kernel_matches_the_addition_kernel_across_block_groups() {
    use super::kernels::{Element, TableConv, table_conv};
    let mut rng = SplitMix64::new(21);
    let mut grouped = 0;
    for case in 0..24 {
        let width = 1 + case % 6;
        // Up to 150 inputs: up to 150 blocks, several groups of tables.
        let inputs = 1 + (rng.next_u64() % 150) as usize;
        let outputs = 1 + (rng.next_u64() % 40) as usize;
        let geom = Geom::new(3 + case % 7, 5 + case % 4, 1);
        let mut input = vec![0i32; geom.buffer_len(inputs.max(outputs))];
        for c in 0..inputs {
            for y in 0..geom.h {
                for x in 0..geom.w {
                    input[geom.at(c, y, x)] = (rng.next_u64() % 400_001) as i32 - 200_000;
                }
            }
        }
        let weights: Vec<i8> = (0..outputs * inputs)
            .map(|_| 2 * (rng.next_u64() % 2) as i8 - 1)
            .collect();
        let t = TableConv::new(&weights, outputs, inputs, width);
        grouped += (t.group() < t.blocks) as usize;
        let mut scratch = vec![0i32; t.scratch_rows() * i32::TCHUNK];
        let mut got = vec![i32::MIN; input.len()];
        table_conv::<i32, false>(&input, &geom, &mut got, &geom, &t, None, &mut scratch);
        let terms = Terms::new(&weights, outputs, inputs, 1, 1, &geom);
        let mut want = vec![i32::MIN; input.len()];
        conv(&input, &mut want, &geom, &terms, Post::Store);
        assert_eq!(
            got, want,
            "case {case}: {inputs} -> {outputs}, width {width}"
        );
        // Requantized, counting and (with AVX-512) searching, at thresholds in the range of
        // the sums.
        let thresholds = Alternating::new(-3_000_000, 900_000);
        let rq = |o: usize| thresholds.rq(o);
        let mut want = vec![i32::MIN; input.len()];
        conv(&input, &mut want, &geom, &terms, Post::Requant(&rq));
        let mut got = vec![i32::MIN; input.len()];
        table_conv::<i32, false>(&input, &geom, &mut got, &geom, &t, Some(&rq), &mut scratch);
        assert_eq!(got, want, "case {case}: requantized");
        // From a borderless copy of the input: the same codes at every pixel, borders untouched.
        let compact = Geom::new(geom.h, geom.w, 0);
        let mut packed = vec![0i32; compact.buffer_len(inputs)];
        for c in 0..inputs {
            for y in 0..geom.h {
                for x in 0..geom.w {
                    packed[compact.at(c, y, x)] = input[geom.at(c, y, x)];
                }
            }
        }
        let mut got = vec![0i32; input.len()];
        table_conv::<i32, false>(
            &packed,
            &compact,
            &mut got,
            &geom,
            &t,
            Some(&rq),
            &mut scratch,
        );
        let borders_zeroed: Vec<i32> = want
            .iter()
            .map(|&v| if v == i32::MIN { 0 } else { v })
            .collect();
        assert_eq!(got, borders_zeroed, "case {case}: from a borderless layout");
        #[cfg(target_arch = "x86_64")]
        if Variant::Avx512.is_available() {
            let mut got = vec![i32::MIN; input.len()];
            // `table_conv::<i32, true>` needs AVX-512 (checked just above).
            table_conv::<i32, true>(&input, &geom, &mut got, &geom, &t, Some(&rq), &mut scratch);
            assert_eq!(got, want, "case {case}: requantized by search");
        }
        // In i16, from a borderless layout, at values as large as `fits_i16` allows (the
        // intermediate `2 * sum(plus)` wraps in i16).
        let max = i16::MAX as i64 / inputs as i64;
        assert!(t.fits_i16(max) && !t.fits_i16(max + 1));
        let mut wide = vec![0i32; geom.buffer_len(inputs.max(outputs))];
        let mut narrow = vec![0i16; compact.buffer_len(inputs)];
        for c in 0..inputs {
            for y in 0..geom.h {
                for x in 0..geom.w {
                    let v = match rng.next_u64() % 3 {
                        0 => max,
                        1 => -max,
                        _ => (rng.next_u64() % (2 * max as u64 + 1)) as i64 - max,
                    };
                    wide[geom.at(c, y, x)] = v as i32;
                    narrow[compact.at(c, y, x)] = v as i16;
                }
            }
        }
        let mut want = vec![0i32; input.len()];
        conv(&wide, &mut want, &geom, &terms, Post::Store);
        let mut scratch16 = vec![0i16; t.scratch_rows() * i16::TCHUNK];
        let mut got = vec![0i32; input.len()];
        table_conv::<i16, false>(&narrow, &compact, &mut got, &geom, &t, None, &mut scratch16);
        let pixels = |v: &[i32]| {
            let mut p = Vec::new();
            for o in 0..outputs {
                for y in 0..geom.h {
                    for x in 0..geom.w {
                        p.push(v[geom.at(o, y, x)]);
                    }
                }
            }
            p
        };
        assert_eq!(pixels(&got), pixels(&want), "case {case}: in i16");
        let thresholds = Alternating::new(-20_000, 6_000);
        let rq = |o: usize| thresholds.rq(o);
        let mut want = vec![0i32; input.len()];
        conv(&wide, &mut want, &geom, &terms, Post::Requant(&rq));
        let mut got = vec![0i32; input.len()];
        let (n, c) = (&narrow, &compact);
        table_conv::<i16, false>(n, c, &mut got, &geom, &t, Some(&rq), &mut scratch16);
        assert_eq!(got, want, "case {case}: in i16, requantized");
        #[cfg(target_arch = "x86_64")]
        if Variant::Avx512.is_available() {
            let mut got = vec![0i32; input.len()];
            // `table_conv::<i16, true>` needs AVX-512 (checked just above).
            table_conv::<i16, true>(n, c, &mut got, &geom, &t, Some(&rq), &mut scratch16);
            assert_eq!(got, want, "case {case}: in i16, requantized by search");
        }
    }
    assert!(
        grouped >= 6,
        "only {grouped} cases work through several groups of tables"
    );
}

/// Seven sorted thresholds `first + step * j` for tests: even channels count up, odd ones
/// down (thresholds reversed), as the engine keeps them.
pub(crate) struct Alternating {
    up: Vec<i32>,
    down: Vec<i32>,
}

impl Alternating {
    pub(crate) fn new(first: i32, step: i32) -> Alternating {
        let up: Vec<i32> = (0..7).map(|j| first + step * j).collect();
        let down = up.iter().rev().copied().collect();
        Alternating { up, down }
    }

    pub(crate) fn rq(&self, o: usize) -> Rq<'_> {
        if o.is_multiple_of(2) {
            Rq::Up(&self.up)
        } else {
            Rq::Down(&self.down)
        }
    }
}

/// A random small network (for other modules' tests).
pub(crate) fn small_model(seed: u64) -> IntModel {
    random_model(spec(seed), seed + 1000)
}
