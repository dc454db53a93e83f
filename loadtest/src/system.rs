//! The system under test.
//!
//! **Local** (the default): the load test starts its own nats-server on free loopback ports with
//! its store in a temporary folder, secured as in production (TLS with a throw-away CA, one nkey
//! per service with the contract's permissions, the store encrypted), declares the topology as the
//! keeper does, and starts the detect, embed and match binaries found beside its own, each with its
//! own credentials, a generated configuration and a throw-away master key. Everything is stopped,
//! and the folder removed, when the run ends.
//!
//! **External**: NATS and the services are already running (`--nats-url`, `--scrape`); the load
//! test only publishes its own cameras' frames and reads the services' `/metrics`. CPU and memory
//! are then not measured (the processes are not on this box; use the cluster's own metrics).

use crate::scrape;
use crate::usage::Watched;
use lfr_common::config::NatsConfig;
use lfr_common::http::free_port;
use lfr_common::local_nats::{LocalNats, Setup};
use lfr_detect::tracks::Tracking;
use lfr_identity::{Credentials, ServerConfig};
use lfr_schemas::permissions::Identity;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// The stages a load test drives, in pipeline order.
pub const STAGES: [&str; 3] = ["detect", "embed", "match"];

/// A service's metrics endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub service: String,
    pub addr: SocketAddr,
}

pub enum System {
    Local(Box<LocalSystem>),
    External {
        nats: NatsConfig,
        endpoints: Vec<Endpoint>,
    },
}

impl System {
    pub fn url(&self) -> String {
        match self {
            System::Local(l) => l.nats.url(),
            System::External { nats, .. } => nats.url.clone(),
        }
    }

    /// How the load test itself connects: as the `loadtest` identity.
    pub fn nats_config(&self) -> NatsConfig {
        match self {
            System::Local(l) => l.nats_config(Identity::Loadtest),
            System::External { nats, .. } => nats.clone(),
        }
    }

    pub fn endpoints(&self) -> &[Endpoint] {
        match self {
            System::Local(l) => &l.endpoints,
            System::External { endpoints, .. } => endpoints,
        }
    }

    pub fn endpoint(&self, service: &str) -> Option<SocketAddr> {
        self.endpoints()
            .iter()
            .find(|e| e.service == service)
            .map(|e| e.addr)
    }

    /// Processes whose CPU and memory can be read here.
    pub fn watched(&self) -> Vec<Watched> {
        match self {
            System::Local(l) => l.watched(),
            System::External { .. } => Vec::new(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            System::Local(_) => "local",
            System::External { .. } => "external",
        }
    }

    pub async fn stop(self) {
        if let System::Local(l) = self {
            l.stop().await
        }
    }
}

pub struct LocalSystem {
    nats: LocalNats,
    credentials: Credentials,
    ca: PathBuf,
    services: Vec<(String, Child)>,
    endpoints: Vec<Endpoint>,
    _dir: tempfile::TempDir,
}

/// How the local services are set up.
pub struct LocalSettings {
    /// Folder holding `lfr-detect`, `lfr-embed`, `lfr-match`.
    pub bin_dir: PathBuf,
    /// The matcher's re-alert window (short, so a step can hold many passes of two people).
    pub realert_after: Duration,
    /// `models.detector_input` of the detect service.
    pub detector_input: [u32; 2],
    /// `detect.tracking` of the detect service.
    pub tracking: Tracking,
    /// `models.threads`: ONNX Runtime intra-op threads per model, in detect and embed.
    pub model_threads: usize,
    /// `detect.context`: `on_request` or `with_face`.
    pub context: &'static str,
    /// `embed.workers` (0: one per core).
    pub embed_workers: usize,
    /// Where each service's log goes (`<service>.log`).
    pub log_dir: PathBuf,
}

impl LocalSystem {
    pub async fn start(settings: &LocalSettings) -> anyhow::Result<LocalSystem> {
        for stage in STAGES {
            let binary = settings.bin_dir.join(format!("lfr-{stage}"));
            anyhow::ensure!(
                binary.exists(),
                "{} not found: build the services first (cargo build --release --bins)",
                binary.display()
            );
        }
        let dir = tempfile::tempdir()?;
        let mut identities: Vec<Identity> = STAGES
            .iter()
            .map(|s| Identity::of(s).expect("a stage's identity"))
            .collect();
        identities.extend([Identity::Bus, Identity::Loadtest]);
        let credentials = Credentials::generate(&dir.path().join("creds"), &identities)?;
        let tls = lfr_identity::tls::generate(&dir.path().join("tls"), &["127.0.0.1".into()])?;
        let ca = tls.ca.clone();
        let setup = Setup {
            config: ServerConfig::secured(tls, credentials.clone()).render(),
            env: vec![(
                lfr_identity::server::STORE_KEY_ENV.into(),
                lfr_identity::server::new_store_key()?,
            )],
            tls: true,
        };
        let nats = LocalNats::start_with(
            free_port()?,
            free_port()?,
            &dir.path().join("jetstream"),
            setup,
        )
        .await?;
        let endpoints: Vec<Endpoint> = STAGES
            .iter()
            .map(|s| {
                Ok(Endpoint {
                    service: s.to_string(),
                    addr: SocketAddr::from(([127, 0, 0, 1], free_port()?)),
                })
            })
            .collect::<anyhow::Result<_>>()?;
        let config = dir.path().join("lfr.toml");
        std::fs::write(&config, config_toml(&nats.url(), &ca, &endpoints, settings))?;
        // The topology, declared as the keeper declares it, with this configuration's limits.
        let keeper = NatsConfig {
            url: nats.url(),
            credentials: Some(credentials.file(Identity::Bus)),
            ca: Some(ca.clone()),
            ..Default::default()
        };
        let client = lfr_common::bus::connect_options(&keeper, Identity::Bus)
            .await?
            .connect(nats.url())
            .await?;
        let limits = lfr_common::config::load::<lfr_common::config::Common>(Some(&config))?
            .bus
            .topology_limits();
        lfr_common::topology::declare(&async_nats::jetstream::new(client), &limits).await?;
        // A key made for this run only: the alerts it seals die with the temporary store.
        let key = lfr_vault::MasterKey::generate().to_base64();
        let mut services = Vec::new();
        std::fs::create_dir_all(&settings.log_dir)?;
        for stage in STAGES {
            let log = std::fs::File::create(settings.log_dir.join(format!("{stage}.log")))?;
            let identity = Identity::of(stage).expect("a stage's identity");
            let child = Command::new(settings.bin_dir.join(format!("lfr-{stage}")))
                .arg("--config")
                .arg(&config)
                .env("LFR_NATS__CREDENTIALS", credentials.file(identity))
                .env("LFR_MASTER_KEY", key.as_str())
                .env("RUST_LOG", "info,lfr_common=debug")
                .env("OMP_NUM_THREADS", "1")
                .stdout(log.try_clone()?)
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| anyhow::anyhow!("cannot start lfr-{stage}: {e}"))?;
            services.push((stage.to_string(), child));
        }
        let system = LocalSystem {
            nats,
            credentials,
            ca,
            services,
            endpoints,
            _dir: dir,
        };
        system.wait_ready(Duration::from_secs(90)).await?;
        Ok(system)
    }

    /// How `identity` reaches this system's NATS.
    pub fn nats_config(&self, identity: Identity) -> NatsConfig {
        NatsConfig {
            url: self.nats.url(),
            credentials: Some(self.credentials.file(identity)),
            ca: Some(self.ca.clone()),
            ..Default::default()
        }
    }

    async fn wait_ready(&self, limit: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        for e in &self.endpoints {
            loop {
                if scrape::get(e.addr, "/readyz").await.is_ok() {
                    break;
                }
                anyhow::ensure!(
                    started.elapsed() < limit,
                    "lfr-{} not ready after {limit:?}",
                    e.service
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }

    fn watched(&self) -> Vec<Watched> {
        let mut w: Vec<Watched> = self
            .nats
            .pid()
            .map(|pid| Watched {
                service: "nats".into(),
                pid,
            })
            .into_iter()
            .collect();
        for (service, child) in &self.services {
            if let Some(pid) = child.id() {
                w.push(Watched {
                    service: service.clone(),
                    pid,
                });
            }
        }
        w
    }

    /// SIGTERM every service (they drain and exit), then stop NATS.
    pub async fn stop(mut self) {
        for (_, child) in &mut self.services {
            if let Some(pid) = child.id() {
                // SAFETY: signalling a child process this struct owns.
                unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            }
        }
        for (name, child) in &mut self.services {
            if tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .is_err()
            {
                tracing::warn!(service = %name, "did not stop in 10 s; killed");
                let _ = child.kill().await;
            }
        }
        self.nats.stop().await;
    }
}

/// One file for the three services: loopback NATS, loopback metrics, the short re-alert window.
fn config_toml(url: &str, ca: &Path, endpoints: &[Endpoint], settings: &LocalSettings) -> String {
    let addr = |s: &str| {
        endpoints
            .iter()
            .find(|e| e.service == s)
            .map(|e| e.addr.to_string())
            .unwrap_or_default()
    };
    format!(
        "[nats]\nurl = \"{url}\"\nca = {ca:?}\n\n[log]\nfilter = \"info\"\n\n\
         [detect]\nhttp_addr = \"{}\"\ncontext = \"{}\"\n\n\
         [detect.tracking]\nfull_every = {:?}\nfaces_per_second = {:?}\ntrack_gap = {:?}\n\n\
         [embed]\nhttp_addr = \"{}\"\nworkers = {}\n\n\
         [match]\nhttp_addr = \"{}\"\nreplica = \"loadtest\"\n\n\
         [match.corroboration]\nrealert_after = {:?}\n\n[models]\ndetector_input = [{}, {}]\nthreads = {}\n",
        addr("detect"),
        settings.context,
        settings.tracking.full_every.as_secs_f64(),
        settings.tracking.faces_per_second,
        settings.tracking.track_gap.as_secs_f64(),
        addr("embed"),
        settings.embed_workers,
        addr("match"),
        settings.realert_after.as_secs_f64(),
        settings.detector_input[0],
        settings.detector_input[1],
        settings.model_threads,
    )
}

/// The folder of this executable: where `cargo build` put the service binaries too.
pub fn own_bin_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default()
}

/// Traffic goes only to loopback or to the NATS host the operator named: a metrics endpoint
/// elsewhere is refused.
pub fn check_scrape_target(addr: &SocketAddr, nats_url: &str) -> anyhow::Result<()> {
    if addr.ip().is_loopback() {
        return Ok(());
    }
    // nats://[user:password@]host:port
    let authority = nats_url.split("://").last().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = host_port.split(':').next().unwrap_or_default();
    anyhow::ensure!(
        host == addr.ip().to_string(),
        "refusing to scrape {addr}: only loopback or the NATS host ({host}) are allowed"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrape_targets_are_loopback_or_the_nats_host() {
        let local: SocketAddr = "127.0.0.1:9102".parse().unwrap();
        let nats_host: SocketAddr = "10.0.0.5:9102".parse().unwrap();
        assert!(check_scrape_target(&local, "nats://10.0.0.5:4222").is_ok());
        assert!(check_scrape_target(&nats_host, "nats://10.0.0.5:4222").is_ok());
        assert!(check_scrape_target(&nats_host, "nats://user:pw@10.0.0.5:4222").is_ok());
        assert!(check_scrape_target(&nats_host, "nats://10.0.0.6:4222").is_err());
    }

    #[test]
    fn config_names_every_endpoint_and_the_window() {
        let e: Vec<Endpoint> = [("detect", 1232), ("embed", 1233), ("match", 1234)]
            .into_iter()
            .map(|(service, port)| Endpoint {
                service: service.into(),
                addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            })
            .collect();
        let settings = LocalSettings {
            bin_dir: PathBuf::new(),
            realert_after: Duration::from_secs(3),
            detector_input: [480, 360],
            tracking: Tracking {
                faces_per_second: 2.0,
                ..Tracking::default()
            },
            model_threads: 2,
            context: "on_request",
            embed_workers: 0,
            log_dir: PathBuf::new(),
        };
        let text = config_toml(
            "tls://127.0.0.1:1",
            Path::new("/tmp/x/ca.pem"),
            &e,
            &settings,
        );
        let parsed: toml::Table = text.parse().unwrap();
        assert_eq!(parsed["nats"]["ca"].as_str(), Some("/tmp/x/ca.pem"));
        assert_eq!(
            parsed["match"]["http_addr"].as_str(),
            Some("127.0.0.1:1234")
        );
        assert_eq!(
            parsed["match"]["corroboration"]["realert_after"].as_float(),
            Some(3.0)
        );
        assert_eq!(
            parsed["models"]["detector_input"].as_array().unwrap()[0].as_integer(),
            Some(480)
        );
        // What detect reads back is the rule given.
        let detect: lfr_detect::Config = toml::from_str(&text).unwrap();
        assert_eq!(detect.detect.tracking, settings.tracking);
        assert_eq!(detect.models.threads, 2);
    }
}
