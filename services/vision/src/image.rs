//! Decoding untrusted JPEG. A frame's bytes come off the bus: the dimensions are read from the JPEG
//! header before decoding, absurd sizes are refused, and very large images are decoded at a reduced
//! scale (libjpeg's DCT scaling, far cheaper than decoding in full and resizing).

use opencv::core::{Mat, Vector};
use opencv::imgcodecs;
use opencv::prelude::*;

/// Refuse anything over this many pixels (a 100 MP JPEG would need 300 MB decoded).
pub const MAX_PIXELS: u64 = 100_000_000;
/// Smallest image worth running a detector on.
pub const MIN_SIDE: u32 = 32;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ImageError {
    #[error("not a JPEG image")]
    NotJpeg,
    #[error("JPEG is corrupt: {0}")]
    Corrupt(&'static str),
    #[error("image {width}x{height} is too small to hold a face")]
    TooSmall { width: u32, height: u32 },
    #[error("image {width}x{height} exceeds the {MAX_PIXELS}-pixel limit")]
    TooLarge { width: u32, height: u32 },
}

impl ImageError {
    pub fn reason(&self) -> &'static str {
        match self {
            ImageError::NotJpeg | ImageError::Corrupt(_) => "undecodable",
            ImageError::TooSmall { .. } => "too_small",
            ImageError::TooLarge { .. } => "too_large",
        }
    }
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
    if width as u64 * height as u64 > MAX_PIXELS {
        return Err(ImageError::TooLarge { width, height });
    }
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
    }
}
