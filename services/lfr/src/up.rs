//! `lfr up`: the all-in-one system.
//!
//! Starts nats-server with JetStream on loopback (store under the state directory) secured as in
//! production ([`secured`]): TLS with a throw-away CA, one nkey user per component with the contract's
//! permissions, the store encrypted. It declares the topology as the administrator and keeps it
//! declared (memory streams come back after a NATS restart). It writes the run's configuration
//! (the given file, or the built-in `all-in-one.toml`, pointed at that server, plus the sample
//! camera when no camera is configured), then starts every service binary found beside this one,
//! each with its own credentials only, and keeps them running: a service that exits is started
//! again after a pause. On Ctrl-C or SIGTERM the services are stopped first (ingest before the
//! stages, so in-flight frames drain), then the demonstration deployment is ended, then NATS.
//! nats-server runs in its own process group, so a terminal's Ctrl-C, which reaches this process
//! and every service at once, never reaches it: it goes last, on SIGTERM from here. Every step of
//! the stop is bounded (a service has 10 s before SIGKILL, the demo's end 10 s, NATS 10 s).
//!
//! With the sample camera, a demonstration deployment watches it ([`demo`]) unless `--no-demo`.
//!
//! Every service gets the master key that seals retained alert images (`LFR_MASTER_KEY`,
//! docs/encryption.md): the operator's own when it is set, otherwise one generated once for this
//! box into `<state>/master.key` (mode 0600), so a fresh machine works without anyone inventing a
//! key. Lose that file and the retained alerts can never be read again.
//!
//! The purge service alone gets the key it signs audit anchors with (`<state>/audit-anchor.key`,
//! mode 0600, made once); its public key goes into `run/admin.env` (`LFR_AUDIT_ANCHOR_KEYS`), so
//! `lfr audit verify` checks the log against the signed anchors (docs/security.md).

mod demo;
mod secured;

use crate::connect::NatsArgs;
use lfr_common::local_nats::LocalNats;
use lfr_common::Shutdown;
use lfr_schemas::permissions::Identity;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;
use tokio::process::{Child, Command};

const DEFAULT_CONFIG: &str = include_str!("../all-in-one.toml");

/// Started in this order, stopped in the same order: ingest first, so no new frames arrive.
const SERVICES: [&str; 6] = ["ingest", "detect", "embed", "match", "dispatch", "purge"];

#[derive(clap::Args)]
pub struct UpArgs {
    /// Configuration file (default: the built-in all-in-one configuration).
    #[arg(long, short, env = "LFR_CONFIG")]
    config: Option<PathBuf>,
    /// Where NATS keeps ALERTS and AUDIT, and where the run's configuration is written.
    #[arg(long, env = "LFR_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Folder of images replayed as the sample camera when no camera is configured.
    #[arg(long, env = "LFR_SAMPLE_CAMERA")]
    sample: Option<PathBuf>,
    #[arg(long, default_value_t = 4222)]
    nats_port: u16,
    #[arg(long, default_value_t = 8222)]
    nats_monitor_port: u16,
    /// Do not create the demonstration deployment over the sample camera.
    #[arg(long)]
    no_demo: bool,
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    lfr_common::telemetry::init_logging(&Default::default());
    // Signals are caught from the first moment: nats-server runs in its own process group, so a
    // Ctrl-C that ended this process outright would leave it running. No deadline: this process
    // bounds its own stop, since it must stop its children and the server, not abandon them.
    let shutdown = Shutdown::on_signals_within(None);
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into()));
    let state = args
        .state_dir
        .clone()
        .unwrap_or_else(|| home.join(".local/share/lfr"));
    let sample = args
        .sample
        .clone()
        .unwrap_or_else(|| home.join(".cache/lfr/samples/faces"));
    let master_key = master_key(&state)?;
    let secured = secured::Secured::prepare(&state)?;

    // In its own process group: a terminal's Ctrl-C reaches this process and the services only,
    // and NATS is stopped last, once nothing writes to it any more.
    let store = state.join("jetstream");
    let start = LocalNats::start_own_group(
        args.nats_port,
        args.nats_monitor_port,
        &store,
        secured.setup(),
    );
    let mut nats = tokio::select! {
        nats = start => nats?,
        // Dropping the start kills the half-started server.
        _ = shutdown.requested() => return Ok(()),
    };
    tracing::info!(url = %nats.url(), monitor = args.nats_monitor_port, "NATS with JetStream running (TLS, one identity per service, store encrypted)");
    let up = System {
        args: &args,
        state: &state,
        sample: &sample,
        master_key,
        secured: &secured,
        nats_url: nats.url(),
    };
    let ran = up.run(&shutdown).await;
    nats.stop().await;
    match &ran {
        Ok(()) => tracing::info!("lfr is down"),
        Err(e) => tracing::error!(error = %e, "lfr stopped on an error"),
    }
    ran
}

/// Everything `lfr up` runs on top of its NATS server.
struct System<'a> {
    args: &'a UpArgs,
    state: &'a Path,
    sample: &'a Path,
    master_key: Option<String>,
    secured: &'a secured::Secured,
    nats_url: String,
}

/// How long the demonstration deployment's end may take (NATS is still up then).
const DEMO_END_LIMIT: Duration = Duration::from_secs(10);

impl System<'_> {
    /// Declare the topology, start the demonstration deployment and every service, keep them
    /// running until shutdown, then stop them: ingest first, the rest after, the demonstration
    /// deployment ended last. Returns with NATS still up; the caller stops it.
    async fn run(self, shutdown: &Shutdown) -> anyhow::Result<()> {
        let secured = self.secured;
        let (config, sample_camera) = run_config(
            self.args.config.as_deref(),
            &self.nats_url,
            &secured.ca(),
            self.sample,
        )?;
        let config_path = self.state.join("run/lfr.toml");
        std::fs::create_dir_all(config_path.parent().unwrap())?;
        std::fs::write(&config_path, &config)?;

        // The topology keeper declares the topology now, and again whenever something goes missing.
        let limits = lfr_common::config::load::<lfr_common::config::Common>(Some(&config_path))?
            .bus
            .topology_limits();
        let keeper = async {
            let js = NatsArgs::from_config(&secured.nats_config(&self.nats_url, Identity::Bus))
                .jetstream_as("lfr-up-bus", Identity::Bus)
                .await?;
            lfr_common::topology::declare(&js, &limits).await?;
            anyhow::Ok(tokio::spawn(crate::bus::keep_declared(
                js,
                limits,
                Duration::from_secs(2),
            )))
        };
        let Some(keeper) = until_shutdown(shutdown, keeper).await else {
            return Ok(());
        };
        let keeper = keeper?;
        let admin = NatsArgs::from_config(&secured.nats_config(&self.nats_url, Identity::Admin));
        let admin_env = secured.write_admin_env(self.state, &self.nats_url)?;
        let anchor_key = audit_anchor_key(self.state, &admin_env)?;
        tracing::info!(file = %admin_env.display(), "for lfr commands against this system: source this file (the administrator's credentials)");

        let demo = async {
            match (sample_camera && !self.args.no_demo).then_some(()) {
                Some(()) => demo::start(&admin, self.sample, SAMPLE_CAMERA)
                    .await
                    .inspect_err(|e| tracing::warn!(error = %e, "no demonstration deployment"))
                    .ok(),
                None => None,
            }
        };
        // A demo cut short here is ended by the next start (demo::end_leftovers).
        let Some(demo) = until_shutdown(shutdown, demo).await else {
            keeper.abort();
            return Ok(());
        };

        let bin_dir = std::env::current_exe()?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut supervisors = Vec::new();
        for name in SERVICES {
            let binary = bin_dir.join(format!("lfr-{name}"));
            anyhow::ensure!(
                binary.exists(),
                "{} not found: build the workspace (cargo build --release)",
                binary.display()
            );
            let identity = Identity::of(name).expect("every service has an identity");
            let stop = Shutdown::new();
            let task = tokio::spawn(supervise(
                Service {
                    name,
                    binary,
                    config: config_path.clone(),
                    credentials: secured.credentials_file(identity),
                    master_key: self.master_key.clone(),
                    anchor_key: (name == "purge").then(|| anchor_key.clone()),
                },
                shutdown.clone(),
                stop.clone(),
            ));
            supervisors.push((stop, task));
        }
        tracing::info!(config = %config_path.display(), "lfr is up; Ctrl-C stops it");
        shutdown.requested().await;

        // Ingest first, so no new frames arrive while the stages finish what they hold.
        let mut supervisors = supervisors.into_iter();
        if let Some((stop, ingest)) = supervisors.next() {
            stop.trigger();
            let _ = ingest.await;
        }
        let rest: Vec<_> = supervisors.collect();
        for (stop, _) in &rest {
            stop.trigger();
        }
        for (_, task) in rest {
            let _ = task.await;
        }
        if let Some(demo) = demo {
            if tokio::time::timeout(DEMO_END_LIMIT, demo.end())
                .await
                .is_err()
            {
                tracing::warn!(
                    "demonstration deployment not ended in time; the next `lfr up` ends it"
                );
            }
        }
        keeper.abort();
        Ok(())
    }
}

/// `work`, or `None` if shutdown is requested first (it is then dropped where it stands).
async fn until_shutdown<T>(
    shutdown: &Shutdown,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        done = work => Some(done),
        _ = shutdown.requested() => None,
    }
}

/// The camera id of the sample camera.
const SAMPLE_CAMERA: &str = "sample";

/// The configuration for this run, as TOML text, and whether it plays the sample camera.
fn run_config(
    file: Option<&Path>,
    nats_url: &str,
    nats_ca: &Path,
    sample: &Path,
) -> anyhow::Result<(String, bool)> {
    let text = match file {
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?,
        None => DEFAULT_CONFIG.to_string(),
    };
    let mut config: toml::Table = text.parse()?;
    let nats = entry_table(&mut config, "nats");
    nats.insert("url".into(), nats_url.into());
    nats.insert("ca".into(), nats_ca.display().to_string().into());
    // Each service is given its own credentials file through the environment, never another's.
    nats.remove("credentials");
    let ingest = entry_table(&mut config, "ingest");
    let has_cameras = ingest
        .get("cameras")
        .and_then(|c| c.as_array())
        .is_some_and(|c| !c.is_empty());
    if !has_cameras {
        anyhow::ensure!(
            sample.is_dir(),
            "no camera configured and no sample camera at {} (run scripts/setup.sh, or pass --sample DIR)",
            sample.display()
        );
        let mut camera = toml::Table::new();
        camera.insert("id".into(), SAMPLE_CAMERA.into());
        camera.insert("source".into(), format!("dir:{}", sample.display()).into());
        camera.insert("fps".into(), 2.0.into());
        camera.insert("repeat".into(), true.into());
        ingest.insert("cameras".into(), toml::Value::Array(vec![camera.into()]));
        tracing::info!(folder = %sample.display(), "no camera configured: replaying the sample camera");
    }
    Ok((toml::to_string(&config)?, !has_cameras))
}

fn entry_table<'a>(config: &'a mut toml::Table, key: &str) -> &'a mut toml::Table {
    config
        .entry(key)
        .or_insert_with(|| toml::Value::Table(Default::default()))
        .as_table_mut()
        .expect("section is a table")
}

/// The purge service's audit anchor key, `<state>/audit-anchor.key` (made once, mode 0600), with
/// its public key added to `admin_env` for `lfr audit verify`. Returns the key file.
fn audit_anchor_key(state: &Path, admin_env: &Path) -> anyhow::Result<PathBuf> {
    let path = state.join("audit-anchor.key");
    let (key, created) = lfr_common::anchor::AnchorKey::load_or_create(&path)?;
    if created {
        tracing::warn!(path = %path.display(), "generated this box's audit anchor key; back it up apart from the store");
    }
    let mut env = std::fs::OpenOptions::new().append(true).open(admin_env)?;
    writeln!(env, "export LFR_AUDIT_ANCHOR_KEYS={}", key.public())?;
    Ok(path)
}

/// The environment variable the services read the master key from.
const MASTER_KEY_ENV: &str = "LFR_MASTER_KEY";

/// The master key to hand to the services: `None` when `LFR_MASTER_KEY` is set (they inherit it),
/// otherwise this box's own from `<state>/master.key`, generated there (mode 0600) the first time.
fn master_key(state: &Path) -> anyhow::Result<Option<String>> {
    if std::env::var_os(MASTER_KEY_ENV).is_some() {
        tracing::info!("services use the master key in {MASTER_KEY_ENV}");
        return Ok(None);
    }
    let path = state.join("master.key");
    let unusable = |why: &str| {
        anyhow::anyhow!(
            "{} {why}: it must hold the base64 of 32 bytes. Restore it from its backup (without it \
             the retained alerts cannot be read), or set {MASTER_KEY_ENV}",
            path.display()
        )
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let key = text.trim().to_string();
            if !looks_like_key(&key) {
                return Err(unusable("is not a master key"));
            }
            let mode = std::fs::metadata(&path)?.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "the master key file is readable by others: chmod 600 it");
            }
            Ok(Some(key))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(state)?;
            let mut bytes = [0u8; 32];
            std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
            let key = base64(&bytes);
            bytes.fill(0);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
            file.write_all(format!("{key}\n").as_bytes())?;
            file.sync_all()?;
            tracing::warn!(path = %path.display(), "no {MASTER_KEY_ENV} given: generated this box's master key; back it up, since without it the retained alerts cannot be read");
            Ok(Some(key))
        }
        Err(e) => Err(unusable(&format!("cannot be read ({e})"))),
    }
}

/// 44 characters of standard base64 ending in one `=`: the shape of 32 bytes.
fn looks_like_key(text: &str) -> bool {
    text.len() == 44
        && text.ends_with('=')
        && text[..43]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One service as `lfr up` runs it.
struct Service {
    name: &'static str,
    binary: PathBuf,
    config: PathBuf,
    credentials: PathBuf,
    master_key: Option<String>,
    anchor_key: Option<PathBuf>,
}

/// Keep one service running until `stop`, then stop it with SIGTERM (SIGKILL after 10 s). Once
/// `shutdown` (the whole system's) is requested, a service that exits is not started again: a
/// terminal's Ctrl-C reaches the services directly, before `stop` comes.
async fn supervise(service: Service, shutdown: Shutdown, stop: Shutdown) {
    let name = service.name;
    let mut pause = Duration::from_secs(1);
    while !shutdown.is_triggered() && !stop.is_triggered() {
        // faiss (match) and OpenBLAS read this once at start: their extra threads would only fight
        // the models for the cores of a small box.
        let mut command = Command::new(&service.binary);
        command
            .arg("--config")
            .arg(&service.config)
            .env("OMP_NUM_THREADS", "1")
            .env("LFR_NATS__CREDENTIALS", &service.credentials)
            .env_remove(lfr_identity::server::STORE_KEY_ENV)
            .kill_on_drop(true);
        if let Some(key) = &service.master_key {
            command.env(MASTER_KEY_ENV, key);
        }
        if let Some(file) = &service.anchor_key {
            command.env("LFR_PURGE__ANCHOR_KEY_FILE", file);
        }
        let mut child = match command.spawn() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(service = name, error = %e, "cannot start service");
                return;
            }
        };
        tracing::info!(service = name, pid = child.id(), "service started");
        tokio::select! {
            status = child.wait() => {
                if shutdown.is_triggered() || stop.is_triggered() {
                    tracing::info!(service = name, "service stopped");
                    return; // Ctrl-C reached the whole process group
                }
                report_exit(name, status);
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.requested() => return,
                    _ = stop.requested() => return,
                }
                pause = (pause * 2).min(Duration::from_secs(30));
            }
            _ = stop.requested() => {
                terminate(name, &mut child).await;
                return;
            }
        }
    }
}

fn report_exit(name: &str, status: std::io::Result<ExitStatus>) {
    match status {
        Ok(s) => tracing::error!(service = name, status = %s, "service exited; restarting"),
        Err(e) => tracing::error!(service = name, error = %e, "lost track of service; restarting"),
    }
}

async fn terminate(name: &str, child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill").arg(pid.to_string()).status().await;
        if tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .is_ok()
        {
            tracing::info!(service = name, "service stopped");
            return;
        }
        tracing::warn!(service = name, "service ignored SIGTERM; killing");
    }
    let _ = child.kill().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_standard_with_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
        assert_eq!(base64(b"fooba"), "Zm9vYmE=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
        let key = base64(&[7; 32]);
        assert!(looks_like_key(&key), "{key}");
        assert!(!looks_like_key(&key[1..]));
        assert!(!looks_like_key(&base64(&[7; 33])));
    }

    #[test]
    fn a_master_key_is_made_once_readable_only_by_its_owner() {
        if std::env::var_os(MASTER_KEY_ENV).is_some() {
            return; // the operator's key wins; nothing is generated
        }
        let state = tempfile::tempdir().unwrap();
        let state = state.path().join("state");
        let key = master_key(&state).unwrap().unwrap();
        assert!(looks_like_key(&key));
        let file = state.join("master.key");
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(master_key(&state).unwrap().unwrap(), key, "made once");
        std::fs::write(&file, "not a key\n").unwrap();
        let e = master_key(&state).unwrap_err().to_string();
        assert!(e.contains("master.key is not a master key"), "{e}");
    }
}
