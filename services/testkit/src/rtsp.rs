//! A real RTSP camera for tests: GStreamer's RTSP server (Debian's `gir1.2-gst-rtsp-server-1.0`,
//! run by `rtsp/serve.py` under Debian's `/usr/bin/python3`) streaming H.264, 640x480 at 10 fps,
//! at `rtsp://127.0.0.1:PORT/live`.
//!
//! ```no_run
//! # async fn example() {
//! use lfr_testkit::rtsp::{self, Mode, RtspServer};
//! use std::time::Duration;
//!
//! if !rtsp::usable() {
//!     return; // skipped, with the reason printed; under CI=true this panics instead
//! }
//! let mut camera = RtspServer::start().await;
//! let url = camera.url(); // rtsp://127.0.0.1:PORT/live
//! camera.stop(); // killed mid-stream: its clients' connections drop
//! camera.start_again().await; // the same URL serves again
//! // A camera whose frames stop after 2 s while its connection stays open:
//! let frozen = RtspServer::start_with(Mode::Stall { after: Duration::from_secs(2) }).await;
//! # let _ = (url, frozen);
//! # }
//! ```
//!
//! FFmpeg cannot serve RTSP to clients, hence GStreamer. The server is killed when dropped.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's Python: the GObject bindings (`python3-gi`) are installed for it, not for a venv.
const PYTHON: &str = "/usr/bin/python3";

/// How long the server may take to listen (GStreamer's first start scans its plugins).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// What the camera does once a client is playing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Streams until stopped.
    Live,
    /// Streams for `after`, then sends no more media while the connection stays open and RTSP
    /// requests are still answered: a frozen camera or a black-holed network path. With
    /// `Duration::ZERO` the camera answers the RTSP handshake but never sends a frame.
    Stall { after: Duration },
}

pub struct RtspServer {
    port: u16,
    mode: Mode,
    child: Option<Child>,
    /// Holds the server's stderr, quoted when it fails to start.
    dir: tempfile::TempDir,
}

impl RtspServer {
    /// A live camera on a free loopback port.
    pub async fn start() -> RtspServer {
        RtspServer::start_with(Mode::Live).await
    }

    pub async fn start_with(mode: Mode) -> RtspServer {
        let mut server = RtspServer {
            port: crate::free_port(),
            mode,
            child: None,
            dir: tempfile::tempdir().expect("temp dir for the RTSP server's log"),
        };
        server.start_again().await;
        server
    }

    pub fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/live", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kill the server (SIGKILL, as a crash or a power cut): the kernel closes its clients'
    /// connections at once.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again (after [`stop`](Self::stop)) on the same port, in the same mode; returns
    /// once it accepts connections.
    pub async fn start_again(&mut self) {
        self.stop();
        let log = self.dir.path().join("serve.log");
        let mut args = vec![
            script().display().to_string(),
            "--port".into(),
            self.port.to_string(),
        ];
        if let Mode::Stall { after } = self.mode {
            args.extend([
                "--mode".into(),
                "stall".into(),
                "--stall-after".into(),
                after.as_secs_f64().to_string(),
            ]);
        }
        let mut child = Command::new(PYTHON)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("RTSP server log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("start {PYTHON}: {e}: run scripts/setup.sh"));
        // The script prints "ready PORT" once it listens; a reader thread keeps the wait async.
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next().and_then(Result::ok));
            // Keep draining so a chatty server never blocks on a full pipe.
            for _ in lines {}
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let ready = loop {
            match rx.try_recv() {
                Ok(line) => break line.is_some_and(|l| l.starts_with("ready")),
                Err(std::sync::mpsc::TryRecvError::Disconnected) => break false,
                Err(std::sync::mpsc::TryRecvError::Empty) if Instant::now() > deadline => {
                    break false
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        if !ready {
            let _ = child.kill();
            let _ = child.wait();
            let why = std::fs::read_to_string(&log).unwrap_or_default();
            panic!(
                "RTSP server on port {} did not start:\n{why}\nrun scripts/setup.sh",
                self.port
            );
        }
        self.child = Some(child);
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rtsp/serve.py")
}

/// Why the RTSP server cannot run on this machine (a missing Debian package), or `None`.
pub fn missing() -> Option<String> {
    let out = Command::new(PYTHON)
        .arg(script())
        .arg("--check")
        .stdin(Stdio::null())
        .output();
    match out {
        Err(e) => Some(format!("{PYTHON}: {e}")),
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("serve.py --check failed")
                .to_string(),
        ),
    }
}

/// Whether RTSP tests can run. When GStreamer's RTSP server is missing this prints why and
/// returns false, so a developer's machine skips them; under `CI` (set and not `false`/`0`) it
/// panics instead: CI installs the packages (`scripts/setup.sh`), so missing ones are a failure.
pub fn usable() -> bool {
    let Some(why) = missing() else {
        return true;
    };
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(
        !ci,
        "GStreamer's RTSP server is missing under CI ({why}): scripts/setup.sh installs it"
    );
    eprintln!("SKIPPED: GStreamer's RTSP server is missing ({why}); run scripts/setup.sh");
    false
}
