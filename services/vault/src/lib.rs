//! # lfr-vault: encryption at rest for retained alert data, with crypto-shredding
//!
//! What lfr keeps on disk about a person (the images of a candidate alert on ALERTS, retained for
//! weeks, or longer under legal hold) is stored only encrypted:
//!
//! - Each deployment has its own **data key** (32 random bytes), created on first use.
//! - The data key is stored in the JetStream KV bucket [`BUCKET`] (`lfr-keys`, file storage)
//!   only **wrapped**: encrypted under the **master key** ([`MasterKey`], from `LFR_MASTER_KEY`),
//!   which lfr never stores. Whoever copies the NATS store without the master key reads nothing.
//! - Data is sealed with XChaCha20-Poly1305 (random 192-bit nonces) into a [`Sealed`], with
//!   associated data that binds it to its deployment and purpose (for alerts: [`AlertImage::aad`],
//!   `lfr-alert-v1|<deployment>|<alert id>|probe`), so a ciphertext moved to another alert or
//!   another field does not open.
//! - [`Vault::destroy`] **crypto-shreds** a deployment: its wrapped key is securely erased from
//!   the store (JetStream overwrites the bytes) and dropped from every vault's memory. From then
//!   on nothing sealed for that deployment can be opened by anyone, wherever copies of the
//!   ciphertext (backups, replicas, old disks) may survive.
//!
//! The purge service needs no master key to crypto-shred: a [`Shredder`] destroys keys it cannot
//! read.
//!
//! [`Vault::rewrap`] rotates the master key: every data key is re-wrapped under the new one and
//! every copy wrapped under the old one is securely erased, so a leaked old master key opens
//! nothing in the store any more (the `rotate` module).
//!
//! Replicas agree on one key per deployment: the key is created with optimistic concurrency
//! (expected last revision), and a replica that loses the race reads and uses the winner's key.
//! Unwrapped keys are cached in memory; each vault watches the bucket and forgets a key the moment
//! any replica destroys it. See `docs/encryption.md`.

mod master;
mod rotate;

pub use master::{weakness, MasterKey, MasterKeyError, MASTER_KEY_ENV, MIN_DISTINCT_BYTES};
pub use rotate::Rotation;

use async_nats::jetstream::{self, kv, stream};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, Generate, Key, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use futures::StreamExt;
use lfr_schemas::{subjects, Sealed, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use zeroize::{Zeroize, Zeroizing};

/// The KV bucket of wrapped data keys, one per deployment (key: the deployment id).
pub const BUCKET: &str = lfr_schemas::streams::buckets::KEYS;

const ALGORITHM: &str = "XChaCha20-Poly1305";

/// The three images of a candidate alert, each sealed with its own associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertImage {
    Probe,
    Context,
    Reference,
}

impl AlertImage {
    pub const ALL: [AlertImage; 3] = [
        AlertImage::Probe,
        AlertImage::Context,
        AlertImage::Reference,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertImage::Probe => "probe",
            AlertImage::Context => "context",
            AlertImage::Reference => "reference",
        }
    }

    /// `lfr-alert-v1|<deployment>|<alert id>|<probe|context|reference>`: what the matcher seals
    /// the image with and what the console must present to open it.
    pub fn aad(self, deployment: &str, alert_id: &str) -> Vec<u8> {
        format!("lfr-alert-v1|{deployment}|{alert_id}|{}", self.as_str()).into_bytes()
    }
}

/// Why sealing or opening failed. Never carries key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("invalid key id {0:?}: a deployment id (1-64 of A-Z a-z 0-9 - _)")]
    InvalidKeyId(String),
    #[error("no data key exists for deployment {key}: nothing was ever sealed for it")]
    NoKey { key: String },
    #[error(
        "the data key of deployment {key} was destroyed (crypto-shredded): what was sealed under it \
         can never be opened"
    )]
    Destroyed { key: String },
    #[error(
        "the data key of deployment {key} is wrapped under master key {wrapped_under}, but this \
         service has master key {have}: every service must be given the same LFR_MASTER_KEY"
    )]
    WrongMasterKey {
        key: String,
        wrapped_under: String,
        have: String,
    },
    #[error(
        "the stored data key of deployment {key} does not open under the master key: damaged or \
         altered in the key store"
    )]
    CorruptKey { key: String },
    #[error(
        "sealed data of deployment {key} does not open: wrong associated data (another alert or \
         image), altered, or sealed under another key"
    )]
    Unsealable { key: String },
    #[error("key store ({BUCKET}): {0}")]
    Store(String),
}

impl VaultError {
    /// The sealed data can never be opened: its key was destroyed, or never existed. Anything
    /// else is a fault to retry ([`VaultError::Store`]) or to investigate.
    pub fn is_gone(&self) -> bool {
        matches!(
            self,
            VaultError::Destroyed { .. } | VaultError::NoKey { .. }
        )
    }
}

fn store_error(what: &str, e: impl std::fmt::Display) -> VaultError {
    VaultError::Store(format!("{what}: {e}"))
}

/// A data key as stored in [`BUCKET`]: encrypted under the master key, with the associated data
/// `lfr-dek-v1|<deployment>` (a wrapped key copied under another deployment's name does not open).
#[derive(Serialize, Deserialize)]
struct WrappedKey {
    version: u8,
    algorithm: String,
    /// Fingerprint of the master key that wrapped it.
    master_key: String,
    /// base64 of the 24-byte nonce.
    nonce: String,
    /// base64 of the encrypted 32-byte key and its tag.
    wrapped: String,
    created_at: Timestamp,
}

/// An unwrapped data key, and the revision of the stored record it came from.
struct DataKey {
    cipher: XChaCha20Poly1305,
    revision: u64,
}

/// Seals and opens data under per-deployment data keys; destroys keys. Cheap to clone: clones
/// share the bucket, the cache and its watcher.
#[derive(Clone)]
pub struct Vault {
    inner: Arc<Inner>,
}

struct Inner {
    js: jetstream::Context,
    master: MasterKey,
    bucket: tokio::sync::OnceCell<Bucket>,
    state: Mutex<CacheState>,
    watcher: Mutex<Option<tokio::task::AbortHandle>>,
}

#[derive(Clone)]
struct Bucket {
    kv: kv::Store,
    stream: stream::Stream,
}

#[derive(Default)]
struct CacheState {
    keys: HashMap<String, Arc<DataKey>>,
    /// The latest revision of each key the watcher has seen: a key read before a destruction the
    /// watcher already saw is used once but never cached.
    latest: HashMap<String, u64>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let watcher = self.watcher.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(handle) = watcher.take() {
            handle.abort();
        }
    }
}

impl Vault {
    /// A vault that opens its bucket on first use (for a service that must start while NATS
    /// is still coming up). [`Vault::open`] opens it at once.
    pub fn new(js: &jetstream::Context, master: MasterKey) -> Vault {
        Vault {
            inner: Arc::new(Inner {
                js: js.clone(),
                master,
                bucket: tokio::sync::OnceCell::new(),
                state: Mutex::default(),
                watcher: Mutex::new(None),
            }),
        }
    }

    /// Open the key bucket (declared by `lfr bus init`) and start watching it.
    pub async fn open(js: &jetstream::Context, master: MasterKey) -> Result<Vault, VaultError> {
        let vault = Vault::new(js, master);
        vault.bucket().await?;
        Ok(vault)
    }

    /// The fingerprint of this vault's master key (safe to log).
    pub fn master_fingerprint(&self) -> &str {
        self.inner.master.fingerprint()
    }

    /// Encrypt `plaintext` under `deployment`'s data key (created on first use), bound to `aad`.
    pub async fn seal(
        &self,
        deployment: &str,
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Sealed, VaultError> {
        let key = self.data_key(deployment, true).await?;
        let nonce = XNonce::generate();
        let ciphertext = key
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &bound(deployment, aad),
                },
            )
            .map_err(|_| VaultError::Unsealable {
                key: deployment.into(),
            })?;
        Ok(Sealed {
            key: deployment.into(),
            nonce: nonce.to_vec(),
            ciphertext: ciphertext.into(),
        })
    }

    /// Decrypt what [`Vault::seal`] sealed, presenting the same `aad`. Never creates a key.
    pub async fn unseal(&self, sealed: &Sealed, aad: &[u8]) -> Result<Vec<u8>, VaultError> {
        let unsealable = || VaultError::Unsealable {
            key: sealed.key.clone(),
        };
        let key = self.data_key(&sealed.key, false).await?;
        let nonce = XNonce::try_from(sealed.nonce.as_slice()).map_err(|_| unsealable())?;
        key.cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &bound(&sealed.key, aad),
                },
            )
            .map_err(|_| unsealable())
    }

    /// Whether `deployment` has a data key (false once destroyed).
    pub async fn exists(&self, deployment: &str) -> Result<bool, VaultError> {
        self.bucket().await?.exists(deployment).await
    }

    /// The deployments that have a data key.
    pub async fn deployments(&self) -> Result<Vec<String>, VaultError> {
        self.bucket().await?.deployments().await
    }

    /// Crypto-shred `deployment`: securely erase its wrapped data key from the store (JetStream
    /// overwrites the stored bytes), leave a purge marker, and forget the key here (other vaults
    /// forget it as soon as their watch sees the marker). Afterwards nothing sealed for the
    /// deployment can be opened by anyone. Idempotent: `Ok(false)` when there was no key.
    ///
    /// Sealing for the deployment again afterwards creates a new, unrelated key.
    pub async fn destroy(&self, deployment: &str) -> Result<bool, VaultError> {
        let destroyed = self.bucket().await?.destroy(deployment).await;
        self.state().keys.remove(deployment);
        destroyed
    }

    /// Master-key rotation: re-wrap every data key under `new`, and securely erase every copy
    /// wrapped under this vault's master key, so that it opens nothing in the store afterwards.
    /// Each key is unwrapped with this vault's master key and stored again wrapped under `new`
    /// with optimistic concurrency, staged first so that no interruption loses it; a run after an
    /// interrupted one finishes it, and keys already under `new` are left alone. Sealed data is not
    /// touched: the data keys themselves do not change. Offline: stop every service holding the
    /// master key first. See the `rotate` module and `docs/encryption.md`.
    pub async fn rewrap(&self, new: &MasterKey) -> Result<Rotation, VaultError> {
        let bucket = self.bucket().await?;
        let rotation = rotate::rotate(bucket, &self.inner.master, new).await;
        self.state().keys.clear();
        rotation
    }

    /// The deployment's data key: cached, read and unwrapped, or (with `create`) made, wrapped and
    /// stored unless another replica stored one first.
    async fn data_key(&self, deployment: &str, create: bool) -> Result<Arc<DataKey>, VaultError> {
        check_id(deployment)?;
        if let Some(key) = self.state().keys.get(deployment) {
            return Ok(key.clone());
        }
        let bucket = self.bucket().await?;
        for _ in 0..5 {
            let entry = bucket
                .kv
                .entry(deployment)
                .await
                .map_err(|e| store_error("read", e))?;
            let expected = match entry {
                Some(e) if e.operation == kv::Operation::Put => {
                    let record: WrappedKey =
                        serde_json::from_slice(&e.value).map_err(|_| VaultError::CorruptKey {
                            key: deployment.into(),
                        })?;
                    let key = unwrap_key(&self.inner.master, deployment, &record)?;
                    return Ok(self.remember(deployment, cipher(&key), e.revision));
                }
                Some(_) if !create => {
                    return Err(VaultError::Destroyed {
                        key: deployment.into(),
                    });
                }
                None if !create => {
                    return Err(VaultError::NoKey {
                        key: deployment.into(),
                    })
                }
                Some(marker) => marker.revision,
                None => 0,
            };
            let mut key = Zeroizing::new([0u8; 32]);
            let mut fresh = Key::<XChaCha20Poly1305>::generate();
            key.copy_from_slice(&fresh);
            fresh.as_mut_slice().zeroize();
            let record = wrap_key(&self.inner.master, deployment, &key, Timestamp::now());
            // Only if nobody stored a key meanwhile; otherwise read theirs.
            match bucket.kv.update(deployment, record.into(), expected).await {
                Ok(revision) => {
                    tracing::info!(%deployment, master_key = %self.master_fingerprint(), "data key created");
                    return Ok(self.remember(deployment, cipher(&key), revision));
                }
                Err(e) => {
                    tracing::debug!(%deployment, error = %e, "another replica stored the data key first");
                }
            }
        }
        Err(VaultError::Store(format!(
            "the data key of {deployment} kept changing while it was being created"
        )))
    }

    fn remember(&self, deployment: &str, cipher: XChaCha20Poly1305, revision: u64) -> Arc<DataKey> {
        let key = Arc::new(DataKey { cipher, revision });
        let mut state = self.state();
        let stale = state
            .latest
            .get(deployment)
            .is_some_and(|seen| *seen > revision);
        if !stale {
            state.keys.insert(deployment.into(), key.clone());
        }
        key
    }

    fn state(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn bucket(&self) -> Result<&Bucket, VaultError> {
        self.inner
            .bucket
            .get_or_try_init(|| async {
                let bucket = open_bucket(&self.inner.js).await?;
                let watcher = tokio::spawn(watch(Arc::downgrade(&self.inner), bucket.kv.clone()));
                *self.inner.watcher.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(watcher.abort_handle());
                Ok(bucket)
            })
            .await
    }
}

/// Destroys data keys without being able to read them: for the purge service, which needs no
/// master key to crypto-shred a deployment. Vaults holding the key forget it as soon as their
/// watch of the bucket sees the destruction.
#[derive(Clone)]
pub struct Shredder {
    bucket: Bucket,
}

impl Shredder {
    /// Open the key bucket (declared by `lfr bus init`).
    pub async fn open(js: &jetstream::Context) -> Result<Shredder, VaultError> {
        Ok(Shredder {
            bucket: open_bucket(js).await?,
        })
    }

    /// As [`Vault::destroy`].
    pub async fn destroy(&self, deployment: &str) -> Result<bool, VaultError> {
        self.bucket.destroy(deployment).await
    }

    /// As [`Vault::exists`].
    pub async fn exists(&self, deployment: &str) -> Result<bool, VaultError> {
        self.bucket.exists(deployment).await
    }

    /// As [`Vault::deployments`].
    pub async fn deployments(&self) -> Result<Vec<String>, VaultError> {
        self.bucket.deployments().await
    }
}

impl Bucket {
    async fn exists(&self, deployment: &str) -> Result<bool, VaultError> {
        check_id(deployment)?;
        let entry = self
            .kv
            .entry(deployment)
            .await
            .map_err(|e| store_error("read", e))?;
        Ok(entry.is_some_and(|e| e.operation == kv::Operation::Put))
    }

    async fn deployments(&self) -> Result<Vec<String>, VaultError> {
        let mut keys = self
            .kv
            .keys()
            .await
            .map_err(|e| store_error("list keys", e))?;
        let mut out = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| store_error("list keys", e))?;
            // Deployment ids only: not the copies a rotation stages (`rewrap.<deployment>`).
            if check_id(&key).is_ok() {
                out.push(key);
            }
        }
        out.sort();
        Ok(out)
    }

    async fn destroy(&self, deployment: &str) -> Result<bool, VaultError> {
        check_id(deployment)?;
        // A copy an interrupted rotation staged must not outlive the key.
        self.erase_every_copy(&rotate::staging_key(deployment))
            .await?;
        let erased = self.erase_every_copy(deployment).await?;
        if erased > 0 {
            self.kv
                .purge(deployment)
                .await
                .map_err(|e| store_error("purge marker", e))?;
            tracing::info!(%deployment, "data key destroyed: what was sealed for the deployment can no longer be opened");
        }
        Ok(erased > 0)
    }

    /// Securely erase every stored revision of `key`; how many there were.
    async fn erase_every_copy(&self, key: &str) -> Result<usize, VaultError> {
        let mut erased = 0;
        // The bucket keeps one revision per key; loop in case an older bucket kept more.
        loop {
            let entry = self
                .kv
                .entry(key)
                .await
                .map_err(|e| store_error("read", e))?;
            let Some(entry) = entry.filter(|e| e.operation == kv::Operation::Put) else {
                break;
            };
            if let Err(e) = self.stream.delete_message(entry.revision).await {
                // Someone else may have erased it meanwhile: read again, fail if it is still there.
                let still = self
                    .kv
                    .entry(key)
                    .await
                    .map_err(|e| store_error("read", e))?;
                if still.is_some_and(|s| s.revision == entry.revision) {
                    return Err(VaultError::Store(format!("secure erasure refused: {e}")));
                }
            } else {
                erased += 1;
            }
        }
        Ok(erased)
    }
}

/// The bucket is a KV bucket by JetStream's conventions, declared by the administrator (`lfr bus
/// init`) as a stream that allows deletes: destroying a key erases its message securely
/// (`deny_delete` would forbid that). See `lfr_schemas::streams`.
async fn open_bucket(js: &jetstream::Context) -> Result<Bucket, VaultError> {
    let stream_name = lfr_schemas::streams::buckets::stream(BUCKET);
    let kv = js
        .get_key_value(BUCKET)
        .await
        .map_err(|e| store_error("open", e))?;
    let stream = js
        .get_stream(stream_name)
        .await
        .map_err(|e| store_error("open", e))?;
    Ok(Bucket { kv, stream })
}

/// How long one watch of the key bucket is trusted before it is opened again (and the cache
/// forgotten): after NATS restarts, a watch can stall without ending (its recovery needs rights a
/// least-privilege identity lacks), and a destroyed key must not stay usable for long.
const WATCH_RENEW: Duration = Duration::from_secs(60);

/// Forget cached keys that changed or were destroyed anywhere. When the watch (re)starts, every
/// cached key is forgotten: a destruction may have happened while nobody was watching. It is
/// restarted at least every [`WATCH_RENEW`].
async fn watch(inner: Weak<Inner>, kv: kv::Store) {
    loop {
        match kv.watch_all().await {
            Ok(mut changes) => {
                match inner.upgrade() {
                    Some(inner) => inner
                        .state
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .keys
                        .clear(),
                    None => return,
                }
                let renew_at = tokio::time::Instant::now() + WATCH_RENEW;
                while let Ok(Some(change)) = tokio::time::timeout_at(renew_at, changes.next()).await
                {
                    let Ok(change) = change else { break };
                    let Some(inner) = inner.upgrade() else { return };
                    let mut state = inner.state.lock().unwrap_or_else(|e| e.into_inner());
                    let seen = state.latest.entry(change.key.clone()).or_default();
                    *seen = (*seen).max(change.revision);
                    let outdated = state.keys.get(&change.key).is_some_and(|k| {
                        change.operation != kv::Operation::Put || k.revision != change.revision
                    });
                    if outdated {
                        state.keys.remove(&change.key);
                        tracing::debug!(deployment = %change.key, "cached data key forgotten");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot watch the key store; retrying"),
        }
        if inner.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn check_id(deployment: &str) -> Result<(), VaultError> {
    subjects::validate_token("deployment", deployment)
        .map_err(|_| VaultError::InvalidKeyId(deployment.into()))
}

/// The associated data actually authenticated: the vault's own prefix and the key id, then the
/// caller's, so nothing sealed here can be confused with anything sealed elsewhere.
fn bound(key: &str, aad: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + key.len() + aad.len());
    out.extend_from_slice(b"lfr-vault-v1|");
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(aad);
    out
}

fn wrap_aad(deployment: &str) -> Vec<u8> {
    format!("lfr-dek-v1|{deployment}").into_bytes()
}

fn cipher(key: &[u8; 32]) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new_from_slice(key).expect("a data key is 32 bytes")
}

fn wrap_key(
    master: &MasterKey,
    deployment: &str,
    key: &[u8; 32],
    created_at: Timestamp,
) -> Vec<u8> {
    let nonce = XNonce::generate();
    let wrapped = master
        .cipher()
        .encrypt(
            &nonce,
            Payload {
                msg: key,
                aad: &wrap_aad(deployment),
            },
        )
        .expect("wrapping 32 bytes cannot fail");
    let record = WrappedKey {
        version: 1,
        algorithm: ALGORITHM.into(),
        master_key: master.fingerprint().into(),
        nonce: STANDARD.encode(nonce),
        wrapped: STANDARD.encode(wrapped),
        created_at,
    };
    serde_json::to_vec(&record).expect("a wrapped key serialises")
}

fn unwrap_key(
    master: &MasterKey,
    deployment: &str,
    record: &WrappedKey,
) -> Result<Zeroizing<[u8; 32]>, VaultError> {
    let corrupt = || VaultError::CorruptKey {
        key: deployment.into(),
    };
    if record.version != 1 || record.algorithm != ALGORITHM {
        return Err(corrupt());
    }
    if record.master_key != master.fingerprint() {
        return Err(VaultError::WrongMasterKey {
            key: deployment.into(),
            wrapped_under: record.master_key.clone(),
            have: master.fingerprint().into(),
        });
    }
    let nonce = STANDARD.decode(&record.nonce).map_err(|_| corrupt())?;
    let nonce = XNonce::try_from(nonce.as_slice()).map_err(|_| corrupt())?;
    let wrapped = STANDARD.decode(&record.wrapped).map_err(|_| corrupt())?;
    let plain = Zeroizing::new(
        master
            .cipher()
            .decrypt(
                &nonce,
                Payload {
                    msg: &wrapped,
                    aad: &wrap_aad(deployment),
                },
            )
            .map_err(|_| corrupt())?,
    );
    let mut key = Zeroizing::new([0u8; 32]);
    if plain.len() != 32 {
        return Err(corrupt());
    }
    key.copy_from_slice(&plain);
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_images_have_distinct_associated_data() {
        let aad: Vec<Vec<u8>> = AlertImage::ALL
            .iter()
            .map(|i| i.aad("match-day", "a1"))
            .collect();
        assert_eq!(aad[0], b"lfr-alert-v1|match-day|a1|probe");
        assert_ne!(aad[0], aad[1]);
        assert_ne!(aad[1], aad[2]);
        assert_ne!(
            AlertImage::Probe.aad("match-day", "a1"),
            AlertImage::Probe.aad("match-day", "a2")
        );
    }

    #[test]
    fn a_wrapped_key_opens_only_under_its_master_key_and_deployment() {
        let master = MasterKey::generate();
        let key = Zeroizing::new([9u8; 32]);
        let record: WrappedKey =
            serde_json::from_slice(&wrap_key(&master, "d1", &key, Timestamp(1))).unwrap();
        assert_eq!(*unwrap_key(&master, "d1", &record).unwrap(), [9u8; 32]);
        assert!(matches!(
            unwrap_key(&master, "d2", &record),
            Err(VaultError::CorruptKey { .. })
        ));
        assert!(matches!(
            unwrap_key(&MasterKey::generate(), "d1", &record),
            Err(VaultError::WrongMasterKey { .. })
        ));
        // A forged fingerprint does not help: the key still does not authenticate.
        let other = MasterKey::generate();
        let forged = WrappedKey {
            master_key: other.fingerprint().into(),
            ..serde_json::from_slice(&wrap_key(&master, "d1", &key, Timestamp(1))).unwrap()
        };
        assert!(matches!(
            unwrap_key(&other, "d1", &forged),
            Err(VaultError::CorruptKey { .. })
        ));
    }
}
