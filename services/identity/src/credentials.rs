//! One nkey per identity: the seed in that component's own file, the public key for the server.
//!
//! A seed is the whole secret: whoever holds `detect.nk` is detect on the bus. Files are created
//! with mode 0600 in a directory of mode 0700, and each component is given the path of its own
//! file only.

use lfr_schemas::permissions::Identity;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The credentials of a set of identities, in one directory.
#[derive(Debug, Clone)]
pub struct Credentials {
    dir: PathBuf,
    /// Each identity with its public key.
    pub users: Vec<(Identity, String)>,
}

impl Credentials {
    /// New nkeys for `identities`, replacing whatever `dir` held for them.
    pub fn generate(dir: &Path, identities: &[Identity]) -> anyhow::Result<Credentials> {
        private_dir(dir)?;
        let mut users = Vec::new();
        for &identity in identities {
            let pair = nkeys::KeyPair::new_user();
            let seed = pair
                .seed()
                .map_err(|e| anyhow::anyhow!("nkey for {}: {e}", identity.name()))?;
            write_private(&path(dir, identity), format!("{seed}\n").as_bytes())?;
            users.push((identity, pair.public_key()));
        }
        Ok(Credentials {
            dir: dir.to_path_buf(),
            users,
        })
    }

    /// The credentials already in `dir` (every identity that has a file there).
    pub fn load(dir: &Path) -> anyhow::Result<Credentials> {
        let mut users = Vec::new();
        for identity in Identity::ALL {
            let file = path(dir, identity);
            if !file.exists() {
                continue;
            }
            let seed = std::fs::read_to_string(&file)?;
            let pair = nkeys::KeyPair::from_seed(seed.trim())
                .map_err(|e| anyhow::anyhow!("{} is not an nkey seed: {e}", file.display()))?;
            users.push((identity, pair.public_key()));
        }
        anyhow::ensure!(!users.is_empty(), "no credentials in {}", dir.display());
        Ok(Credentials {
            dir: dir.to_path_buf(),
            users,
        })
    }

    /// The credentials file of `identity` (what its `nats.credentials` names).
    pub fn file(&self, identity: Identity) -> PathBuf {
        path(&self.dir, identity)
    }

    pub fn public_key(&self, identity: Identity) -> Option<&str> {
        self.users
            .iter()
            .find(|(i, _)| *i == identity)
            .map(|(_, k)| k.as_str())
    }
}

fn path(dir: &Path, identity: Identity) -> PathBuf {
    dir.join(format!("{}.nk", identity.name()))
}

/// Create `dir` (mode 0700) if missing.
pub fn private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))
}

/// Write a secret: replaced whole, mode 0600 from the first byte.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(path);
    create_private(path, bytes)
}

/// Create `path`, never over an existing file, readable by its owner only (mode 0600 from the
/// first byte), and flushed to disk.
pub fn create_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn each_identity_gets_its_own_private_seed() {
        let dir = tempfile::tempdir().unwrap();
        let creds = Credentials::generate(dir.path(), &Identity::ALL).unwrap();
        assert_eq!(creds.users.len(), Identity::ALL.len());
        let mut keys: Vec<_> = creds.users.iter().map(|(_, k)| k.clone()).collect();
        keys.dedup();
        assert_eq!(keys.len(), Identity::ALL.len());
        for (identity, key) in &creds.users {
            assert!(key.starts_with('U'), "{key}");
            let file = creds.file(*identity);
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", file.display());
            assert!(std::fs::read_to_string(&file).unwrap().starts_with("SU"));
        }
        let again = Credentials::load(dir.path()).unwrap();
        assert_eq!(again.users, creds.users);
    }
}
