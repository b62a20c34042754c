//! The `.mognet` loader on arbitrary bytes: it must return a model or a typed error, never
//! panic, hang or allocate without bound; a model that loads must run and re-encode to a file
//! that loads to the same model.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mognet_infer::IntModel;

fuzz_target!(|data: &[u8]| {
    // One input in eight as it is, so the checksum check stays covered; the others with the
    // trailing CRC-32 recomputed, so mutations reach every field behind it.
    let file = if data.len() < 4 || data.first().is_some_and(|b| b % 8 == 0) {
        data.to_vec()
    } else {
        let body = &data[..data.len() - 4];
        let mut fixed = body.to_vec();
        fixed.extend(crc32fast::hash(body).to_le_bytes());
        fixed
    };
    let Ok((model, info)) = IntModel::from_bytes(&file) else {
        return;
    };
    // Small files only: running a full-size network on every mutant of the shipped model would
    // take most of the time and find nothing the engines target does not.
    if file.len() <= 2048 && model.image_len() <= 1 << 12 {
        model
            .predict(&vec![128u8; model.image_len()])
            .expect("a model that loads runs on an image of its input size");
    }
    let again = model
        .to_bytes(info.packing)
        .expect("a loaded model is written");
    let (reloaded, _) = IntModel::from_bytes(&again).expect("a written model loads");
    assert_eq!(reloaded, model, "a model changed through the file");
});
