//! The all-in-one system's bus, secured as in production: a throw-away CA and server certificate,
//! one nkey per component (made afresh for every run, under `<state>/run/bus`, mode 0600), the
//! server configuration rendered from the contract's permission matrix, and the JetStream store
//! encrypted with a key kept in `<state>/nats-store.key` (made once: the store outlives a run).

use lfr_common::config::NatsConfig;
use lfr_common::local_nats::Setup;
use lfr_identity::credentials::write_private;
use lfr_identity::server::{new_store_key, STORE_KEY_ENV};
use lfr_identity::{Credentials, ServerConfig, TlsFiles};
use lfr_schemas::permissions::Identity;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub struct Secured {
    credentials: Credentials,
    tls: TlsFiles,
    store_key: String,
}

impl Secured {
    /// New credentials and certificates for this run; the store key of this box.
    pub fn prepare(state: &Path) -> anyhow::Result<Secured> {
        let dir = state.join("run/bus");
        let mut identities = Identity::SERVICES.to_vec();
        identities.extend([Identity::Admin, Identity::Bus]);
        let credentials = Credentials::generate(&dir.join("creds"), &identities)?;
        let tls = lfr_identity::tls::generate(
            &dir.join("tls"),
            &["127.0.0.1".into(), "localhost".into()],
        )?;
        Ok(Secured {
            credentials,
            tls,
            store_key: store_key(state)?,
        })
    }

    /// How the server runs.
    pub fn setup(&self) -> Setup {
        Setup {
            config: ServerConfig::secured(self.tls.clone(), self.credentials.clone()).render(),
            env: vec![(STORE_KEY_ENV.into(), self.store_key.clone())],
            tls: true,
        }
    }

    pub fn ca(&self) -> PathBuf {
        self.tls.ca.clone()
    }

    pub fn credentials_file(&self, identity: Identity) -> PathBuf {
        self.credentials.file(identity)
    }

    pub fn nats_config(&self, url: &str, identity: Identity) -> NatsConfig {
        NatsConfig {
            url: url.into(),
            credentials: Some(self.credentials_file(identity)),
            ca: Some(self.ca()),
            ..Default::default()
        }
    }

    /// `<state>/run/admin.env`: what an operator sources to run `lfr` commands against this
    /// system as the administrator.
    pub fn write_admin_env(&self, state: &Path, url: &str) -> anyhow::Result<PathBuf> {
        let path = state.join("run/admin.env");
        let text = format!(
            "export LFR_NATS__URL={url}\nexport LFR_NATS__CA={}\nexport LFR_NATS__CREDENTIALS={}\n",
            self.ca().display(),
            self.credentials_file(Identity::Admin).display()
        );
        write_private(&path, text.as_bytes())?;
        Ok(path)
    }
}

/// The store's encryption key: `<state>/nats-store.key`, made once (mode 0600). Lose it and the
/// stored alerts, watch lists and audit log cannot be read by NATS again.
fn store_key(state: &Path) -> anyhow::Result<String> {
    let path = state.join("nats-store.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let key = text.trim().to_string();
            anyhow::ensure!(
                key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()),
                "{} is not a store key (64 hex digits); restore it from its backup",
                path.display()
            );
            let mode = std::fs::metadata(&path)?.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "the NATS store key is readable by others: chmod 600 it");
            }
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(state)?;
            let key = new_store_key()?;
            write_private(&path, format!("{key}\n").as_bytes())?;
            tracing::warn!(path = %path.display(), "generated this box's NATS store encryption key; back it up with the master key");
            Ok(key)
        }
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}
