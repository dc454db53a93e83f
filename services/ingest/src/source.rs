//! Camera sources: where frames come from. A network stream, a V4L2 device, a video file or a folder
//! of images all become a [`FrameSource`] yielding decoded BGR images.
//!
//! A live camera can fail in three ways, each bounded by a [`Timeouts`] so that no camera blocks
//! its thread for long: it refuses or does not answer (open fails at once or after `open`); it
//! answers but sends no video (open fails after `open`: OpenCV opens a stream only once it has
//! seen its first frames); it stalls mid-stream with the connection still open (a read returns
//! nothing after `read`: [`SourceError::Stalled`]). A dropped connection ends a read at once
//! ([`SourceError::Read`]).

use lfr_common::redact;
use opencv::core::{Mat, Vector};
use opencv::prelude::*;
use opencv::{imgcodecs, videoio};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Clock slack when telling a read cut short by the read timeout from one that failed sooner.
const STALL_SLACK: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// RTSP or HTTP stream, opened through FFmpeg with connect and read timeouts.
    Network(String),
    /// A V4L2 capture device such as `/dev/video0`.
    Device(String),
    /// A video file: a recording replayed as a camera.
    File(PathBuf),
    /// A folder of still images, taken in name order.
    Images(PathBuf),
}

impl Source {
    pub fn parse(spec: &str) -> Source {
        if spec.contains("://") {
            Source::Network(spec.to_string())
        } else if let Some(dev) = spec.strip_prefix("v4l2:") {
            Source::Device(dev.to_string())
        } else if spec.starts_with("/dev/video") {
            Source::Device(spec.to_string())
        } else if let Some(dir) = spec.strip_prefix("dir:") {
            Source::Images(dir.into())
        } else if let Some(file) = spec.strip_prefix("file:") {
            Source::File(file.into())
        } else if Path::new(spec).is_dir() {
            Source::Images(spec.into())
        } else {
            Source::File(spec.into())
        }
    }

    /// Files and folders end; live sources should not.
    pub fn is_live(&self) -> bool {
        matches!(self, Source::Network(_) | Source::Device(_))
    }

    /// A description safe for logs: a stream's credentials, in its userinfo (`user:pass@`) or
    /// its query string (`?password=...`), are replaced by `***` ([`redact::url`]).
    pub fn describe(&self) -> String {
        match self {
            Source::Network(url) => redact::url(url),
            Source::Device(d) => d.clone(),
            Source::File(p) | Source::Images(p) => p.display().to_string(),
        }
    }
}

/// How long opening a source, and then each read, may block (OpenCV's
/// `CAP_PROP_OPEN_TIMEOUT_MSEC` and `CAP_PROP_READ_TIMEOUT_MSEC`, FFmpeg's interrupt callback).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeouts {
    pub open: Duration,
    pub read: Duration,
}

/// Why a source produced no frame.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source could not be opened at all: retry later.
    #[error("cannot open camera source: {0}")]
    Open(String),
    /// A live source stopped delivering: reopen.
    #[error("camera stopped delivering frames: {0}")]
    Read(String),
    /// A live source delivered nothing for the whole read timeout, its connection still open.
    #[error("camera sent no frame within the read timeout ({0:?})")]
    Stalled(Duration),
    /// One bad image (corrupt JPEG in a folder): skip it, keep going.
    #[error("unreadable image {file}: {why}")]
    BadImage { file: String, why: &'static str },
}

impl SourceError {
    pub fn reason(&self) -> &'static str {
        match self {
            SourceError::Open(_) => "open_failed",
            SourceError::Read(_) => "read_failed",
            SourceError::Stalled(_) => "read_timeout",
            SourceError::BadImage { .. } => "undecodable",
        }
    }
}

/// One decoded image and where it sits in the source's own timeline.
pub struct Captured {
    pub image: Mat,
    /// Seconds from the start of a file (from its frame rate); `None` for live sources.
    pub media_time: Option<f64>,
}

pub trait FrameSource: Send {
    /// The next image; `Ok(None)` when a file or folder has ended.
    fn next(&mut self) -> Result<Option<Captured>, SourceError>;
}

pub fn open(source: &Source, timeouts: Timeouts) -> Result<Box<dyn FrameSource>, SourceError> {
    match source {
        Source::Images(dir) => Ok(Box::new(ImageFolder::open(dir)?)),
        Source::Network(url) => video(url, videoio::CAP_FFMPEG, timeouts, true),
        Source::Device(dev) => video(dev, videoio::CAP_V4L2, timeouts, true),
        Source::File(path) => {
            if !path.is_file() {
                return Err(SourceError::Open(format!(
                    "{} is not a file",
                    path.display()
                )));
            }
            video(&path.to_string_lossy(), videoio::CAP_ANY, timeouts, false)
        }
    }
}

/// Open a video through OpenCV; a `live` one never ends, it fails.
fn video(
    target: &str,
    api: i32,
    timeouts: Timeouts,
    live: bool,
) -> Result<Box<dyn FrameSource>, SourceError> {
    // Bound how long a dead or silent camera can block its thread.
    let ms = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
    let params = Vector::from_slice(&[
        videoio::CAP_PROP_OPEN_TIMEOUT_MSEC,
        ms(timeouts.open),
        videoio::CAP_PROP_READ_TIMEOUT_MSEC,
        ms(timeouts.read),
    ]);
    let started = Instant::now();
    // OpenCV's messages may quote what it was given: a stream's URL, credentials included.
    let capture = videoio::VideoCapture::from_file_with_params(target, api, &params)
        .map_err(|e| SourceError::Open(redact::url(&e.to_string())))?;
    if !capture.is_opened().unwrap_or(false) {
        return Err(SourceError::Open(
            if live && started.elapsed() + STALL_SLACK >= timeouts.open {
                format!(
                    "no video within the open timeout ({:?}): no answer, or no frames",
                    timeouts.open
                )
            } else {
                "no decoder accepted it".into()
            },
        ));
    }
    // Opened only when the open timeout ran out: the camera answered, but no media came (some
    // OpenCV builds open such a stream from its description alone and fail the first read).
    let silent = live && started.elapsed() + STALL_SLACK >= timeouts.open;
    let fps = capture.get(videoio::CAP_PROP_FPS).unwrap_or(0.0);
    Ok(Box::new(Video {
        capture,
        live: live.then_some(timeouts),
        silent,
        fps: if fps.is_finite() && fps > 0.0 {
            fps
        } else {
            25.0
        },
        index: 0,
    }))
}

struct Video {
    capture: videoio::VideoCapture,
    live: Option<Timeouts>,
    fps: f64,
    index: u64,
    /// A live source that opened without sending media within the open timeout.
    silent: bool,
}

impl FrameSource for Video {
    fn next(&mut self) -> Result<Option<Captured>, SourceError> {
        let mut image = Mat::default();
        let started = Instant::now();
        let got = self
            .capture
            .read(&mut image)
            .map_err(|e| SourceError::Read(redact::url(&e.to_string())))?;
        if let Some(timeouts) = self.live {
            // A read that lasted the whole read timeout was cut short by it: no frame came in
            // that time, whatever OpenCV returns (FFmpeg may hand back what it held, a stale or
            // partial picture, and fail only on the next read). A stall; the frame is not used.
            if started.elapsed() + STALL_SLACK >= timeouts.read {
                return Err(SourceError::Stalled(timeouts.read));
            }
            if !got || image.empty() {
                return Err(if self.index == 0 && self.silent {
                    // Never a frame since it answered: as if it had not opened.
                    SourceError::Open(format!(
                        "no video within the open timeout ({:?}): the camera answers but sends no frames",
                        timeouts.open
                    ))
                } else {
                    SourceError::Read("the stream ended or its connection closed".into())
                });
            }
        } else if !got || image.empty() {
            return Ok(None);
        }
        let media_time = self.live.is_none().then(|| self.index as f64 / self.fps);
        self.index += 1;
        Ok(Some(Captured { image, media_time }))
    }
}

struct ImageFolder {
    files: std::vec::IntoIter<PathBuf>,
}

impl ImageFolder {
    fn open(dir: &Path) -> Result<ImageFolder, SourceError> {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| SourceError::Open(format!("{}: {e}", dir.display())))?;
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(SourceError::Open(format!(
                "{} has no images",
                dir.display()
            )));
        }
        Ok(ImageFolder {
            files: files.into_iter(),
        })
    }
}

impl FrameSource for ImageFolder {
    fn next(&mut self) -> Result<Option<Captured>, SourceError> {
        let Some(file) = self.files.next() else {
            return Ok(None);
        };
        let bad = |why| SourceError::BadImage {
            file: file
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into(),
            why,
        };
        let image =
            imgcodecs::imread(&file, imgcodecs::IMREAD_COLOR).map_err(|_| bad("decoder error"))?;
        if image.empty() {
            return Err(bad("not a decodable image"));
        }
        Ok(Some(Captured {
            image,
            media_time: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_recognised_by_their_spelling() {
        assert_eq!(
            Source::parse("rtsp://cam/1"),
            Source::Network("rtsp://cam/1".into())
        );
        assert_eq!(
            Source::parse("/dev/video2"),
            Source::Device("/dev/video2".into())
        );
        assert_eq!(
            Source::parse("v4l2:/dev/video0"),
            Source::Device("/dev/video0".into())
        );
        assert_eq!(Source::parse("dir:/x"), Source::Images("/x".into()));
        assert_eq!(
            Source::parse("/no/such.mp4"),
            Source::File("/no/such.mp4".into())
        );
    }

    #[test]
    fn credentials_never_reach_the_logs() {
        let s = Source::parse("rtsp://admin:secret@10.0.0.9/stream");
        assert_eq!(s.describe(), "rtsp://***@10.0.0.9/stream");
        let s = Source::parse("http://10.0.0.9/video.cgi?user=admin&pwd=secret&resolution=8");
        assert_eq!(
            s.describe(),
            "http://10.0.0.9/video.cgi?user=admin&pwd=***&resolution=8"
        );
        let s = Source::parse("rtsp://admin:p@ss@10.0.0.9/stream?token=secret");
        assert_eq!(s.describe(), "rtsp://***@10.0.0.9/stream?token=***");
    }
}
