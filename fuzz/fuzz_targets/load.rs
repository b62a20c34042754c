//! The `.mognet` loader on arbitrary bytes: it must return a model or a typed error, never
//! panic, hang or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mognet_infer::IntModel;

fuzz_target!(|data: &[u8]| {
    // As is: mostly rejected by the magic, version or checksum checks.
    let _ = IntModel::from_bytes(data);
    // With the checksum fixed up, so the fuzzer reaches every field behind it.
    let mut fixed = data.to_vec();
    fixed.extend(crc32fast::hash(data).to_le_bytes());
    if let Ok((model, _)) = IntModel::from_bytes(&fixed) {
        // A model that loads must also run on an image of its input size.
        let pixels = vec![128u8; model.image_len()];
        if pixels.len() <= 1 << 16 {
            let _ = model.predict(&pixels);
        }
    }
});
