//! Frame preparation: optional resize, then JPEG. JPEG keeps a 640x480 frame near 50 KB on the bus
//! instead of 900 KB of raw pixels; the detector decodes it once.

use opencv::core::{Mat, Size, Vector};
use opencv::prelude::*;
use opencv::{imgcodecs, imgproc};

/// An encoded frame ready for the bus.
pub struct Encoded {
    pub jpeg: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

pub fn encode(image: &Mat, resize: Option<[u32; 2]>, quality: u8) -> opencv::Result<Encoded> {
    let resized;
    let image = match resize {
        Some([w, h]) if image.cols() != w as i32 || image.rows() != h as i32 => {
            let mut out = Mat::default();
            imgproc::resize(
                image,
                &mut out,
                Size::new(w as i32, h as i32),
                0.0,
                0.0,
                imgproc::INTER_AREA,
            )?;
            resized = out;
            &resized
        }
        _ => image,
    };
    let mut jpeg = Vector::<u8>::new();
    let params = Vector::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, quality as i32]);
    imgcodecs::imencode(".jpg", image, &mut jpeg, &params)?;
    Ok(Encoded {
        jpeg: jpeg.to_vec(),
        width: image.cols() as u32,
        height: image.rows() as u32,
    })
}
