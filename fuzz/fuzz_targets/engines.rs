//! The fast engine against the scalar reference, bit for bit: the fuzzer's bytes choose a small
//! valid network (every option of the description), its weights, thresholds, gates and head, and
//! an image; every kernel variant this CPU runs must give the reference's logits.
#![no_main]

use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use mognet_infer::fast::{FastModel, Variant};
use mognet_infer::random::{self, Choices};

/// The fuzzer's bytes as choices; zeros once they run out.
struct Bytes<'a>(Unstructured<'a>);

impl Choices for Bytes<'_> {
    fn below(&mut self, n: u64) -> u64 {
        self.0.int_in_range(0..=n - 1).unwrap_or(0)
    }
}

fuzz_target!(|data: &[u8]| {
    let mut r = Bytes(Unstructured::new(data));
    let spec = random::spec(&mut r);
    spec.validate().expect("the generator gives valid networks");
    let Some(model) = random::model(&mut r, spec) else {
        return;
    };
    let image = random::pixels(&mut r, model.image_len());
    let expected = model.predict(&image).expect("an image of the input size");
    let fast = FastModel::new(&model);
    for variant in Variant::available() {
        let got = fast
            .predict(&image, &mut fast.scratch(), variant)
            .expect("an image of the input size");
        assert_eq!(got, expected, "{variant:?} differs from the reference");
    }
});
