//! CIFAR-10 and CIFAR-100 binary readers.
//!
//! CIFAR-10 records are `<label><1024 R><1024 G><1024 B>` (3073 bytes); CIFAR-100 records are
//! `<coarse><fine><3072 pixels>` (3074 bytes).

use std::path::Path;

use super::error::DataError;
use super::image_set::ImageSet;

/// Bytes of pixels per CIFAR image.
pub const CIFAR_PIXELS: usize = 3 * 32 * 32;

/// Which CIFAR-100 label to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Cifar100Label {
    /// The 100 fine classes.
    Fine,
    /// The 20 coarse superclasses.
    Coarse,
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if bytes.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

/// Splits `bytes` into records of `label_bytes + 3072` bytes, taking the label at
/// `label_offset` and checking it against `classes`.
fn parse_records(
    path: &Path,
    bytes: &[u8],
    label_bytes: usize,
    label_offset: usize,
    classes: usize,
) -> Result<ImageSet, DataError> {
    let record = label_bytes + CIFAR_PIXELS;
    if !bytes.len().is_multiple_of(record) {
        return Err(DataError::RecordSize {
            path: path.to_path_buf(),
            len: bytes.len(),
            record,
        });
    }
    let n = bytes.len() / record;
    let mut set = ImageSet::empty(3, 32, classes);
    set.pixels.reserve(n * CIFAR_PIXELS);
    set.labels.reserve(n);
    for (index, rec) in bytes.chunks_exact(record).enumerate() {
        let label = rec[label_offset] as usize;
        if label >= classes {
            return Err(DataError::LabelOutOfRange {
                path: path.to_path_buf(),
                index,
                label,
                classes,
            });
        }
        set.labels.push(label as u16);
        set.pixels.extend_from_slice(&rec[label_bytes..]);
    }
    Ok(set)
}

/// Reads one CIFAR-10 binary file (`data_batch_N.bin` or `test_batch.bin`).
pub fn read_cifar10(path: &Path) -> Result<ImageSet, DataError> {
    parse_cifar10(path, &read_file(path)?)
}

/// CIFAR-10 records from the bytes of a file; `path` names them in errors.
pub fn parse_cifar10(path: &Path, bytes: &[u8]) -> Result<ImageSet, DataError> {
    parse_records(path, bytes, 1, 0, 10)
}

/// Reads one CIFAR-100 binary file (`train.bin` or `test.bin`) with the fine or coarse label.
pub fn read_cifar100(path: &Path, label: Cifar100Label) -> Result<ImageSet, DataError> {
    parse_cifar100(path, &read_file(path)?, label)
}

/// CIFAR-100 records from the bytes of a file, with the fine or coarse label; `path` names
/// them in errors.
pub fn parse_cifar100(
    path: &Path,
    bytes: &[u8],
    label: Cifar100Label,
) -> Result<ImageSet, DataError> {
    let set = match label {
        Cifar100Label::Coarse => parse_records(path, bytes, 2, 0, 20)?,
        Cifar100Label::Fine => parse_records(path, bytes, 2, 1, 100)?,
    };
    // The other label must be in range too, or the file is not CIFAR-100.
    let (other, classes) = match label {
        Cifar100Label::Coarse => (1, 100),
        Cifar100Label::Fine => (0, 20),
    };
    for (index, rec) in bytes.chunks_exact(2 + CIFAR_PIXELS).enumerate() {
        if rec[other] as usize >= classes {
            return Err(DataError::LabelOutOfRange {
                path: path.to_path_buf(),
                index,
                label: rec[other] as usize,
                classes,
            });
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{sample, scratch};

    #[test]
    fn cifar10_sample_golden_values() {
        let set = read_cifar10(&sample("cifar10-test-first20.bin")).unwrap();
        assert_eq!(set.len(), 20);
        let labels: Vec<u16> = set.labels.clone();
        assert_eq!(
            labels,
            [3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6]
        );
        assert_eq!(&set.image(0)[..7], &[158, 159, 165, 166, 160, 156, 162]);
        assert_eq!((set.channels, set.size, set.num_classes), (3, 32, 10));
    }

    #[test]
    fn cifar100_sample_fine_and_coarse_labels() {
        // Fine labels from the foolbox file names, coarse from the standard fine->coarse table.
        let fine =
            read_cifar100(&sample("cifar100-test-first20.bin"), Cifar100Label::Fine).unwrap();
        assert_eq!(
            fine.labels,
            [
                49, 33, 72, 51, 71, 92, 15, 14, 23, 0, 71, 75, 81, 69, 40, 43, 92, 97, 70, 53
            ]
        );
        let coarse =
            read_cifar100(&sample("cifar100-test-first20.bin"), Cifar100Label::Coarse).unwrap();
        assert_eq!(
            coarse.labels,
            [
                10, 10, 0, 4, 10, 2, 11, 7, 10, 4, 10, 12, 19, 19, 5, 8, 2, 8, 2, 4
            ]
        );
        assert_eq!(fine.pixels, coarse.pixels);
        assert_eq!(fine.num_classes, 100);
        assert_eq!(coarse.num_classes, 20);
    }

    #[test]
    fn corrupt_cifar_files_are_typed_errors_naming_the_file() {
        let good = std::fs::read(sample("cifar10-test-first20.bin")).unwrap();
        let dir = scratch("cifar-corrupt");
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("truncated.bin", good[..good.len() - 100].to_vec()),
            ("extra.bin", [good.clone(), vec![0]].concat()),
            ("empty.bin", vec![]),
            ("label10.bin", {
                let mut b = good.clone();
                b[3073 * 4] = 10;
                b
            }),
        ];
        for (name, bytes) in cases {
            let path = dir.join(name);
            std::fs::write(&path, bytes).unwrap();
            let err = read_cifar10(&path).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(name), "{msg}");
            match name {
                "truncated.bin" | "extra.bin" => {
                    assert!(
                        matches!(err, DataError::RecordSize { record: 3073, .. }),
                        "{msg}"
                    )
                }
                "empty.bin" => assert!(matches!(err, DataError::Empty { .. }), "{msg}"),
                _ => assert!(
                    matches!(
                        err,
                        DataError::LabelOutOfRange {
                            index: 4,
                            label: 10,
                            ..
                        }
                    ),
                    "{msg}"
                ),
            }
        }
        let err = read_cifar10(&dir.join("absent.bin")).unwrap_err();
        assert!(matches!(err, DataError::Missing { .. }));
        assert!(err.to_string().contains("absent.bin"));
    }
}
