//! Decoding untrusted images. A frame's bytes come off the bus and a watch list's images from an
//! upload: the dimensions are read from the JPEG or PNG header before decoding, absurd sizes are
//! refused (a few bytes can claim 30000x30000 pixels, 2.7 GB decoded), and very large frames are
//! decoded at a reduced scale (libjpeg's DCT scaling, far cheaper than decoding in full and
//! resizing).

use opencv::core::{Mat, Vector};
use opencv::imgcodecs;
use opencv::prelude::*;

/// Refuse anything over this many pixels (a 100 MP JPEG would need 300 MB decoded).
pub const MAX_PIXELS: u64 = 100_000_000;
/// Smallest image worth running a detector on.
pub const MIN_SIDE: u32 = 32;

/// The formats whose dimensions are read from their header before they are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ImageError {
    #[error("not a JPEG image")]
    NotJpeg,
    #[error("neither a JPEG nor a PNG image")]
    Unsupported,
    #[error("image is corrupt: {0}")]
    Corrupt(&'static str),
    #[error("image {width}x{height} is too small to hold a face")]
    TooSmall { width: u32, height: u32 },
    #[error("image {width}x{height} exceeds the {max_pixels}-pixel limit")]
    TooLarge {
        width: u32,
        height: u32,
        max_pixels: u64,
    },
}

impl ImageError {
    pub fn reason(&self) -> &'static str {
        match self {
            ImageError::NotJpeg | ImageError::Unsupported | ImageError::Corrupt(_) => "undecodable",
            ImageError::TooSmall { .. } => "too_small",
            ImageError::TooLarge { .. } => "too_large",
        }
    }
}

/// The format, width and height of a JPEG or PNG, from its header alone: nothing is decoded.
pub fn dimensions(bytes: &[u8]) -> Result<(Format, u32, u32), ImageError> {
    if bytes.starts_with(PNG_SIGNATURE) {
        let (width, height) = png_dimensions(bytes)?;
        Ok((Format::Png, width, height))
    } else if bytes.starts_with(&[0xFF, 0xD8]) {
        let (width, height) = jpeg_dimensions(bytes)?;
        Ok((Format::Jpeg, width, height))
    } else {
        Err(ImageError::Unsupported)
    }
}

/// [`dimensions`], refusing an image of more than `max_pixels` pixels: call it on untrusted bytes
/// before handing them to any decoder.
pub fn check_size(bytes: &[u8], max_pixels: u64) -> Result<(Format, u32, u32), ImageError> {
    let (format, width, height) = dimensions(bytes)?;
    refuse_over(width, height, max_pixels)?;
    Ok((format, width, height))
}

fn refuse_over(width: u32, height: u32, max_pixels: u64) -> Result<(), ImageError> {
    if width as u64 * height as u64 > max_pixels {
        return Err(ImageError::TooLarge {
            width,
            height,
            max_pixels,
        });
    }
    Ok(())
}

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Width and height from a PNG's header chunk (IHDR, which must come first).
pub fn png_dimensions(bytes: &[u8]) -> Result<(u32, u32), ImageError> {
    if !bytes.starts_with(PNG_SIGNATURE) {
        return Err(ImageError::Unsupported);
    }
    // Signature (8), then the IHDR chunk: length (4, always 13), type (4), width (4), height (4).
    let header = bytes
        .get(8..24)
        .ok_or(ImageError::Corrupt("truncated PNG header"))?;
    if &header[4..8] != b"IHDR" {
        return Err(ImageError::Corrupt(
            "PNG does not start with its header chunk",
        ));
    }
    let width = u32::from_be_bytes(header[8..12].try_into().expect("4 bytes"));
    let height = u32::from_be_bytes(header[12..16].try_into().expect("4 bytes"));
    if width == 0 || height == 0 {
        return Err(ImageError::Corrupt("PNG of zero width or height"));
    }
    Ok((width, height))
}

/// Width and height from the JPEG's start-of-frame header.
pub fn jpeg_dimensions(bytes: &[u8]) -> Result<(u32, u32), ImageError> {
    if bytes.len() < 4 || bytes[0] != 0xFF || bytes[1] != 0xD8 {
        return Err(ImageError::NotJpeg);
    }
    let mut i = 2;
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return Err(ImageError::Corrupt("marker expected"));
        }
        let marker = bytes[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        if marker == 0xD8 || (0xD0..=0xD7).contains(&marker) || marker == 0x01 {
            i += 2;
            continue;
        }
        let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
        if len < 2 {
            return Err(ImageError::Corrupt("bad segment length"));
        }
        let is_sof = (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker);
        if is_sof {
            if i + 9 > bytes.len() {
                break;
            }
            let height = u16::from_be_bytes([bytes[i + 5], bytes[i + 6]]) as u32;
            let width = u16::from_be_bytes([bytes[i + 7], bytes[i + 8]]) as u32;
            return Ok((width, height));
        }
        if marker == 0xDA || marker == 0xD9 {
            break;
        }
        i += 2 + len;
    }
    Err(ImageError::Corrupt("no frame header"))
}

/// Decode a JPEG to BGR, at 1/2, 1/4 or 1/8 scale when that still leaves `want_side` pixels on the
/// longer side. Returns the image and the factor to multiply its coordinates by to get the
/// original's.
pub fn decode_jpeg(bytes: &[u8], want_side: u32) -> Result<(Mat, f32), ImageError> {
    let (width, height) = jpeg_dimensions(bytes)?;
    if width < MIN_SIDE || height < MIN_SIDE {
        return Err(ImageError::TooSmall { width, height });
    }
    refuse_over(width, height, MAX_PIXELS)?;
    let long = width.max(height);
    // The largest reduction that still leaves the detector `want_side` pixels.
    let (flag, _) = [
        (imgcodecs::IMREAD_REDUCED_COLOR_8, 8),
        (imgcodecs::IMREAD_REDUCED_COLOR_4, 4),
        (imgcodecs::IMREAD_REDUCED_COLOR_2, 2),
    ]
    .into_iter()
    .find(|(_, f)| long / f >= want_side.max(1))
    .unwrap_or((imgcodecs::IMREAD_COLOR, 1));
    let mat = imgcodecs::imdecode(&Vector::from_slice(bytes), flag)
        .map_err(|_| ImageError::Corrupt("decoder error"))?;
    if mat.empty() {
        return Err(ImageError::Corrupt("decoder produced no image"));
    }
    // Measured rather than assumed: libjpeg rounds reduced sizes up.
    let scale = width as f32 / mat.cols().max(1) as f32;
    Ok((mat, scale))
}

/// Encode BGR as JPEG.
pub fn encode_jpeg(bgr: &Mat, quality: i32) -> opencv::Result<Vec<u8>> {
    let mut out = Vector::<u8>::new();
    imgcodecs::imencode(
        ".jpg",
        bgr,
        &mut out,
        &Vector::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, quality]),
    )?;
    Ok(out.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_truncation_are_errors_not_panics() {
        assert_eq!(jpeg_dimensions(b""), Err(ImageError::NotJpeg));
        assert_eq!(jpeg_dimensions(b"GIF89a...."), Err(ImageError::NotJpeg));
        assert!(jpeg_dimensions(&[0xFF, 0xD8, 0xFF, 0xE0, 0x00]).is_err());
        assert!(jpeg_dimensions(&[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x00, 1, 2]).is_err());
        assert_eq!(dimensions(b"GIF89a...."), Err(ImageError::Unsupported));
        assert_eq!(dimensions(b""), Err(ImageError::Unsupported));
        assert!(png_dimensions(PNG_SIGNATURE).is_err());
        assert!(png_dimensions(&[PNG_SIGNATURE, &[0; 16]].concat()).is_err());
    }

    /// A PNG signature and header chunk claiming `width` x `height`, and nothing else.
    fn png_header(width: u32, height: u32) -> Vec<u8> {
        let mut png = PNG_SIGNATURE.to_vec();
        png.extend_from_slice(&13u32.to_be_bytes());
        png.extend_from_slice(b"IHDR");
        png.extend_from_slice(&width.to_be_bytes());
        png.extend_from_slice(&height.to_be_bytes());
        png.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
        png
    }

    #[test]
    fn sizes_come_from_the_header_and_oversized_images_are_refused() {
        let real = encode_jpeg(
            &Mat::new_rows_cols_with_default(
                48,
                64,
                opencv::core::CV_8UC3,
                opencv::core::Scalar::all(90.0),
            )
            .unwrap(),
            80,
        )
        .unwrap();
        assert_eq!(dimensions(&real), Ok((Format::Jpeg, 64, 48)));
        assert_eq!(
            dimensions(&png_header(640, 480)),
            Ok((Format::Png, 640, 480))
        );
        assert_eq!(check_size(&real, 64 * 48), Ok((Format::Jpeg, 64, 48)));
        assert_eq!(
            check_size(&png_header(30_000, 30_000), MAX_PIXELS),
            Err(ImageError::TooLarge {
                width: 30_000,
                height: 30_000,
                max_pixels: MAX_PIXELS
            })
        );
        assert_eq!(
            check_size(&real, 64 * 48 - 1).unwrap_err().to_string(),
            "image 64x48 exceeds the 3071-pixel limit"
        );
    }
}
