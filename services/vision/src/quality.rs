//! Face quality: the measures that decide whether a detected face is worth a template. A blurred,
//! tiny or sideways face produces a template that matches poorly (missed alerts) or, worse, matches
//! everyone a little (false alerts); filtering before embedding protects both rates.

use opencv::core::{Mat, CV_64F};
use opencv::imgproc;
use opencv::prelude::*;

/// Variance of the Laplacian of the chip's grey image: near zero when blurred.
pub fn sharpness(chip: &Mat) -> opencv::Result<f32> {
    let mut grey = Mat::default();
    let code = if chip.channels() == 3 {
        imgproc::COLOR_RGB2GRAY
    } else {
        return Ok(0.0);
    };
    imgproc::cvt_color_def(chip, &mut grey, code)?;
    let mut lap = Mat::default();
    imgproc::laplacian_def(&grey, &mut lap, CV_64F)?;
    let mut mean = Mat::default();
    let mut std = Mat::default();
    opencv::core::mean_std_dev_def(&lap, &mut mean, &mut std)?;
    let sd = *std.at_2d::<f64>(0, 0)?;
    Ok((sd * sd) as f32)
}

/// Distance between the eyes in image pixels.
pub fn eye_distance(landmarks: &[[f32; 2]; 5]) -> f32 {
    let [l, r] = [landmarks[0], landmarks[1]];
    ((r[0] - l[0]).powi(2) + (r[1] - l[1]).powi(2)).sqrt()
}

/// Yaw estimated from where the nose sits between the eyes: 0 frontal, about ±90 in profile.
pub fn yaw_degrees(landmarks: &[[f32; 2]; 5]) -> f32 {
    let [l, r, nose] = [landmarks[0], landmarks[1], landmarks[2]];
    let eyes = eye_distance(landmarks).max(1e-3);
    let mid = (l[0] + r[0]) / 2.0;
    let offset = (nose[0] - mid) / eyes; // about ±0.5 in profile
    (2.0 * offset).clamp(-1.0, 1.0).asin().to_degrees()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_centred_nose_is_frontal_and_a_nose_at_one_eye_is_profile() {
        let frontal = [
            [40.0, 50.0],
            [70.0, 50.0],
            [55.0, 70.0],
            [42.0, 90.0],
            [68.0, 90.0],
        ];
        assert!(yaw_degrees(&frontal).abs() < 1.0);
        let turned = [
            [40.0, 50.0],
            [70.0, 50.0],
            [70.0, 70.0],
            [42.0, 90.0],
            [68.0, 90.0],
        ];
        assert!(yaw_degrees(&turned) > 80.0);
        assert_eq!(eye_distance(&frontal), 30.0);
    }
}
