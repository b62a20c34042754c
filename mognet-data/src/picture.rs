//! Single pictures from PNG files, fitted to a model's input size and channels: what
//! `mognet-infer classify` reads.

use std::path::Path;

use super::cifar::read_file;
use super::error::DataError;

/// Largest decoded picture accepted, in bytes: bigger is not a picture to classify and would
/// only exhaust memory.
const MAX_DECODED: usize = 64 << 20;

/// A decoded picture as `[c][y][x]` u8 planes, 1 (grey) or 3 (RGB) channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picture {
    /// 1 or 3.
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `channels * height * width` values, channel-major.
    pub planes: Vec<u8>,
}

impl Picture {
    /// Reads and decodes a PNG file.
    pub fn read_png(path: &Path) -> Result<Self, DataError> {
        Self::decode_png(path, &read_file(path)?)
    }

    /// Decodes the bytes of a PNG file (grey or RGB, with or without alpha, any bit depth;
    /// alpha is dropped); `path` names them in errors.
    pub fn decode_png(path: &Path, bytes: &[u8]) -> Result<Self, DataError> {
        let err = |detail: String| DataError::Png {
            path: path.to_path_buf(),
            detail,
        };
        check_palettes(bytes).map_err(err)?;
        let mut decoder = png::Decoder::new_with_limits(
            std::io::Cursor::new(bytes),
            png::Limits { bytes: MAX_DECODED },
        );
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = decoder
            .read_info()
            .map_err(|e| err(format!("not a readable PNG: {e}")))?;
        let size = reader
            .output_buffer_size()
            .filter(|&n| n <= MAX_DECODED)
            .ok_or_else(|| err(format!("larger than {MAX_DECODED} bytes decoded")))?;
        let mut buf = vec![0; size];
        let frame = reader
            .next_frame(&mut buf)
            .map_err(|e| err(format!("corrupt PNG data: {e}")))?;
        let (width, height) = (frame.width as usize, frame.height as usize);
        let (channels, take): (usize, &[usize]) = match frame.color_type {
            png::ColorType::Grayscale | png::ColorType::GrayscaleAlpha => (1, &[0]),
            png::ColorType::Rgb | png::ColorType::Rgba => (3, &[0, 1, 2]),
            other => return Err(err(format!("unsupported colour type {other:?}"))),
        };
        let stride = frame.color_type.samples();
        let plane = height * width;
        let mut planes = vec![0u8; channels * plane];
        for (i, px) in buf[..plane * stride].chunks_exact(stride).enumerate() {
            for (c, &s) in take.iter().enumerate() {
                planes[c * plane + i] = px[s];
            }
        }
        Ok(Self {
            channels,
            height,
            width,
            planes,
        })
    }

    /// The pixels a model of `channels` channels and `[height, width]` input takes: RGB turned
    /// grey (ITU-R BT.601 luma, in integers) or grey repeated to RGB; a 28x28 picture padded to
    /// 32x32 as the IDX readers do; other sizes resized by nearest neighbour only when `resize`
    /// is set. `path` names the picture in errors.
    pub fn fit(
        self,
        path: &Path,
        channels: usize,
        [height, width]: [usize; 2],
        resize: bool,
    ) -> Result<Vec<u8>, DataError> {
        let err = |detail: String| DataError::PictureShape {
            path: path.to_path_buf(),
            detail,
        };
        let planes = self.with_channels(channels).map_err(err)?;
        let (h, w) = (self.height, self.width);
        if (h, w) == (height, width) {
            return Ok(planes);
        }
        if channels == 1 && (h, w) == (28, 28) && (height, width) == (32, 32) {
            let mut out = vec![0u8; 32 * 32];
            for y in 0..28 {
                out[(y + 2) * 32 + 2..(y + 2) * 32 + 30]
                    .copy_from_slice(&planes[y * 28..(y + 1) * 28]);
            }
            return Ok(out);
        }
        if !resize || h == 0 || w == 0 {
            return Err(err(format!(
                "{w}x{h} pixels, the model takes {width}x{height} (pass --resize to resize)"
            )));
        }
        let mut out = vec![0u8; channels * height * width];
        for c in 0..channels {
            for y in 0..height {
                for x in 0..width {
                    out[(c * height + y) * width + x] =
                        planes[(c * h + y * h / height) * w + x * w / width];
                }
            }
        }
        Ok(out)
    }

    /// The planes converted to `channels` channels.
    fn with_channels(&self, channels: usize) -> Result<Vec<u8>, String> {
        let plane = self.height * self.width;
        match (self.channels, channels) {
            (a, b) if a == b => Ok(self.planes.clone()),
            (3, 1) => Ok((0..plane)
                .map(|i| {
                    let [r, g, b] = [0, 1, 2].map(|c| self.planes[c * plane + i] as u32);
                    ((299 * r + 587 * g + 114 * b + 500) / 1000) as u8
                })
                .collect()),
            (1, 3) => Ok(self.planes.repeat(3)),
            (a, b) => Err(format!("{a} channels, the model takes {b}")),
        }
    }
}

/// Refuses a palette (`PLTE` chunk) that is not 1 to 256 whole RGB entries: png 0.18.1 panics
/// while expanding one whose length is not a multiple of 3 (found by fuzzing). The chunks are
/// walked in order, as the decoder reads them; anything else wrong is left to the decoder.
fn check_palettes(bytes: &[u8]) -> Result<(), String> {
    let mut at = 8;
    while let Some(header) = bytes.get(at..at + 8) {
        let len = u32::from_be_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let kind = &header[4..8];
        if kind == b"PLTE" && (len == 0 || len > 3 * 256 || !len.is_multiple_of(3)) {
            return Err(format!(
                "corrupt PNG: a palette of {len} bytes is not 1 to 256 RGB entries"
            ));
        }
        if kind == b"IEND" {
            break;
        }
        at = match at.checked_add(12).and_then(|a| a.checked_add(len)) {
            Some(next) => next,
            None => break,
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(width: u32, height: u32, color: png::ColorType, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(color);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(data).unwrap();
        writer.finish().unwrap();
        out
    }

    #[test]
    fn rgba_decodes_to_rgb_planes_and_fits_grey() {
        let path = Path::new("p.png");
        let bytes = encode(
            2,
            1,
            png::ColorType::Rgba,
            &[10, 20, 30, 255, 200, 100, 0, 7],
        );
        let p = Picture::decode_png(path, &bytes).unwrap();
        assert_eq!((p.channels, p.height, p.width), (3, 1, 2));
        assert_eq!(p.planes, vec![10, 200, 20, 100, 30, 0]);
        // 0.299 * 10 + 0.587 * 20 + 0.114 * 30 = 18.15; 0.299 * 200 + 0.587 * 100 = 118.5.
        let grey = p.clone().fit(path, 1, [1, 2], false).unwrap();
        assert_eq!(grey, vec![18, 119]);
        let twice = p.fit(path, 3, [2, 4], true).unwrap();
        assert_eq!(&twice[..8], &[10, 10, 200, 200, 10, 10, 200, 200]);
    }

    #[test]
    fn a_28_pixel_digit_is_padded_and_other_sizes_need_resize() {
        let path = Path::new("d.png");
        let digit =
            Picture::decode_png(path, &encode(28, 28, png::ColorType::Grayscale, &[9; 784]))
                .unwrap();
        let padded = digit.clone().fit(path, 1, [32, 32], false).unwrap();
        assert_eq!(padded.iter().filter(|&&v| v == 9).count(), 784);
        assert_eq!(padded[0], 0);
        assert_eq!(padded[2 * 32 + 2], 9);
        let err = digit.fit(path, 1, [16, 16], false).unwrap_err().to_string();
        assert!(err.contains("d.png") && err.contains("--resize"), "{err}");
    }

    #[test]
    fn a_palette_of_partial_entries_is_an_error_not_a_decoder_panic() {
        // What the fuzzer found, cut down: a 2-bit indexed 4x2 picture whose palette has 13
        // bytes (png 0.18.1 panics expanding it).
        let rows = [vec![0u8, 0x1b], vec![0u8, 0x1b]].concat();
        let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut chunk = |kind: &[u8], data: &[u8]| {
            bytes.extend((data.len() as u32).to_be_bytes());
            let body = [kind, data].concat();
            bytes.extend(&body);
            bytes.extend(crc32(&body).to_be_bytes());
        };
        chunk(b"IHDR", &[0, 0, 0, 4, 0, 0, 0, 2, 2, 3, 0, 0, 0]);
        chunk(b"PLTE", &[7; 13]);
        chunk(b"IDAT", &zlib_stored(&rows));
        chunk(b"IEND", &[]);
        let err = Picture::decode_png(Path::new("p.png"), &bytes)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("p.png") && err.contains("palette of 13 bytes"),
            "{err}"
        );
    }

    /// CRC-32 (IEEE), for hand-made chunks.
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// A zlib stream holding `data` in one stored (uncompressed) block.
    fn zlib_stored(data: &[u8]) -> Vec<u8> {
        let (mut a, mut b) = (1u32, 0u32);
        for &x in data {
            a = (a + x as u32) % 65521;
            b = (b + a) % 65521;
        }
        let len = data.len() as u16;
        let mut out = vec![0x78, 0x01, 1];
        out.extend(len.to_le_bytes());
        out.extend((!len).to_le_bytes());
        out.extend(data);
        out.extend(((b << 16) | a).to_be_bytes());
        out
    }

    #[test]
    fn corrupt_bytes_are_an_error_naming_the_file() {
        let path = Path::new("bad.png");
        let mut bytes = encode(4, 4, png::ColorType::Grayscale, &[1; 16]);
        for cut in [0, 8, 20, bytes.len() - 13] {
            let err = Picture::decode_png(path, &bytes[..cut])
                .unwrap_err()
                .to_string();
            assert!(err.contains("bad.png"), "{cut}: {err}");
        }
        let n = bytes.len();
        bytes[n - 20] ^= 0xff;
        let err = Picture::decode_png(path, &bytes).unwrap_err().to_string();
        assert!(err.contains("bad.png"), "{err}");
    }
}
