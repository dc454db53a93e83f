//! Refusing the wrong model, clearly: a file whose hash differs from the manifest's, a missing model,
//! and a missing ONNX Runtime library are start-up errors that say what to do, never panics.

use lfr_vision::manifest::Role;
use lfr_vision::runtime::{ModelError, ModelStore};

fn copy_of_models(skip: &str) -> tempfile::TempDir {
    let real = ModelStore::default_dir();
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&real).unwrap().flatten() {
        let name = entry.file_name();
        if name.to_string_lossy() != skip {
            std::os::unix::fs::symlink(entry.path(), dir.path().join(&name)).unwrap();
        }
    }
    dir
}

#[test]
fn a_model_with_the_wrong_hash_is_refused() {
    let dir = copy_of_models("retinaface-mnet025.onnx");
    let mut bytes =
        std::fs::read(ModelStore::default_dir().join("retinaface-mnet025.onnx")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xFF;
    std::fs::write(dir.path().join("retinaface-mnet025.onnx"), bytes).unwrap();
    let store = ModelStore::open(dir.path(), None).unwrap();
    let artefact = store.model("retinaface-mnet025", Role::Detector).unwrap();
    let err = store.session(artefact, 1).unwrap_err();
    assert!(matches!(err, ModelError::HashMismatch { .. }), "{err}");
    assert!(err.to_string().contains("refusing to load it"), "{err}");
}

#[test]
fn a_missing_model_says_how_to_fetch_it() {
    let dir = copy_of_models("mobilefacenet.onnx");
    let store = ModelStore::open(dir.path(), None).unwrap();
    let artefact = store.model("mobilefacenet", Role::Embedder).unwrap();
    let err = store.session(artefact, 1).unwrap_err();
    assert!(matches!(err, ModelError::Missing { .. }), "{err}");
    assert!(err.to_string().contains("models/fetch.py"), "{err}");
}

#[test]
fn a_missing_onnx_runtime_library_is_a_clear_error() {
    let dir = copy_of_models("libonnxruntime.so.1.31.1");
    let store = ModelStore::open(dir.path(), None).unwrap();
    let err = store.environment().unwrap_err();
    assert!(err.to_string().contains("libonnxruntime"), "{err}");
    assert!(err.to_string().contains("models/fetch.py"), "{err}");
}
