//! The master key (key-encryption key): 32 random bytes from the environment, never stored by lfr
//! and never printed.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Generate, Key, KeyInit};
use chacha20poly1305::XChaCha20Poly1305;
use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};
use std::ffi::OsStr;
use std::fmt;
use zeroize::{Zeroize, Zeroizing};

/// The environment variable that carries the master key: base64 of 32 bytes.
pub const MASTER_KEY_ENV: &str = "LFR_MASTER_KEY";

/// The key that wraps every deployment's data key. `Debug` shows its fingerprint only.
#[derive(Clone)]
pub struct MasterKey {
    key: Zeroizing<[u8; 32]>,
    fingerprint: String,
}

/// Why there is no usable master key. Never contains any of the key's characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MasterKeyError {
    #[error(
        "{MASTER_KEY_ENV} is not set: lfr keeps alert images only encrypted and needs the master \
         key (base64 of 32 random bytes, e.g. `head -c 32 /dev/urandom | base64`; in Kubernetes \
         from a Secret). See docs/encryption.md"
    )]
    Missing,
    #[error(
        "{MASTER_KEY_ENV} is malformed: {0}; it must be the base64 of exactly 32 random bytes \
         (e.g. `head -c 32 /dev/urandom | base64`). See docs/encryption.md"
    )]
    Malformed(String),
}

impl MasterKey {
    /// Exactly 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<MasterKey, MasterKeyError> {
        let key: [u8; 32] = bytes.try_into().map_err(|_| {
            MasterKeyError::Malformed(format!("it decodes to {} bytes, not 32", bytes.len()))
        })?;
        Ok(MasterKey::new(Zeroizing::new(key)))
    }

    /// Standard base64 (with padding) of 32 bytes; surrounding whitespace is ignored.
    pub fn from_base64(text: &str) -> Result<MasterKey, MasterKeyError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(MasterKeyError::Malformed("it is empty".into()));
        }
        // The decoder's own error names the offending character: say nothing of the key.
        let bytes = Zeroizing::new(
            STANDARD
                .decode(text)
                .map_err(|_| MasterKeyError::Malformed("it is not valid base64".into()))?,
        );
        MasterKey::from_bytes(&bytes)
    }

    /// From `LFR_MASTER_KEY`.
    pub fn from_env() -> Result<MasterKey, MasterKeyError> {
        MasterKey::from_env_value(std::env::var_os(MASTER_KEY_ENV).as_deref())
    }

    /// What [`MasterKey::from_env`] does with the variable's value (`None`: not set).
    pub fn from_env_value(value: Option<&OsStr>) -> Result<MasterKey, MasterKeyError> {
        let value = value.ok_or(MasterKeyError::Missing)?;
        let text = value
            .to_str()
            .ok_or_else(|| MasterKeyError::Malformed("it is not valid UTF-8".into()))?;
        MasterKey::from_base64(text)
    }

    /// The key a service was configured with, or else the one in `LFR_MASTER_KEY`.
    pub fn configured(configured: Option<MasterKey>) -> Result<MasterKey, MasterKeyError> {
        match configured {
            Some(key) => Ok(key),
            None => MasterKey::from_env(),
        }
    }

    /// A new random key (tests, and a single box without a key of its own).
    pub fn generate() -> MasterKey {
        let mut key = Key::<XChaCha20Poly1305>::generate();
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(&key);
        key.as_mut_slice().zeroize();
        MasterKey::new(bytes)
    }

    /// The key as `LFR_MASTER_KEY` holds it. Handle with care: this is the secret itself.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.key.as_slice()))
    }

    /// 16 hex digits that identify the key without revealing it: stored beside every wrapped data
    /// key, so a service started with another master key says so plainly.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub(crate) fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new_from_slice(self.key.as_slice()).expect("a master key is 32 bytes")
    }

    fn new(key: Zeroizing<[u8; 32]>) -> MasterKey {
        let mut h = Sha256::new();
        h.update(b"lfr-master-key-fingerprint-v1|");
        h.update(key.as_slice());
        let fingerprint = h.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        MasterKey { key, fingerprint }
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.fingerprint)
    }
}

/// From the base64 text, so a service's configuration can carry `master_key` (which the
/// environment's `LFR_MASTER_KEY` fills in through the usual `LFR_` overrides).
impl<'de> Deserialize<'de> for MasterKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Zeroizing::new(String::deserialize(d)?);
        MasterKey::from_base64(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_of_32_bytes_round_trips() {
        let key = MasterKey::generate();
        let text = key.to_base64();
        assert_eq!(text.len(), 44);
        let again = MasterKey::from_base64(&format!("  {}\n", text.as_str())).unwrap();
        assert_eq!(again.fingerprint(), key.fingerprint());
        assert_eq!(
            MasterKey::from_bytes(&[7; 32]).unwrap().fingerprint(),
            MasterKey::from_bytes(&[7; 32]).unwrap().fingerprint()
        );
        assert_ne!(
            MasterKey::from_bytes(&[7; 32]).unwrap().fingerprint(),
            MasterKey::from_bytes(&[8; 32]).unwrap().fingerprint()
        );
    }

    #[test]
    fn a_missing_or_malformed_key_is_refused_with_a_clear_message() {
        let missing = MasterKey::from_env_value(None).unwrap_err();
        assert_eq!(missing, MasterKeyError::Missing);
        assert!(missing.to_string().contains("LFR_MASTER_KEY is not set"));

        let short = STANDARD.encode([1u8; 16]);
        for (value, why) in [
            ("", "empty"),
            ("   ", "empty"),
            ("not base64 at all!", "not valid base64"),
            (short.as_str(), "16 bytes, not 32"),
        ] {
            let e = MasterKey::from_env_value(Some(OsStr::new(value))).unwrap_err();
            let message = e.to_string();
            assert!(
                message.contains("LFR_MASTER_KEY is malformed") && message.contains(why),
                "{value:?}: {message}"
            );
        }
    }

    #[test]
    fn the_key_is_never_printed() {
        let key = MasterKey::from_bytes(&[0x41; 32]).unwrap();
        let b64 = key.to_base64();
        let printed = format!("{key:?}");
        assert!(!printed.contains(b64.as_str()) && !printed.contains("AAAA"));
        assert!(printed.contains(key.fingerprint()));

        // A malformed key's error names none of its characters.
        let secret = "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t-xx";
        let e = MasterKey::from_base64(secret).unwrap_err().to_string();
        assert!(!e.contains("s3cr3t"), "{e}");
    }

    #[test]
    fn configuration_carries_the_key_as_base64() {
        #[derive(Deserialize)]
        struct Config {
            master_key: Option<MasterKey>,
        }
        let key = MasterKey::generate();
        let json = format!(r#"{{"master_key": "{}"}}"#, key.to_base64().as_str());
        let c: Config = serde_json::from_str(&json).unwrap();
        assert_eq!(c.master_key.unwrap().fingerprint(), key.fingerprint());
        let e = serde_json::from_str::<Config>(r#"{"master_key": "c2hvcnQ="}"#)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("LFR_MASTER_KEY is malformed"), "{e}");
    }
}
