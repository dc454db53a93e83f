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

/// Why there is no usable master key. Never contains any of the key's characters; names the
/// environment variable it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MasterKeyError {
    #[error(
        "{var} is not set: lfr keeps alert images only encrypted and needs the master key (base64 \
         of 32 random bytes, e.g. `head -c 32 /dev/urandom | base64`; in Kubernetes from a \
         Secret). See docs/encryption.md"
    )]
    Missing { var: &'static str },
    #[error(
        "{var} is malformed: {why}; it must be the base64 of exactly 32 random bytes (e.g. \
         `head -c 32 /dev/urandom | base64`). See docs/encryption.md"
    )]
    Malformed { var: &'static str, why: String },
    #[error(
        "{var} is too weak: {why}. A master key must be 32 random bytes from a secure generator \
         (e.g. `head -c 32 /dev/urandom | base64`), never a pattern, a placeholder or a \
         password. See docs/encryption.md"
    )]
    Weak { var: &'static str, why: String },
}

impl MasterKeyError {
    /// The same error, naming `var` as where the key came from.
    fn naming(self, var: &'static str) -> MasterKeyError {
        match self {
            MasterKeyError::Missing { .. } => MasterKeyError::Missing { var },
            MasterKeyError::Malformed { why, .. } => MasterKeyError::Malformed { var, why },
            MasterKeyError::Weak { why, .. } => MasterKeyError::Weak { var, why },
        }
    }
}

/// Fewer distinct byte values than this in 32 bytes is a pattern, not a key: 32 random bytes have
/// about 30, and fewer than 8 happens by chance with a probability under 10^-35.
pub const MIN_DISTINCT_BYTES: usize = 8;

/// Why `key` cannot be a key drawn at random, if it cannot: all zeros, one repeated byte, a short
/// pattern, a counter, or text (a password or passphrase typed in, base64-encoded). Each of these
/// happens by chance with a probability under 10^-13; the message names no byte of the key.
pub fn weakness(key: &[u8; 32]) -> Option<String> {
    let mut seen = [false; 256];
    key.iter().for_each(|&b| seen[b as usize] = true);
    let distinct = seen.iter().filter(|&&s| s).count();
    if distinct == 1 {
        return Some("it is one byte repeated 32 times (an all-zero or placeholder key)".into());
    }
    if distinct < MIN_DISTINCT_BYTES {
        return Some(format!(
            "it has only {distinct} distinct byte values in 32 (random keys have about 30)"
        ));
    }
    let step = key[1].wrapping_sub(key[0]);
    if key.windows(2).all(|w| w[1].wrapping_sub(w[0]) == step) {
        return Some("it is a counting sequence".into());
    }
    if key.iter().all(|b| (0x20..0x7f).contains(b)) {
        return Some(
            "it is printable text (a password or passphrase encoded as base64), not random bytes"
                .into(),
        );
    }
    None
}

impl MasterKey {
    /// Exactly 32 bytes, none of the patterns [`weakness`] refuses.
    pub fn from_bytes(bytes: &[u8]) -> Result<MasterKey, MasterKeyError> {
        let key: Zeroizing<[u8; 32]> =
            Zeroizing::new(bytes.try_into().map_err(|_| MasterKeyError::Malformed {
                var: MASTER_KEY_ENV,
                why: format!("it decodes to {} bytes, not 32", bytes.len()),
            })?);
        if let Some(why) = weakness(&key) {
            return Err(MasterKeyError::Weak {
                var: MASTER_KEY_ENV,
                why,
            });
        }
        Ok(MasterKey::new(key))
    }

    /// Standard base64 (with padding) of 32 bytes; surrounding whitespace is ignored.
    pub fn from_base64(text: &str) -> Result<MasterKey, MasterKeyError> {
        let text = text.trim();
        let malformed = |why: &str| MasterKeyError::Malformed {
            var: MASTER_KEY_ENV,
            why: why.into(),
        };
        if text.is_empty() {
            return Err(malformed("it is empty"));
        }
        // The decoder's own error names the offending character: say nothing of the key.
        let bytes = Zeroizing::new(
            STANDARD
                .decode(text)
                .map_err(|_| malformed("it is not valid base64"))?,
        );
        MasterKey::from_bytes(&bytes)
    }

    /// From `LFR_MASTER_KEY`.
    pub fn from_env() -> Result<MasterKey, MasterKeyError> {
        MasterKey::from_env_var(MASTER_KEY_ENV)
    }

    /// From the environment variable `var` (`lfr vault rotate` reads the new key from another
    /// one); errors name `var`.
    pub fn from_env_var(var: &'static str) -> Result<MasterKey, MasterKeyError> {
        MasterKey::from_env_value(std::env::var_os(var).as_deref()).map_err(|e| e.naming(var))
    }

    /// What [`MasterKey::from_env`] does with the variable's value (`None`: not set).
    pub fn from_env_value(value: Option<&OsStr>) -> Result<MasterKey, MasterKeyError> {
        let value = value.ok_or(MasterKeyError::Missing {
            var: MASTER_KEY_ENV,
        })?;
        let text = value.to_str().ok_or_else(|| MasterKeyError::Malformed {
            var: MASTER_KEY_ENV,
            why: "it is not valid UTF-8".into(),
        })?;
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

    /// 32 fixed bytes with no pattern (the sha256 of `label`): a test key that is not weak.
    fn bytes(label: &str) -> [u8; 32] {
        Sha256::digest(label.as_bytes()).into()
    }

    #[test]
    fn base64_of_32_bytes_round_trips() {
        let key = MasterKey::generate();
        let text = key.to_base64();
        assert_eq!(text.len(), 44);
        let again = MasterKey::from_base64(&format!("  {}\n", text.as_str())).unwrap();
        assert_eq!(again.fingerprint(), key.fingerprint());
        assert_eq!(
            MasterKey::from_bytes(&bytes("a")).unwrap().fingerprint(),
            MasterKey::from_bytes(&bytes("a")).unwrap().fingerprint()
        );
        assert_ne!(
            MasterKey::from_bytes(&bytes("a")).unwrap().fingerprint(),
            MasterKey::from_bytes(&bytes("b")).unwrap().fingerprint()
        );
    }

    #[test]
    fn a_missing_or_malformed_key_is_refused_with_a_clear_message() {
        let missing = MasterKey::from_env_value(None).unwrap_err();
        assert_eq!(
            missing,
            MasterKeyError::Missing {
                var: MASTER_KEY_ENV
            }
        );
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
    fn weak_keys_are_refused_with_a_clear_message() {
        let mut short_pattern = [0u8; 32];
        short_pattern
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = [0xde, 0xad, 0xbe, 0xef][i % 4]);
        let counter: [u8; 32] = std::array::from_fn(|i| i as u8);
        let passphrase = *b"correct horse battery staple 123";
        for (key, why) in [
            ([0u8; 32], "one byte repeated"),
            ([0xff; 32], "one byte repeated"),
            ([0x41; 32], "one byte repeated"),
            (short_pattern, "only 4 distinct byte values"),
            (counter, "counting sequence"),
            (passphrase, "printable text"),
        ] {
            let value = STANDARD.encode(key);
            let e = MasterKey::from_env_value(Some(OsStr::new(&value))).unwrap_err();
            assert!(matches!(e, MasterKeyError::Weak { .. }), "{e:?}");
            let message = e.to_string();
            assert!(
                message.contains("LFR_MASTER_KEY is too weak") && message.contains(why),
                "{message}"
            );
            assert!(!message.contains(&value), "{message}");
            assert!(matches!(
                MasterKey::from_bytes(&key),
                Err(MasterKeyError::Weak { .. })
            ));
        }
        // What a generator gives passes, however many times.
        for _ in 0..1000 {
            let key = MasterKey::generate();
            MasterKey::from_base64(&key.to_base64()).unwrap();
        }
        // Another variable's errors name that variable.
        let e = MasterKey::from_env_var("LFR_TEST_UNSET_MASTER_KEY").unwrap_err();
        assert!(e
            .to_string()
            .starts_with("LFR_TEST_UNSET_MASTER_KEY is not set"));
    }

    #[test]
    fn the_key_is_never_printed() {
        let key = MasterKey::from_bytes(&bytes("printed")).unwrap();
        let b64 = key.to_base64();
        let printed = format!("{key:?}");
        assert!(!printed.contains(b64.as_str()) && !printed.contains(&b64[..8]));
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
