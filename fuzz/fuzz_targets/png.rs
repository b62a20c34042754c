//! The picture reader of `mognet-infer classify` on arbitrary bytes: a decoded PNG fitted to a
//! model's input, or a typed error; never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mognet_data::Picture;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.png");
    let Ok(picture) = Picture::decode_png(path, data) else {
        return;
    };
    assert_eq!(
        picture.planes.len(),
        picture.channels * picture.height * picture.width
    );
    for (channels, size) in [(1, [32, 32]), (3, [32, 32]), (1, [28, 28])] {
        if let Ok(pixels) = picture.clone().fit(path, channels, size, true) {
            assert_eq!(pixels.len(), channels * size[0] * size[1]);
        }
    }
});
