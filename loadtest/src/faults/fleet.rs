//! The pipeline's service processes as the fault harness runs them: detect, embed, two match
//! replicas (active and standby), dispatch (its console on [`Fleet::console`]) and purge, each
//! with its own identity, metrics port and log, each one killable and restartable on its own.

use crate::scrape;
use lfr_common::http::free_port;
use lfr_identity::Credentials;
use lfr_schemas::permissions::Identity;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// One service process: its name in the report (`match-a`), the binary's stage, where its
/// metrics are.
pub struct Service {
    pub name: String,
    pub stage: &'static str,
    pub addr: SocketAddr,
    child: Option<Child>,
}

pub struct Fleet {
    pub services: Vec<Service>,
    /// Where dispatch's console listens (the same address across its restarts).
    pub console: SocketAddr,
    bin_dir: PathBuf,
    config: PathBuf,
    log_dir: PathBuf,
    credentials: Credentials,
    master_key: String,
}

impl Fleet {
    /// Start `(name, stage)` services from `bin_dir` with one shared configuration file.
    pub async fn start(
        members: &[(&str, &'static str)],
        bin_dir: &Path,
        config: &Path,
        log_dir: &Path,
        credentials: Credentials,
    ) -> anyhow::Result<Fleet> {
        std::fs::create_dir_all(log_dir)?;
        let mut fleet = Fleet {
            services: Vec::new(),
            console: SocketAddr::from(([127, 0, 0, 1], free_port()?)),
            bin_dir: bin_dir.to_path_buf(),
            config: config.to_path_buf(),
            log_dir: log_dir.to_path_buf(),
            credentials,
            // A key made for this run only: the alerts it seals die with the temporary store.
            master_key: lfr_vault::MasterKey::generate().to_base64().to_string(),
        };
        for (name, stage) in members {
            let binary = bin_dir.join(format!("lfr-{stage}"));
            anyhow::ensure!(
                binary.exists(),
                "{} not found: build the services first (cargo build --bins)",
                binary.display()
            );
            fleet.services.push(Service {
                name: name.to_string(),
                stage,
                addr: SocketAddr::from(([127, 0, 0, 1], free_port()?)),
                child: None,
            });
        }
        for i in 0..fleet.services.len() {
            fleet.spawn(i)?;
        }
        Ok(fleet)
    }

    fn index(&self, name: &str) -> usize {
        self.services
            .iter()
            .position(|s| s.name == name)
            .unwrap_or_else(|| panic!("no service {name}"))
    }

    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let s = &self.services[i];
        let identity = Identity::of(s.stage).expect("a stage's identity");
        // Appended to, so a restarted replica's log follows its first life.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_dir.join(format!("{}.log", s.name)))?;
        let child = Command::new(self.bin_dir.join(format!("lfr-{}", s.stage)))
            .arg("--config")
            .arg(&self.config)
            .env("LFR_NATS__CREDENTIALS", self.credentials.file(identity))
            .env(
                format!("LFR_{}__HTTP_ADDR", s.stage.to_uppercase()),
                s.addr.to_string(),
            )
            .env("LFR_MATCH__REPLICA", &s.name)
            .env("LFR_DISPATCH__CONSOLE_ADDR", self.console.to_string())
            .env("LFR_MASTER_KEY", &self.master_key)
            .env("OMP_NUM_THREADS", "1")
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start lfr-{}: {e}", s.stage))?;
        self.services[i].child = Some(child);
        Ok(())
    }

    /// SIGKILL: no drain, no goodbye, as a crashed pod.
    pub async fn kill(&mut self, name: &str) {
        let i = self.index(name);
        if let Some(mut child) = self.services[i].child.take() {
            let _ = child.kill().await;
        }
    }

    pub fn restart(&mut self, name: &str) -> anyhow::Result<()> {
        let i = self.index(name);
        self.spawn(i)
    }

    pub fn addr(&self, name: &str) -> SocketAddr {
        self.services[self.index(name)].addr
    }

    /// Wait until every running service answers `/readyz`; how long that took.
    pub async fn wait_ready(&self, limit: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        for s in self.services.iter().filter(|s| s.child.is_some()) {
            while scrape::get(s.addr, "/readyz").await.is_err() {
                anyhow::ensure!(
                    started.elapsed() < limit,
                    "{} not ready after {limit:?}",
                    s.name
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(started.elapsed())
    }

    /// The process ids of the running services.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.services
            .iter()
            .filter_map(|s| Some((s.name.clone(), s.child.as_ref()?.id()?)))
            .collect()
    }

    /// SIGTERM every service, then wait for each (killed after 10 s).
    pub async fn stop(&mut self) {
        for s in &self.services {
            if let Some(pid) = s.child.as_ref().and_then(Child::id) {
                // SAFETY: signalling a child process this struct owns.
                unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            }
        }
        for s in &mut self.services {
            if let Some(mut child) = s.child.take() {
                if tokio::time::timeout(Duration::from_secs(10), child.wait())
                    .await
                    .is_err()
                {
                    tracing::warn!(service = %s.name, "did not stop in 10 s; killed");
                    let _ = child.kill().await;
                }
            }
        }
    }
}
