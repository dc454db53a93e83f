//! Ingest configuration: the `[ingest]` section and its `[[ingest.cameras]]`.

use lfr_common::config::{secs, Common};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(flatten)]
    pub common: Common,
    pub ingest: IngestConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct IngestConfig {
    /// Where `/metrics`, `/healthz` and `/readyz` listen.
    pub http_addr: SocketAddr,
    pub cameras: Vec<CameraConfig>,
    /// JPEG quality of published frames (1-100).
    pub jpeg_quality: u8,
    /// Frames a camera may have waiting for the bus; beyond it the oldest is dropped (and counted).
    pub queue_capacity: usize,
    /// Publishes a camera may have awaiting acknowledgement: the bus's push-back.
    pub max_in_flight: usize,
    /// First wait before re-opening a failed or ended camera; doubles up to `max_backoff`.
    #[serde(with = "secs")]
    pub initial_backoff: Duration,
    #[serde(with = "secs")]
    pub max_backoff: Duration,
    /// Longest a network or device camera may take to open and deliver its first frame: a
    /// camera that does not answer, or answers but sends no video, fails after this.
    #[serde(with = "secs")]
    pub open_timeout: Duration,
    /// Longest an open network or device camera may go without delivering a frame: a stream
    /// that stalls with its connection still open is closed after this, counted and reopened.
    #[serde(with = "secs")]
    pub read_timeout: Duration,
    /// How often the deployment records are re-read for coverage even when no change was
    /// announced (changes are seen at once; windows open and close on the clock).
    #[serde(with = "secs")]
    pub coverage_refresh: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            http_addr: "127.0.0.1:9101".parse().unwrap(),
            cameras: Vec::new(),
            jpeg_quality: 85,
            queue_capacity: 4,
            max_in_flight: 16,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            open_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(5),
            coverage_refresh: lfr_watchlist::coverage::REFRESH,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CameraConfig {
    /// Subject token: 1-64 of A-Z a-z 0-9 - _.
    pub id: String,
    /// `rtsp://...` or `http(s)://...`, `v4l2:/dev/video0` (or `/dev/videoN`), a video file, or a
    /// directory of images (`dir:` or `file:` prefixes make the kind explicit).
    pub source: String,
    /// Frames per second to sample.
    #[serde(default = "default_fps")]
    pub fps: f64,
    /// Resize every frame to `[width, height]` before encoding.
    #[serde(default)]
    pub resize: Option<[u32; 2]>,
    /// Play files and image folders at `fps` in real time (true) or as fast as the bus takes them
    /// (false; for benchmarks and replays).
    #[serde(default = "yes")]
    pub realtime: bool,
    /// Start a file or folder again from the beginning when it ends.
    #[serde(default)]
    pub repeat: bool,
}

/// Bounds of `open_timeout` and `read_timeout`.
pub const TIMEOUT_FLOOR: Duration = Duration::from_millis(100);
pub const TIMEOUT_CEILING: Duration = Duration::from_secs(8);

fn default_fps() -> f64 {
    5.0
}

fn yes() -> bool {
    true
}

impl Config {
    /// Refuse configurations that cannot work, with the reason, before anything starts.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut seen = std::collections::HashSet::new();
        for cam in &self.ingest.cameras {
            lfr_schemas::subjects::validate_token("camera", &cam.id)?;
            anyhow::ensure!(seen.insert(&cam.id), "camera id {:?} is used twice", cam.id);
            anyhow::ensure!(
                cam.fps > 0.0 && cam.fps <= 60.0,
                "camera {}: fps must be in (0, 60], got {}",
                cam.id,
                cam.fps
            );
            if let Some([w, h]) = cam.resize {
                anyhow::ensure!(
                    (16..=8192).contains(&w) && (16..=8192).contains(&h),
                    "camera {}: resize {w}x{h} out of range",
                    cam.id
                );
            }
        }
        // A camera thread blocked in open or read notices shutdown only when the call returns:
        // the ceiling keeps a service stop within its 10 s.
        for (name, t) in [
            ("open_timeout", self.ingest.open_timeout),
            ("read_timeout", self.ingest.read_timeout),
        ] {
            anyhow::ensure!(
                (TIMEOUT_FLOOR..=TIMEOUT_CEILING).contains(&t),
                "{name} must be {TIMEOUT_FLOOR:?} to {TIMEOUT_CEILING:?}, got {t:?}"
            );
        }
        anyhow::ensure!(
            (1..=100).contains(&self.ingest.jpeg_quality),
            "jpeg_quality must be 1-100"
        );
        anyhow::ensure!(
            self.ingest.queue_capacity >= 1,
            "queue_capacity must be at least 1"
        );
        anyhow::ensure!(
            self.ingest.max_in_flight >= 1,
            "max_in_flight must be at least 1"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_timeouts_default_to_five_seconds_and_must_stay_bounded() {
        let mut c = Config::default();
        assert_eq!(c.ingest.open_timeout, Duration::from_secs(5));
        assert_eq!(c.ingest.read_timeout, Duration::from_secs(5));
        c.validate().unwrap();
        c.ingest.read_timeout = Duration::from_millis(10);
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("read_timeout"), "{err}");
        c.ingest.read_timeout = Duration::from_secs(5);
        c.ingest.open_timeout = Duration::from_secs(60);
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("open_timeout"), "{err}");
    }

    #[test]
    fn camera_timeouts_are_read_in_seconds() {
        let c: Config = toml::from_str("[ingest]\nopen_timeout = 2.5\nread_timeout = 1\n").unwrap();
        assert_eq!(c.ingest.open_timeout, Duration::from_millis(2500));
        assert_eq!(c.ingest.read_timeout, Duration::from_secs(1));
    }
}
