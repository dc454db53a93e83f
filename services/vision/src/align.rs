//! Alignment: the least-squares similarity transform (rotation, uniform scale, translation; Umeyama
//! without reflection) that moves the detector's 5 landmarks onto the embedder's template, then a
//! bilinear warp to the chip size. Embedders are trained on chips aligned this way; misalignment
//! costs more accuracy than almost anything else.

use opencv::core::{Mat, Scalar, Size, BORDER_CONSTANT};
use opencv::imgproc;

/// 2x3 affine matrix `[[a, -b, tx], [b, a, ty]]` mapping `src` points onto `dst` points.
pub fn similarity(src: &[[f32; 2]; 5], dst: &[[f32; 2]; 5]) -> [[f64; 3]; 2] {
    let n = src.len() as f64;
    let mean = |p: &[[f32; 2]; 5]| {
        let (sx, sy) = p
            .iter()
            .fold((0.0, 0.0), |(x, y), q| (x + q[0] as f64, y + q[1] as f64));
        (sx / n, sy / n)
    };
    let (msx, msy) = mean(src);
    let (mdx, mdy) = mean(dst);
    let (mut num_a, mut num_b, mut den) = (0.0, 0.0, 0.0);
    for (s, d) in src.iter().zip(dst) {
        let (sx, sy) = (s[0] as f64 - msx, s[1] as f64 - msy);
        let (dx, dy) = (d[0] as f64 - mdx, d[1] as f64 - mdy);
        num_a += sx * dx + sy * dy;
        num_b += sx * dy - sy * dx;
        den += sx * sx + sy * sy;
    }
    let den = den.max(1e-12);
    let (a, b) = (num_a / den, num_b / den);
    let tx = mdx - (a * msx - b * msy);
    let ty = mdy - (b * msx + a * msy);
    [[a, -b, tx], [b, a, ty]]
}

/// Warp `image` so `landmarks` land on `template`, producing a `size[0]` x `size[1]` chip in the
/// same colour order as `image`. Outside the image is black.
pub fn align(
    image: &Mat,
    landmarks: &[[f32; 2]; 5],
    template: &[[f32; 2]; 5],
    size: [u32; 2],
) -> opencv::Result<Mat> {
    let m = similarity(landmarks, template);
    let matrix = Mat::from_slice_2d(&m)?;
    let mut chip = Mat::default();
    imgproc::warp_affine(
        image,
        &mut chip,
        &matrix,
        Size::new(size[0] as i32, size[1] as i32),
        imgproc::INTER_LINEAR,
        BORDER_CONSTANT,
        Scalar::all(0.0),
    )?;
    Ok(chip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_known_similarity() {
        let dst = [
            [38.3, 51.7],
            [73.5, 51.5],
            [56.0, 71.7],
            [41.5, 92.4],
            [70.7, 92.2],
        ];
        // src = dst rotated by 30 degrees, scaled by 2, shifted: the fit must undo it exactly.
        let (c, s) = (30f32.to_radians().cos(), 30f32.to_radians().sin());
        let src = dst.map(|[x, y]| [2.0 * (c * x - s * y) + 100.0, 2.0 * (s * x + c * y) - 40.0]);
        let m = similarity(&src, &dst);
        for (p, q) in src.iter().zip(&dst) {
            let x = m[0][0] * p[0] as f64 + m[0][1] * p[1] as f64 + m[0][2];
            let y = m[1][0] * p[0] as f64 + m[1][1] * p[1] as f64 + m[1][2];
            assert!((x - q[0] as f64).abs() < 1e-3 && (y - q[1] as f64).abs() < 1e-3);
        }
    }
}
