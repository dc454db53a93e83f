"""Create (once) the virtualenv that holds the pinned conversion tools. Standard library only.

The venv is rebuilt only when the requirement files or the Python version change: a stamp file inside
the venv records the sha256 of both. ``pip`` itself is pinned too (``PIP_VERSION``) so that downloads
and installs behave the same everywhere.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys

PIP_VERSION = "26.3"
STAMP = ".lfr-models-stamp"


def default_venv_dir() -> str:
    return os.environ.get("LFR_MODELS_VENV") or os.path.expanduser("~/.cache/lfr/models-venv")


def venv_python(venv_dir: str) -> str:
    return os.path.join(venv_dir, "bin", "python")


def _stamp_value(requirement_files: list[str]) -> str:
    h = hashlib.sha256()
    h.update(f"python {sys.version_info[:3]} pip {PIP_VERSION}\n".encode())
    for path in requirement_files:
        with open(path, "rb") as f:
            h.update(os.path.basename(path).encode() + b"\n" + f.read())
    return h.hexdigest()


def ensure(venv_dir: str, requirement_files: list[str], log=print) -> str:
    """Make sure ``venv_dir`` has exactly the pinned requirements; returns its python path."""
    stamp_path = os.path.join(venv_dir, STAMP)
    want = _stamp_value(requirement_files)
    py = venv_python(venv_dir)
    if os.path.exists(py) and os.path.exists(stamp_path):
        with open(stamp_path) as f:
            if f.read().strip() == want:
                return py
    if os.path.exists(venv_dir):
        log(f"venv {venv_dir}: requirements changed, recreating")
        shutil.rmtree(venv_dir)
    log(f"venv {venv_dir}: creating with {sys.executable} ({sys.version.split()[0]})")
    os.makedirs(os.path.dirname(os.path.abspath(venv_dir)), exist_ok=True)
    r = subprocess.run([sys.executable, "-m", "venv", venv_dir])
    if r.returncode != 0 or not os.path.exists(py):
        raise RuntimeError(
            f"could not create a virtualenv at {venv_dir} with {sys.executable}; on Debian install "
            "the venv module first: apt-get install -y python3-venv")
    pip = [py, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    subprocess.run(pip + ["install", f"pip=={PIP_VERSION}"], check=True)
    for req in requirement_files:
        log(f"venv {venv_dir}: pip install -r {os.path.basename(req)}")
        subprocess.run(pip + ["install", "--only-binary=:all:", "-r", req], check=True)
    with open(stamp_path, "w") as f:
        f.write(want + "\n")
    return py
