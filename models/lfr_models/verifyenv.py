"""Shared start-up of the verification scripts: their venv, the models dir and the reference files.

The scripts need reference runtimes (dlib-bin, ai-edge-litert) on top of the conversion tools; they
live in their own venv (default ~/.cache/lfr/models-verify-venv or $LFR_MODELS_VERIFY_VENV) so that the
conversion venv stays exactly ``requirements.txt``. :func:`reexec_in_venv` creates it if needed and
re-runs the calling script with its python.
"""

from __future__ import annotations

import os
import sys

from . import manifest, venv

MODELS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUIREMENTS = [os.path.join(MODELS_DIR, "requirements.txt"),
                os.path.join(MODELS_DIR, "requirements-verify.txt")]

# Real photos for tests: the face_recognition sdist ships them (MIT).
PHOTOS_SOURCE = {
    "registry": "pypi", "package": "face-recognition", "version": "1.3.0",
    "distribution": "face_recognition-1.3.0.tar.gz",
    "distribution_sha256": "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec",
    "path": "tests/test_images",
}
PHOTOS = ["obama.jpg", "obama2.jpg", "obama3.jpg", "obama_partial_face.jpg",
          "obama_partial_face2.jpg", "biden.jpg", "32bit.png"]


def verify_venv_dir() -> str:
    return (os.environ.get("LFR_MODELS_VERIFY_VENV")
            or os.path.expanduser("~/.cache/lfr/models-verify-venv"))


def reexec_in_venv(script: str, modules: list[str]) -> None:
    """If ``modules`` cannot be imported here, (create and) switch to the verification venv."""
    try:
        for m in modules:
            __import__(m)
        return
    except ImportError:
        pass
    target = os.path.abspath(verify_venv_dir())
    if os.path.abspath(sys.prefix) == target:
        raise SystemExit(f"error: {modules} not importable even in {target}")
    py = venv.ensure(target, REQUIREMENTS)
    os.execv(py, [py, script] + sys.argv[1:])


def default_models_dir() -> str:
    return os.environ.get("LFR_MODELS_DIR") or os.path.expanduser("~/.cache/lfr/models")


def default_cache() -> str:
    return os.environ.get("LFR_MODELS_CACHE") or os.path.expanduser("~/.cache/lfr/models-downloads")


def model_path(models_dir: str, name: str) -> tuple[str, manifest.Artefact]:
    """Path of an installed artefact, after checking its sha256 against the manifest."""
    art = manifest.find(manifest.load(), name)
    path = os.path.join(models_dir, art.file)
    if not os.path.isfile(path):
        raise SystemExit(f"error: {path} missing; run python3 models/fetch.py --dest {models_dir}")
    actual = manifest.sha256_file(path)
    if actual != art.sha256:
        raise SystemExit(f"error: {path} sha256 {actual} != manifest {art.sha256}")
    return path, art


def extract(source: dict, member: str, cache: str, out_dir: str) -> str:
    """Download ``source``'s distribution (cached) and write one member to ``out_dir``."""
    from . import sources

    dist = sources.fetch_distribution(source, cache, sys.executable, log=lambda m: None)
    data = sources.read_member(dist, sources.member_path(dict(source, path=member)))
    path = os.path.join(out_dir, os.path.basename(member))
    with open(path, "wb") as f:
        f.write(data)
    return path


def lfw_images(lfw_dir: str, count: int, seed: int = 0) -> list[str]:
    """``count`` images picked deterministically from an LFW-style folder (empty if absent)."""
    import random

    if count <= 0 or not os.path.isdir(lfw_dir):
        return []
    files = sorted(os.path.join(root, f) for root, _, names in os.walk(lfw_dir) for f in names
                   if f.lower().endswith(".jpg"))
    random.Random(seed).shuffle(files)
    return files[:count]
