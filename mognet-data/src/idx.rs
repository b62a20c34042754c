//! IDX readers (MNIST, Fashion-MNIST), gzipped or raw, with 28x28 images zero-padded to 32x32.

use std::io::Read;
use std::path::Path;

use flate2::read::GzDecoder;

use super::cifar::read_file;
use super::error::DataError;
use super::image_set::ImageSet;

/// Magic of an IDX file of unsigned bytes with 3 dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic of an IDX file of unsigned bytes with 1 dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// Largest image side accepted: anything bigger is not MNIST-like and would be a corrupt header.
const MAX_SIDE: usize = 256;

/// Reads a file, gunzipping it when it starts with the gzip magic.
fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    gunzip_if_gzipped(path, read_file(path)?)
}

/// `bytes` gunzipped when they start with the gzip magic, else as they are; `path` names them
/// in errors.
pub fn gunzip_if_gzipped(path: &Path, bytes: Vec<u8>) -> Result<Vec<u8>, DataError> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .map_err(|e| DataError::IdxShape {
                path: path.to_path_buf(),
                detail: format!("corrupt gzip stream: {e}"),
            })?;
        if out.is_empty() {
            return Err(DataError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(out)
    } else {
        Ok(bytes)
    }
}

/// The header's dimensions after checking the magic; returns `(dims, payload offset)`.
fn header(
    path: &Path,
    bytes: &[u8],
    expected: u32,
    what: &'static str,
) -> Result<(Vec<usize>, usize), DataError> {
    let shape_err = |detail: String| DataError::IdxShape {
        path: path.to_path_buf(),
        detail,
    };
    if bytes.len() < 4 {
        return Err(shape_err(format!(
            "{} bytes is too short for an IDX header",
            bytes.len()
        )));
    }
    let magic = u32::from_be_bytes(bytes[..4].try_into().expect("4 bytes"));
    if magic != expected {
        return Err(DataError::IdxMagic {
            path: path.to_path_buf(),
            magic,
            expected,
            what,
        });
    }
    let ndim = (expected & 0xff) as usize;
    let offset = 4 + 4 * ndim;
    if bytes.len() < offset {
        return Err(shape_err(format!(
            "header needs {offset} bytes, file has {}",
            bytes.len()
        )));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| {
            u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize
        })
        .collect();
    let expected_len = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| shape_err(format!("dimensions {dims:?} overflow")))?;
    let actual = bytes.len() - offset;
    if actual != expected_len {
        return Err(shape_err(format!(
            "dimensions {dims:?} need {expected_len} data bytes, file has {actual} (truncated or corrupt)"
        )));
    }
    Ok((dims, offset))
}

/// Reads IDX images and zero-pads each to `pad_to x pad_to` (centred), one channel.
pub fn read_images(path: &Path, pad_to: usize) -> Result<ImageSet, DataError> {
    parse_images(path, &read_maybe_gz(path)?, pad_to)
}

/// IDX images from the (gunzipped) bytes of a file, zero-padded as by [`read_images`]; `path`
/// names them in errors.
pub fn parse_images(path: &Path, bytes: &[u8], pad_to: usize) -> Result<ImageSet, DataError> {
    let (dims, offset) = header(path, bytes, IMAGES_MAGIC, "image")?;
    let (n, rows, cols) = (dims[0], dims[1], dims[2]);
    if rows == 0
        || cols == 0
        || rows > MAX_SIDE
        || cols > MAX_SIDE
        || rows > pad_to
        || cols > pad_to
    {
        return Err(DataError::IdxShape {
            path: path.to_path_buf(),
            detail: format!("images are {rows}x{cols}; expected at most {pad_to}x{pad_to}"),
        });
    }
    let (top, left) = ((pad_to - rows) / 2, (pad_to - cols) / 2);
    let mut set = ImageSet::empty(1, pad_to, 0);
    set.pixels = vec![0u8; n * pad_to * pad_to];
    for (i, img) in bytes[offset..].chunks_exact(rows * cols).enumerate() {
        let out = &mut set.pixels[i * pad_to * pad_to..(i + 1) * pad_to * pad_to];
        for (y, row) in img.chunks_exact(cols).enumerate() {
            let start = (top + y) * pad_to + left;
            out[start..start + cols].copy_from_slice(row);
        }
    }
    set.labels = vec![0; n];
    Ok(set)
}

/// Reads IDX labels, each checked against `classes`.
pub fn read_labels(path: &Path, classes: usize) -> Result<Vec<u16>, DataError> {
    parse_labels(path, &read_maybe_gz(path)?, classes)
}

/// IDX labels from the (gunzipped) bytes of a file, checked as by [`read_labels`]; `path`
/// names them in errors.
pub fn parse_labels(path: &Path, bytes: &[u8], classes: usize) -> Result<Vec<u16>, DataError> {
    let (_, offset) = header(path, bytes, LABELS_MAGIC, "label")?;
    bytes[offset..]
        .iter()
        .enumerate()
        .map(|(index, &l)| {
            if (l as usize) < classes {
                Ok(l as u16)
            } else {
                Err(DataError::LabelOutOfRange {
                    path: path.to_path_buf(),
                    index,
                    label: l as usize,
                    classes,
                })
            }
        })
        .collect()
}

/// Reads an image file and its label file into one set of 32x32 images.
pub fn read_pair(images: &Path, labels: &Path, classes: usize) -> Result<ImageSet, DataError> {
    let mut set = read_images(images, 32)?;
    let l = read_labels(labels, classes)?;
    if l.len() != set.len() {
        return Err(DataError::CountMismatch {
            images: images.to_path_buf(),
            labels: labels.to_path_buf(),
            n_images: set.len(),
            n_labels: l.len(),
        });
    }
    set.labels = l;
    set.num_classes = classes;
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{fashion_sample, scratch};

    #[test]
    fn fashion_sample_golden_values() {
        let (images, labels) = fashion_sample("train");
        let set = read_pair(&images, &labels, 10).unwrap();
        assert_eq!(set.len(), 6000);
        assert_eq!((set.channels, set.size), (1, 32));
        assert_eq!(&set.labels[..8], &[9, 0, 0, 3, 0, 2, 7, 2]);
        assert_eq!(
            set.class_counts(),
            [560, 643, 608, 612, 584, 594, 590, 617, 590, 602]
        );
        let (images, labels) = fashion_sample("t10k");
        let test = read_pair(&images, &labels, 10).unwrap();
        assert_eq!(test.len(), 1000);
        assert_eq!(
            test.class_counts(),
            [107, 105, 111, 93, 115, 87, 97, 95, 95, 95]
        );
        // Zero padding: a 2-pixel border of zeros around every 28x28 image.
        for i in 0..set.len() {
            let img = set.image(i);
            assert!(img[..64].iter().all(|&p| p == 0));
            assert!(img[30 * 32..].iter().all(|&p| p == 0));
            for y in 0..32 {
                assert_eq!(&img[y * 32..y * 32 + 2], &[0, 0]);
                assert_eq!(&img[y * 32 + 30..y * 32 + 32], &[0, 0]);
            }
        }
        assert!(set.image(0)[2 * 32 + 2..30 * 32].iter().any(|&p| p > 0));
    }

    fn raw_images(n: usize) -> Vec<u8> {
        let mut b = IMAGES_MAGIC.to_be_bytes().to_vec();
        for d in [n as u32, 28, 28] {
            b.extend(d.to_be_bytes());
        }
        b.extend((0..n * 784).map(|i| (i % 251) as u8));
        b
    }

    fn raw_labels(labels: &[u8]) -> Vec<u8> {
        let mut b = LABELS_MAGIC.to_be_bytes().to_vec();
        b.extend((labels.len() as u32).to_be_bytes());
        b.extend(labels);
        b
    }

    #[test]
    fn raw_idx_reads_and_pads() {
        let dir = scratch("idx-raw");
        std::fs::write(dir.join("img"), raw_images(3)).unwrap();
        std::fs::write(dir.join("lab"), raw_labels(&[1, 2, 9])).unwrap();
        let set = read_pair(&dir.join("img"), &dir.join("lab"), 10).unwrap();
        assert_eq!(set.labels, [1, 2, 9]);
        // Pixel (0, 0) of image 1 lands at (2, 2).
        assert_eq!(set.image(1)[2 * 32 + 2], (784 % 251) as u8);
    }

    #[test]
    fn corrupt_idx_files_are_typed_errors_naming_the_file() {
        let dir = scratch("idx-corrupt");
        let write = |name: &str, bytes: Vec<u8>| {
            let p = dir.join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        };
        let good_labels = write("labels", raw_labels(&[1, 2, 3]));
        let mut bad_magic = raw_images(3);
        bad_magic[3] = 0x01;
        let cases = [
            ("bad-magic", bad_magic),
            ("truncated", raw_images(3)[..2000].to_vec()),
            ("one-extra-byte", [raw_images(3), vec![7]].concat()),
            ("empty", vec![]),
            ("tiny", vec![0, 0]),
            ("huge-dims", {
                let mut b = IMAGES_MAGIC.to_be_bytes().to_vec();
                for d in [1u32, 100_000, 100_000] {
                    b.extend(d.to_be_bytes());
                }
                b
            }),
            ("bad-gzip", vec![0x1f, 0x8b, 8, 0, 1, 2, 3]),
        ];
        for (name, bytes) in cases {
            let path = write(name, bytes);
            let err = read_pair(&path, &good_labels, 10).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(name), "{name}: {msg}");
            match name {
                "bad-magic" => assert!(matches!(err, DataError::IdxMagic { .. }), "{msg}"),
                "empty" => assert!(matches!(err, DataError::Empty { .. }), "{msg}"),
                _ => assert!(matches!(err, DataError::IdxShape { .. }), "{msg}"),
            }
        }
        // Count mismatch and out-of-range labels.
        let images = write("images", raw_images(2));
        let err = read_pair(&images, &good_labels, 10).unwrap_err();
        assert!(matches!(
            err,
            DataError::CountMismatch {
                n_images: 2,
                n_labels: 3,
                ..
            }
        ));
        let images = write("images3", raw_images(3));
        let bad_labels = write("labels-bad", raw_labels(&[1, 10, 3]));
        let err = read_pair(&images, &bad_labels, 10).unwrap_err();
        assert!(matches!(
            err,
            DataError::LabelOutOfRange {
                index: 1,
                label: 10,
                ..
            }
        ));
        assert!(err.to_string().contains("labels-bad"));
    }
}
