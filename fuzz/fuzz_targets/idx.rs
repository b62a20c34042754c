//! The IDX readers (MNIST, Fashion-MNIST) on arbitrary bytes, gzipped or not: images or labels,
//! or a typed error; never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mognet_data::idx::{gunzip_if_gzipped, parse_images, parse_labels};

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.idx");
    let Ok(bytes) = gunzip_if_gzipped(path, data.to_vec()) else {
        return;
    };
    if let Ok(set) = parse_images(path, &bytes, 32) {
        assert_eq!(set.pixels.len(), set.len() * 32 * 32);
    }
    if let Ok(labels) = parse_labels(path, &bytes, 10) {
        assert!(labels.iter().all(|&l| l < 10));
    }
});
