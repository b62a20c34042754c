//! The CIFAR-10 and CIFAR-100 binary readers on arbitrary bytes: images with labels in range,
//! or a typed error; never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mognet_data::Cifar100Label;
use mognet_data::cifar::{parse_cifar10, parse_cifar100};

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.bin");
    if let Ok(set) = parse_cifar10(path, data) {
        assert!(set.labels.iter().all(|&l| l < 10));
        assert_eq!(set.pixels.len(), set.len() * 3 * 32 * 32);
    }
    for (label, classes) in [(Cifar100Label::Fine, 100), (Cifar100Label::Coarse, 20)] {
        if let Ok(set) = parse_cifar100(path, data, label) {
            assert!(set.labels.iter().all(|&l| l < classes));
        }
    }
});
