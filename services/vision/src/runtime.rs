//! Loading ONNX Runtime and models, verified.
//!
//! Every file is checked against the manifest's sha256 before it is loaded: a model that is not the
//! one that was evaluated and approved never runs. A missing or wrong file is a clear start-up error,
//! never a panic deep inside inference.

use crate::manifest::{Artefact, Manifest, Role};
use ort::environment::Environment;
use ort::session::Session;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Where models live, and the manifest that describes them.
#[derive(Debug, Clone)]
pub struct ModelStore {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{name}: {path} is missing; run `python3 models/fetch.py` (scripts/setup.sh does)")]
    Missing { name: String, path: PathBuf },
    #[error("{name}: {path} has sha256 {actual}, but the manifest requires {expected}; refusing to load it")]
    HashMismatch {
        name: String,
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("cannot load the ONNX Runtime library {path}: {why}")]
    Runtime { path: PathBuf, why: String },
    #[error("cannot load model {name} from {path}: {why}")]
    Model {
        name: String,
        path: PathBuf,
        why: String,
    },
}

impl ModelStore {
    /// The models directory and its manifest (`DIR/manifest.toml` unless another is given).
    pub fn open(dir: &Path, manifest: Option<&Path>) -> anyhow::Result<ModelStore> {
        let manifest_path = manifest
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.join("manifest.toml"));
        Ok(ModelStore {
            dir: dir.to_path_buf(),
            manifest: Manifest::load(&manifest_path)?,
        })
    }

    /// The default models directory: `LFR_MODELS_DIR`, else `~/.cache/lfr/models`.
    pub fn default_dir() -> PathBuf {
        if let Some(d) = std::env::var_os("LFR_MODELS_DIR") {
            return PathBuf::from(d);
        }
        PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into()))
            .join(".cache/lfr/models")
    }

    /// The path of an artefact's file after checking its hash.
    pub fn verified(&self, artefact: &Artefact) -> Result<PathBuf, ModelError> {
        let path = self.dir.join(&artefact.file);
        let actual = sha256_file(&path).map_err(|_| ModelError::Missing {
            name: artefact.name.clone(),
            path: path.clone(),
        })?;
        if !actual.eq_ignore_ascii_case(&artefact.sha256) {
            return Err(ModelError::HashMismatch {
                name: artefact.name.clone(),
                path,
                expected: artefact.sha256.clone(),
                actual,
            });
        }
        Ok(path)
    }

    /// The process's ONNX Runtime environment, loading the verified library on first use.
    pub fn environment(&self) -> Result<&'static Environment, ModelError> {
        static ENV: OnceLock<Environment> = OnceLock::new();
        if let Some(env) = ENV.get() {
            return Ok(env);
        }
        let runtime = self.manifest.runtime().map_err(|e| ModelError::Runtime {
            path: self.dir.clone(),
            why: e.to_string(),
        })?;
        let path = self.verified(runtime)?;
        let fail = |why: String| ModelError::Runtime {
            path: path.clone(),
            why,
        };
        let env = ort::init_from(&path)
            .map_err(|e| fail(e.to_string()))?
            .with_name("lfr")
            .build()
            .map_err(|e| fail(e.to_string()))?;
        Ok(ENV.get_or_init(|| env))
    }

    /// A session for a verified model, with `threads` intra-op threads that sleep rather than spin
    /// (two sessions spinning on a small machine slow each other down; see STACK.md).
    pub fn session(&self, artefact: &Artefact, threads: usize) -> Result<Session, ModelError> {
        let path = self.verified(artefact)?;
        let env = self.environment()?;
        let fail = |why: String| ModelError::Model {
            name: artefact.name.clone(),
            path: path.clone(),
            why,
        };
        Session::builder(env)
            .map_err(|e| fail(e.to_string()))?
            .with_intra_threads(threads.max(1))
            .map_err(|e| fail(e.to_string()))?
            .with_intra_op_spinning(false)
            .map_err(|e| fail(e.to_string()))?
            .commit_from_file(&path)
            .map_err(|e| fail(e.to_string()))
    }

    /// The artefact named `name`, which must have the given role.
    pub fn model(&self, name: &str, role: Role) -> anyhow::Result<&Artefact> {
        let a = self.manifest.artefact(name)?;
        anyhow::ensure!(
            a.role == role,
            "model {name} is a {:?}, not a {role:?}",
            a.role
        );
        Ok(a)
    }
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}
