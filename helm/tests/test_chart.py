"""Offline tests of the lfr Helm chart (helm/lfr).

Helm 4 runs in-process through helm-python-sdk (no helm binary, no cluster, no network): the chart
is linted and rendered with its default values and with each example, and every rendered object is
validated against the Kubernetes API schemas bundled in kubernetes-validate (strict: unknown fields
are errors), for the oldest Kubernetes the chart supports and the newest the validator knows.
ServiceMonitor (a Prometheus Operator CRD) has no bundled schema; it gets a structural hand-check.

Then the properties operators rely on are asserted for every workload: the restricted Pod Security
profile, probes, resources, network policies, a single Ingress (the console), autoscaling, no
secret material in the chart, and an lfr.toml that parses and configures every service.

NATS: each workload connects as its own identity (its own Secret, mounted into its pods only),
over TLS; the bundled NATS gets one nkey user per identity with exactly the permissions of
files/nats-permissions.json (from the ConfigMap this chart renders, included by the NATS chart's
configuration), only lfr pods may reach it, and its JetStream store is encrypted. The NATS chart
itself is a dependency that is not vendored (no network here): what it renders is tested only when
a copy is at hand (LFR_NATS_CHART, or charts/ after `helm dependency build`); otherwise the values
lfr gives it are checked, and a real nats-server runs the users the chart renders.

Run: $LFR_HOME/venv/bin/python -m pytest -q helm/tests   (scripts/setup.sh installs the tools)
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import hashlib
import json
import os
import posixpath
import re
import shutil
import signal
import subprocess
import tarfile
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml
from loopback import free_port

CHART = Path(__file__).resolve().parent.parent / "lfr"
REPO = CHART.parent.parent
LFR_HOME = Path(os.environ.get("LFR_HOME", Path.home() / ".cache" / "lfr"))
EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))
RELEASE = "lfr"
NAMESPACE = "lfr"
SERVICES = ["ingest", "detect", "embed", "match", "dispatch", "purge"]
PORTS = dict(zip(SERVICES, range(9101, 9107)))
# The NATS identities (files/nats-permissions.json) and the workloads that are not services.
PERMISSIONS = json.loads((CHART / "files" / "nats-permissions.json").read_text())
IDENTITIES = sorted(PERMISSIONS)
TOOLS = {"bus-keeper": "bus", "admin": "admin"}  # Deployment component: its identity
CA_PATH = "/etc/nats/ca/ca.crt"
# Any nkey seed (user, account, operator...): S, a type letter, then base32.
SEED = re.compile(r"S[UAONCPX][A-Z2-7]{50,}")
# The Kubernetes versions manifests are validated for: the chart's kubeVersion floor, and the
# newest kubernetes-validate knows.
KUBE_VERSIONS = ["1.25", kubernetes_validate.latest_version()]

# kubernetes-validate reads its (large) schema files on every call; read each once.
kubernetes_validate.utils.schema_contents = functools.lru_cache(maxsize=None)(
    kubernetes_validate.utils.schema_contents
)


# Rendering --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _chart() -> helm.Chart:
    return helm.Chart.load(str(CHART))


def render(values: dict | None = None) -> list[dict]:
    """Render the chart as `helm template` would for an install, return every object."""
    manifests = _chart().render(values=values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects = []
    for name, text in sorted(manifests.items()):
        if not name.endswith((".yaml", ".yml")):
            continue  # NOTES.txt
        for doc in yaml.safe_load_all(text):
            if doc:
                doc["__template"] = name
                objects.append(doc)
    return objects


def load_values(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def merged(base: dict, override: dict) -> dict:
    """Helm's merge of values: maps key by key, anything else replaced."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def _crc16(data: bytes) -> int:
    """CRC-16/XMODEM, the checksum of nkeys."""
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def public_nkey(name: str) -> str:
    """A well-formed public user nkey (U...) for tests; nats-server accepts it (checksum)."""
    raw = bytes([20 << 3]) + hashlib.sha256(name.encode()).digest()
    return base64.b32encode(raw + _crc16(raw).to_bytes(2, "little")).decode().rstrip("=")


def nkeys_values(keys: dict[str, str]) -> dict:
    return {"nats": {"identities": {i: {"nkey": k} for i, k in keys.items()}}}


# What an operator adds to a bundled-NATS install: the public keys of `lfr bus credentials`
# (every identity but the load test's).
NKEYS = {i: public_nkey(i) for i in IDENTITIES if i != "loadtest"}


def case_values(case: str) -> dict | None:
    """The values of a test case: an example (with the nkeys file an operator gives alongside
    when it bundles NATS), or none for the defaults."""
    if case == "default":
        return None
    values = load_values(CHART / "examples" / case)
    if values.get("nats", {}).get("enabled"):
        values = merged(values, nkeys_values(NKEYS))
    return values


def chart_values(values: dict | None) -> dict:
    """The chart's values.yaml with `values` over it: what the NATS chart is given (under nats)."""
    return merged(load_values(CHART / "values.yaml"), values or {})


@functools.lru_cache(maxsize=None)
def _rendered(case: str) -> tuple:
    return tuple(render(case_values(case)))


CASES = ["default"] + [p.name for p in EXAMPLES]


@pytest.fixture(params=CASES)
def case(request) -> str:
    return request.param


@pytest.fixture
def objects(case) -> list[dict]:
    return [dict(o) for o in _rendered(case)]


def of_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def component(obj: dict) -> str:
    return obj["metadata"]["labels"]["app.kubernetes.io/component"]


def pod_labels(deployment: dict) -> dict:
    return deployment["spec"]["template"]["metadata"]["labels"]


def services_of(objects: list[dict]) -> list[dict]:
    """The Deployments of the six services (not the bus keeper or the admin pod)."""
    return [d for d in of_kind(objects, "Deployment") if component(d) in SERVICES]


def pod_workloads(objects: list[dict]) -> list[dict]:
    """Every object that makes pods: the Deployments and the bus-init Job."""
    return [o for o in objects if o["kind"] in ("Deployment", "Job")]


def identity_of(workload: dict) -> str:
    c = component(workload)
    return {"bus-init": "bus", **TOOLS}.get(c, c)


def named(objects: list[dict], kind: str, name: str) -> dict:
    (obj,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj


def env_of(container: dict) -> dict:
    return {e["name"]: e for e in container.get("env", [])}


def config_toml(objects: list[dict], key: str = "lfr.toml") -> dict:
    (cfg,) = [
        o for o in objects
        if o["kind"] in ("ConfigMap", "Secret") and o["metadata"]["name"].endswith("-config")
    ]
    data = cfg.get("data") if cfg["kind"] == "ConfigMap" else cfg.get("stringData")
    return tomllib.loads(data[key])


# Lint ---------------------------------------------------------------------------------------------


def test_examples_exist():
    assert {p.name for p in EXAMPLES} >= {"transport-hub.yaml", "pinch-point.yaml"}


@pytest.mark.parametrize("case", CASES)
def test_lint(case):
    values = case_values(case)
    report = helm.lint(str(CHART), values, namespace=NAMESPACE, kube_version="v1.30.0")
    assert report["errors"] == [], report
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    # The optional NATS dependency is declared but not vendored (no network here): Helm warns
    # that charts/ lacks it. Anything else is a finding.
    expected = "chart directory is missing these dependencies: nats"
    assert [m for m in problems if m["error"] != expected] == [], report


def test_values_yaml_is_commented():
    """Every top-level key of values.yaml is preceded by a comment (its documentation)."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[A-Za-z]\w*:", line):
            previous = next((l for l in reversed(lines[:i]) if l.strip()), "")
            assert previous.lstrip().startswith("#"), f"values.yaml: {line!r} has no comment above"


# Schemas --------------------------------------------------------------------------------------------


def check_service_monitor(obj: dict) -> None:
    """No schema for the Prometheus Operator's CRD here: check what Prometheus needs."""
    assert obj["apiVersion"] == "monitoring.coreos.com/v1"
    assert obj["metadata"]["name"]
    spec = obj["spec"]
    assert set(spec) <= {"selector", "namespaceSelector", "endpoints", "jobLabel"}
    assert spec["selector"]["matchLabels"]
    assert spec["namespaceSelector"]["matchNames"] == [NAMESPACE]
    for ep in spec["endpoints"]:
        assert set(ep) <= {"port", "path", "scheme", "interval", "scrapeTimeout"}
        assert ep["port"] == "metrics" and ep["path"] == "/metrics"
        assert re.fullmatch(r"\d+[smh]", ep["interval"]) and re.fullmatch(r"\d+[smh]", ep["scrapeTimeout"])


def check_certificate(obj: dict) -> None:
    """cert-manager's Certificate (no schema here either): the fields cert-manager v1 takes."""
    assert obj["apiVersion"] == "cert-manager.io/v1"
    spec = obj["spec"]
    assert set(spec) <= {"secretName", "issuerRef", "duration", "renewBefore", "privateKey", "usages",
                         "commonName", "dnsNames"}
    assert spec["secretName"] and spec["issuerRef"]["name"]
    assert set(spec["issuerRef"]) <= {"name", "kind", "group"}
    for d in ("duration", "renewBefore"):
        assert re.fullmatch(r"(\d+h)?(\d+m)?(\d+s)?", spec[d]) and spec[d]
    assert spec["privateKey"]["algorithm"] in ("RSA", "ECDSA", "Ed25519")
    assert set(spec["usages"]) <= {"digital signature", "key encipherment", "server auth", "client auth"}
    assert all(isinstance(n, str) and n for n in spec["dnsNames"])


def test_every_object_is_valid_kubernetes(objects):
    kinds = set()
    for obj in objects:
        obj.pop("__template", None)
        kinds.add(obj["kind"])
        if obj["kind"] == "ServiceMonitor":
            check_service_monitor(obj)
            continue
        if obj["kind"] == "Certificate":
            check_certificate(obj)
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} (k8s {version}): {e.message} at {list(e.path)}")
    assert {"Deployment", "Service", "ConfigMap", "NetworkPolicy", "PodDisruptionBudget", "Ingress",
            "ServiceAccount", "Job"} <= kinds


def test_objects_are_unique_and_namespaced_by_release(objects):
    keys = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(keys) == len(set(keys)), "duplicate objects"
    for o in objects:
        assert o["metadata"]["name"].startswith(RELEASE)
        assert o["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
        assert "namespace" not in o["metadata"], "the release namespace applies"


# Workloads ------------------------------------------------------------------------------------------


def test_one_workload_per_service(case, objects):
    deployments = services_of(objects)
    assert {component(d) for d in of_kind(objects, "Deployment")} == set(SERVICES) | set(TOOLS)
    for d in deployments:
        service = component(d)
        if service != "ingest":
            assert d["metadata"]["name"] == f"{RELEASE}-{service}"
        (container,) = d["spec"]["template"]["spec"]["containers"]
        assert container["command"] == [f"lfr-{service}", "--config", "/etc/lfr/lfr.toml"]
        assert container["image"].split("/")[-1].startswith("lfr")
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["metrics"] == PORTS[service]
        assert ("console" in ports) == (service == "dispatch")
        if service == "dispatch":
            assert ports["console"] == 8080


ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                   "projected", "secret"}


def assert_restricted(deployment: dict) -> None:
    """The Kubernetes "restricted" Pod Security Standard, and the chart's own stricter settings
    (for a Deployment's pods or a Job's)."""
    name = deployment["metadata"]["name"]
    pod = deployment["spec"]["template"]["spec"]
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True, name
    assert psc["runAsUser"] == 10001 and psc["runAsGroup"] == 10001, name
    assert psc["seccompProfile"]["type"] == "RuntimeDefault", name
    assert pod["automountServiceAccountToken"] is False, name
    for flag in ("hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace"):
        assert not pod.get(flag), (name, flag)
    for volume in pod.get("volumes", []):
        types = set(volume) - {"name"}
        assert types <= ALLOWED_VOLUMES, (name, volume)
    containers = pod["containers"] + pod.get("initContainers", [])
    for c in containers:
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] is True, name
        assert sc["runAsUser"] == 10001 and sc["runAsGroup"] == 10001, name
        assert sc["allowPrivilegeEscalation"] is False, name
        assert sc["readOnlyRootFilesystem"] is True, name
        assert sc.get("privileged", False) is False, name
        assert sc["capabilities"]["drop"] == ["ALL"], name
        assert not sc["capabilities"].get("add"), name
        assert sc["seccompProfile"]["type"] == "RuntimeDefault", name
        assert all("hostPort" not in p for p in c.get("ports", [])), name
        # /tmp is writable (an in-memory emptyDir): the root file system is not.
        tmp = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
        assert len(tmp) == 1, name
        (vol,) = [v for v in pod["volumes"] if v["name"] == tmp[0]["name"]]
        assert vol["emptyDir"]["medium"] == "Memory" and vol["emptyDir"]["sizeLimit"], name


def test_workloads_meet_the_restricted_profile(objects):
    for d in pod_workloads(objects):
        assert_restricted(d)
    for sa in of_kind(objects, "ServiceAccount"):
        assert sa["automountServiceAccountToken"] is False


def test_probes_and_resources(objects):
    for d in pod_workloads(objects):
        if component(d) not in SERVICES:  # no HTTP server: no probe, but resources
            (c,) = d["spec"]["template"]["spec"]["containers"]
            assert "livenessProbe" not in c and "readinessProbe" not in c
            assert c["resources"]["limits"]["cpu"] and c["resources"]["limits"]["memory"]
            continue
        name = d["metadata"]["name"]
        for c in d["spec"]["template"]["spec"]["containers"]:
            live, ready = c["livenessProbe"]["httpGet"], c["readinessProbe"]["httpGet"]
            assert (live["path"], live["port"]) == ("/healthz", "metrics"), name
            assert (ready["path"], ready["port"]) == ("/readyz", "metrics"), name
            assert c["startupProbe"]["httpGet"]["path"] == "/healthz", name
            for kind in ("requests", "limits"):
                assert c["resources"][kind]["cpu"] and c["resources"][kind]["memory"], (name, kind)


def secret_refs(pod: dict) -> set[str]:
    """Every Secret a pod refers to: volumes (secret, projected) and env/envFrom."""
    names = set()
    for v in pod.get("volumes", []):
        if "secret" in v:
            names.add(v["secret"]["secretName"])
        for src in v.get("projected", {}).get("sources", []):
            if "secret" in src:
                names.add(src["secret"]["name"])
    for c in pod["containers"] + pod.get("initContainers", []):
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                names.add(ref["name"])
        for e in c.get("envFrom", []):
            if "secretRef" in e:
                names.add(e["secretRef"]["name"])
    return names


def test_secrets_come_from_existing_secrets(objects):
    for d in pod_workloads(objects):
        service = component(d)
        pod = d["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        env = env_of(c)
        for e in env.values():
            if e["name"] in ("LFR_MASTER_KEY", "LFR_DISPATCH__API_TOKEN"):
                assert "value" not in e and e["valueFrom"]["secretKeyRef"]["name"], e
        assert ("LFR_MASTER_KEY" in env) == (service in ("match", "dispatch", "admin")), service
    assert "credentials" not in config_toml(objects)["nats"], "per pod (LFR_NATS__CREDENTIALS), not in lfr.toml"


def test_only_purge_holds_the_audit_anchor_key(objects):
    """The key that signs audit anchors is mounted, read-only and not world-readable, into the
    purge pod alone; no other pod can forge an anchor."""
    for d in pod_workloads(objects):
        service = component(d)
        pod = d["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        env = env_of(c)
        vols = {v["name"]: v for v in pod["volumes"]}
        if service == "purge":
            key = vols["audit-anchor-key"]["secret"]
            assert key["secretName"] == "lfr-audit-anchor"
            assert key["items"] == [{"key": "key", "path": "audit-anchor.key"}]
            assert key["defaultMode"] & 0o007 == 0
            (mount,) = [m for m in c["volumeMounts"] if m["name"] == "audit-anchor-key"]
            assert mount["readOnly"] is True
            assert env["LFR_PURGE__ANCHOR_KEY_FILE"]["value"] == f"{mount['mountPath']}/audit-anchor.key"
        else:
            assert "audit-anchor-key" not in vols, service
            assert "lfr-audit-anchor" not in secret_refs(pod), service
            assert "LFR_PURGE__ANCHOR_KEY_FILE" not in env, service


def test_each_pod_mounts_only_its_own_identity(case, objects):
    """Every workload connects as its own NATS identity: its pod has that identity's Secret (the
    seed as <identity>.nk, read-only, named by LFR_NATS__CREDENTIALS) and no other's."""
    values = chart_values(case_values(case))
    identity_secrets = {i: v["existingSecret"] for i, v in values["nats"]["identities"].items()
                        if v.get("existingSecret")}
    assert identity_secrets == {i: f"lfr-nats-{i}" for i in IDENTITIES if i != "loadtest"}
    seen = set()
    for d in pod_workloads(objects):
        identity = identity_of(d)
        seen.add(identity)
        pod = d["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        vols = {v["name"]: v for v in pod["volumes"]}
        creds = vols["nats-credentials"]["secret"]
        assert creds["secretName"] == f"lfr-nats-{identity}", d["metadata"]["name"]
        assert creds["items"] == [{"key": "seed", "path": f"{identity}.nk"}]
        assert creds["defaultMode"] & 0o007 == 0, "the seed is not world-readable"
        (mount,) = [m for m in c["volumeMounts"] if m["name"] == "nats-credentials"]
        assert mount["readOnly"] is True
        path = env_of(c)["LFR_NATS__CREDENTIALS"]["value"]
        assert path == f"{mount['mountPath']}/{identity}.nk"
        others = set(identity_secrets.values()) - {identity_secrets[identity]}
        assert secret_refs(pod) & others == set(), f"{d['metadata']['name']} can read another identity's seed"
    assert seen == set(SERVICES) | {"bus", "admin"}


BASE64_32 = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{43}=(?![A-Za-z0-9+/=])")


def test_no_secret_material_in_the_chart(case, objects):
    """No Secret is rendered, and no 32-byte base64 value (the master key's shape) or nkey seed
    appears: the NATS users are public keys, the store key an environment reference."""
    assert of_kind(objects, "Secret") == []
    values_files = [CHART / "values.yaml"] + EXAMPLES + sorted((CHART / "files").iterdir())
    texts = [yaml.safe_dump(o) for o in objects] + [p.read_text() for p in values_files]
    for text in texts:
        assert not SEED.search(text), "an nkey seed in the chart"
        for m in BASE64_32.finditer(text):
            try:
                raw = base64.b64decode(m.group(0), validate=True)
            except binascii.Error:
                continue
            assert len(raw) != 32, f"a 32-byte base64 value in the chart: {m.group(0)[:6]}..."
    dispatch = config_toml(objects)["dispatch"]
    assert "api_token" not in dispatch


# Network -------------------------------------------------------------------------------------------


def selects(policy: dict, labels: dict) -> bool:
    sel = policy["spec"]["podSelector"]
    assert not sel.get("matchExpressions")
    return all(labels.get(k) == v for k, v in sel.get("matchLabels", {}).items())


def test_network_policies_cover_every_pod(objects):
    policies = of_kind(objects, "NetworkPolicy")
    deployments = pod_workloads(objects)
    for d in deployments:
        labels = pod_labels(d)
        applying = [p for p in policies if selects(p, labels)]
        deny = [p for p in applying
                if set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
                and not p["spec"].get("ingress") and not p["spec"].get("egress")]
        assert deny, f"no default-deny policy selects {d['metadata']['name']}"
        # Every pod may reach DNS and NATS, and be scraped on its metrics port.
        egress_ports = {(p.get("protocol", "TCP"), p["port"])
                        for pol in applying for rule in pol["spec"].get("egress", [])
                        for p in rule.get("ports", [])}
        assert {("UDP", 53), ("TCP", 4222)} <= egress_ports, d["metadata"]["name"]
        ingress = [(rule, p["port"]) for pol in applying for rule in pol["spec"].get("ingress", [])
                   for p in rule.get("ports", [])]
        assert any(port == "metrics" for _, port in ingress), d["metadata"]["name"]
        # No lfr pod is reachable on a NATS port (the NATS policy selects the NATS pods only).
        assert not any(port in (4222, 6222, 8222) for _, port in ingress)
        console = [rule for rule, port in ingress if port == "console"]
        if component(d) == "dispatch":
            (rule,) = console
            (peer,) = rule["from"]
            assert peer["namespaceSelector"]["matchLabels"], "console open to every namespace"
        else:
            assert console == []
        # Only ingest may reach beyond NATS and DNS (the cameras).
        others = {port for port in egress_ports if port[1] not in (53, 4222)}
        if component(d) != "ingest":
            assert others == set(), d["metadata"]["name"]
    # No rule allows everything (an empty peer list or an empty peer).
    for pol in policies:
        for rule in pol["spec"].get("ingress", []) + pol["spec"].get("egress", []):
            peers = rule.get("from", rule.get("to"))
            assert peers, f"{pol['metadata']['name']}: a rule without peers allows all"
            assert all(peer for peer in peers)


def test_nats_egress_follows_the_nats_choice():
    hub = list(_rendered("transport-hub.yaml"))
    pinch = list(_rendered("pinch-point.yaml"))

    def nats_peers(objects):
        (bus,) = [p for p in of_kind(objects, "NetworkPolicy") if p["metadata"]["name"].endswith("-bus")]
        return [peer for rule in bus["spec"]["egress"]
                if any(p["port"] == 4222 for p in rule["ports"]) for peer in rule["to"]]

    (peer,) = nats_peers(hub)  # the bundled NATS pods of this release
    assert peer["podSelector"]["matchLabels"] == NATS_POD_LABELS
    assert config_toml(hub)["nats"]["url"] == f"tls://{RELEASE}-nats.{NAMESPACE}.svc:4222"
    assert nats_peers(pinch) == [{"ipBlock": {"cidr": "10.60.0.10/32"}}]
    assert config_toml(pinch)["nats"]["url"] == "tls://10.60.0.10:4222"


# The labels of the bundled NATS chart's server pods (its selector labels).
NATS_POD_LABELS = {"app.kubernetes.io/name": "nats", "app.kubernetes.io/instance": RELEASE,
                   "app.kubernetes.io/component": "nats"}


def test_nats_admits_only_lfr_pods():
    """The bundled NATS pods: clients (4222) only from this release's lfr pods, routes (6222)
    only from each other, monitoring (8222) only from Prometheus; nothing else."""
    objects = list(_rendered("transport-hub.yaml"))
    pol = named(objects, "NetworkPolicy", f"{RELEASE}-nats-ingress")
    assert selects(pol, NATS_POD_LABELS)
    assert pol["spec"]["policyTypes"] == ["Ingress"]
    rules = {p["port"]: rule for rule in pol["spec"]["ingress"] for p in rule["ports"]}
    assert set(rules) == {4222, 6222, 8222}
    (client,) = rules[4222]["from"]
    assert client == {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "lfr",
                                                      "app.kubernetes.io/instance": RELEASE}}}
    for w in pod_workloads(objects):  # every lfr pod, the bus Job's included, may connect
        assert all(pod_labels(w).get(k) == v for k, v in client["podSelector"]["matchLabels"].items())
    assert not all(NATS_POD_LABELS.get(k) == v for k, v in client["podSelector"]["matchLabels"].items())
    (route,) = rules[6222]["from"]
    assert route == {"podSelector": {"matchLabels": NATS_POD_LABELS}}
    (monitor,) = rules[8222]["from"]
    assert monitor["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}
    assert monitor["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}
    # An external NATS is not this chart's to police.
    assert [p for p in of_kind(list(_rendered("pinch-point.yaml")), "NetworkPolicy")
            if p["metadata"]["name"].endswith("-nats-ingress")] == []


def test_ingest_reaches_the_cameras_only():
    for case in ("transport-hub.yaml", "pinch-point.yaml"):
        objects = list(_rendered(case))
        (pol,) = [p for p in of_kind(objects, "NetworkPolicy") if p["metadata"]["name"].endswith("-ingest-cameras")]
        assert pol["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "ingest"
        (rule,) = pol["spec"]["egress"]
        assert all("ipBlock" in peer for peer in rule["to"])
        assert {p["port"] for p in rule["ports"]} == {554}


def test_only_dispatch_is_exposed(objects):
    ingresses = of_kind(objects, "Ingress")
    (ing,) = ingresses
    (rule,) = ing["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert path["backend"]["service"] == {"name": f"{RELEASE}-dispatch", "port": {"name": "console"}}
    (tls,) = ing["spec"]["tls"]
    assert tls["secretName"]
    for svc in of_kind(objects, "Service"):
        assert svc["spec"]["type"] == "ClusterIP"
        ports = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
        assert ports["metrics"] == PORTS[component(svc)]
        assert ("console" in ports) == (component(svc) == "dispatch")


# Scaling ------------------------------------------------------------------------------------------


def test_hub_autoscales_detect_and_embed():
    objects = list(_rendered("transport-hub.yaml"))
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind(objects, "HorizontalPodAutoscaler")}
    assert set(hpas) == {f"{RELEASE}-detect", f"{RELEASE}-embed"}
    for h in hpas.values():
        assert h["apiVersion"] == "autoscaling/v2"
        assert 1 <= h["spec"]["minReplicas"] < h["spec"]["maxReplicas"]
        (metric,) = h["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
    for d in services_of(objects):
        # The autoscaler owns the replica count; a fixed one would be reset on every upgrade.
        assert ("replicas" in d["spec"]) == (component(d) not in ("detect", "embed"))
    match = [d for d in of_kind(objects, "Deployment") if component(d) == "match"]
    assert [d["spec"]["replicas"] for d in match] == [2]
    # Active and standby never share a node: losing one costs a takeover, not the matcher.
    (spread,) = match[0]["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert (spread["topologyKey"], spread["whenUnsatisfiable"]) == ("kubernetes.io/hostname", "DoNotSchedule")
    assert all(pod_labels(match[0]).get(k) == v for k, v in spread["labelSelector"]["matchLabels"].items())
    assert len(load_values(CHART / "examples" / "transport-hub.yaml")["ingest"]["cameras"]) == 40


def test_no_autoscaler_by_default():
    assert of_kind(list(_rendered("default")), "HorizontalPodAutoscaler") == []


def test_match_runs_active_standby():
    """Two matchers by default (one active, one standby), spread over nodes where the cluster has
    them; more render (extra standbys); an autoscaler never, as standbys take no work."""
    objects = list(_rendered("default"))
    match = named(objects, "Deployment", f"{RELEASE}-match")
    assert match["spec"]["replicas"] == 2
    (spread,) = match["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert (spread["topologyKey"], spread["whenUnsatisfiable"]) == ("kubernetes.io/hostname", "ScheduleAnyway")
    assert spread["labelSelector"]["matchLabels"] == {
        k: v for k, v in pod_labels(match).items() if k != "app.kubernetes.io/part-of"}
    # Only match gets a spread of its own; the others keep what they are given.
    for d in services_of(objects):
        assert ("topologySpreadConstraints" in d["spec"]["template"]["spec"]) == (component(d) == "match")
    assert named(render({"match": {"replicas": 3}}), "Deployment", f"{RELEASE}-match")["spec"]["replicas"] == 3
    for values in ({"match": {"autoscaling": {"enabled": True}}},
                   {"match": {"replicas": 2, "autoscaling": {"enabled": True, "maxReplicas": 4}},
                    "detect": {"autoscaling": {"enabled": True}}}):
        with pytest.raises(helm.HelmError, match="active/standby"):
            render(values)
    # Beside autoscaled detect and embed, match keeps its fixed count and no autoscaler.
    objects = render({"detect": {"autoscaling": {"enabled": True}}, "embed": {"autoscaling": {"enabled": True}}})
    hpas = [h["spec"]["scaleTargetRef"]["name"] for h in of_kind(objects, "HorizontalPodAutoscaler")]
    assert sorted(hpas) == [f"{RELEASE}-detect", f"{RELEASE}-embed"]
    assert named(objects, "Deployment", f"{RELEASE}-match")["spec"]["replicas"] == 2


def test_disruption_budgets(objects):
    pdbs = of_kind(objects, "PodDisruptionBudget")
    for d in services_of(objects):
        labels = pod_labels(d)
        matching = [p for p in pdbs
                    if all(labels.get(k) == v for k, v in p["spec"]["selector"]["matchLabels"].items())]
        assert len(matching) == 1, d["metadata"]["name"]
        # Never a budget that blocks node drains for a single pod.
        assert matching[0]["spec"].get("maxUnavailable", 0) >= 1


# Configuration ------------------------------------------------------------------------------------


def test_lfr_toml_configures_every_service(case, objects):
    cfg = config_toml(objects)
    for section in ("nats", "bus", "log", "ingest", "models", *SERVICES):
        assert section in cfg, section
    for service in SERVICES:
        assert cfg[service]["http_addr"] == f"0.0.0.0:{PORTS[service]}"
    assert cfg["dispatch"]["console_addr"] == "0.0.0.0:8080"
    assert cfg["models"]["dir"] == "/opt/lfr/models"
    assert cfg["nats"]["url"].startswith("tls://") and cfg["nats"]["ca"] == CA_PATH
    # Whole numbers stay integers (lfr's integer keys refuse floats).
    assert cfg["bus"]["transient_max_bytes"] == 268435456 and isinstance(cfg["ingest"]["jpeg_quality"], int)
    # Every pod's config volume maps its key to /etc/lfr/lfr.toml.
    for d in pod_workloads(objects):
        (vol,) = [v for v in d["spec"]["template"]["spec"]["volumes"] if v["name"] == "config"]
        (item,) = (vol.get("configMap") or vol.get("secret"))["items"]
        assert item["path"] == "lfr.toml"
        cfg_d = config_toml(objects, item["key"])
        if component(d) == "ingest":
            assert cfg_d["ingest"]["http_addr"] == "0.0.0.0:9101"
        checksum = d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        assert re.fullmatch(r"[0-9a-f]{64}", checksum)
    values = {} if case == "default" else load_values(CHART / "examples" / case)
    cameras = values.get("ingest", {}).get("cameras", [])
    assert [c["id"] for c in cfg["ingest"].get("cameras", [])] == [c["id"] for c in cameras]


def test_bus_replicas_reach_every_lfr_toml(case, objects):
    """bus.replicas (and the latency budget) as the values give them, in the lfr.toml of every
    pod: the keeper declares the streams with them and each service checks the streams against
    its own copy, so they must agree everywhere."""
    want = chart_values(case_values(case))["config"]["bus"]
    assert want["replicas"] == (3 if case == "transport-hub.yaml" else 1)
    for d in pod_workloads(objects):
        (vol,) = [v for v in d["spec"]["template"]["spec"]["volumes"] if v["name"] == "config"]
        (item,) = (vol.get("configMap") or vol.get("secret"))["items"]
        bus = config_toml(objects, item["key"])["bus"]
        assert (bus["replicas"], bus["latency_budget"]) == (want["replicas"], 2), d["metadata"]["name"]
        assert bus["latency_budget"] <= bus["transient_ttl"]


def test_bus_replicas_fit_the_bundled_nats():
    hub = case_values("transport-hub.yaml")
    assert config_toml(render(hub))["bus"]["replicas"] == 3
    with pytest.raises(helm.HelmError, match=r"exceeds the bundled NATS's 3 server"):
        render(merged(hub, {"config": {"bus": {"replicas": 4}}}))
    with pytest.raises(helm.HelmError, match=r"exceeds the bundled NATS's 1 server"):
        render(merged(hub, {"nats": {"config": {"cluster": {"enabled": False}}}}))
    # An external NATS: the chart cannot count its servers; NATS itself refuses too many copies.
    assert config_toml(render({"config": {"bus": {"replicas": 5}}}))["bus"]["replicas"] == 5


def test_ingest_shards_split_the_cameras():
    objects = list(_rendered("transport-hub.yaml"))
    ingest = [d for d in of_kind(objects, "Deployment") if component(d) == "ingest"]
    assert len(ingest) == 4 and all(d["spec"]["replicas"] == 1 for d in ingest)
    assert all(d["spec"]["strategy"]["type"] == "Recreate" for d in ingest)
    seen = []
    for d in ingest:
        (vol,) = [v for v in d["spec"]["template"]["spec"]["volumes"] if v["name"] == "config"]
        (item,) = vol["configMap"]["items"]
        seen += [c["id"] for c in config_toml(objects, item["key"])["ingest"]["cameras"]]
    all_ids = [c["id"] for c in config_toml(objects)["ingest"]["cameras"]]
    assert sorted(seen) == sorted(all_ids) and len(set(seen)) == 40


def test_config_can_live_in_a_secret():
    """Camera URLs with credentials: lfr.toml in a Secret instead of a ConfigMap."""
    objects = render({"configInSecret": True,
                      "ingest": {"cameras": [{"id": "cam-1", "source": "rtsp://10.0.0.9/s"}]}})
    assert of_kind(objects, "ConfigMap") == []
    (secret,) = of_kind(objects, "Secret")
    assert config_toml(objects)["ingest"]["cameras"][0]["id"] == "cam-1"
    for d in pod_workloads(objects):
        (vol,) = [v for v in d["spec"]["template"]["spec"]["volumes"] if v["name"] == "config"]
        assert vol["secret"]["secretName"] == secret["metadata"]["name"]


def test_bad_values_are_refused():
    bad = [
        ({"ingest": {"cameras": [{"id": "Jane Doe", "source": "rtsp://x"}]}}, "id"),
        ({"ingest": {"cameras": [{"id": "a", "source": "rtsp://x"}, {"id": "a", "source": "rtsp://y"}]}}, "twice"),
        ({"ingest": {"cameras": [{"id": "a"}]}}, "source"),
        ({"ingest": {"replicas": 2}}, "shards"),
        ({"masterKey": {"existingSecret": ""}}, "masterKey"),
        ({"dispatch": {"config": {"api_token": "x"}}}, "apiToken"),
        ({"models": {"source": "volume", "volume": {"hostPath": {"path": "/models"}}}}, "hostPath"),
        ({"nats": {"egress": {"namespaceSelector": None, "podSelector": None, "cidrs": []}}}, "nats.egress"),
        # NATS: the old shared credentials, a plain URL with TLS on, no CA, an unknown identity.
        ({"nats": {"credentials": {"existingSecret": "lfr-nats-creds"}}}, "own identity"),
        ({"nats": {"url": "nats://nats.nats.svc:4222"}}, "tls://"),
        ({"nats": {"tls": {"ca": {"secretName": "", "configMapName": ""}}}}, "nats.tls.ca"),
        ({"nats": {"identities": {"detector": {"existingSecret": "x"}}}}, "no such identity"),
        ({"nats": {"identities": {"match": {"nkey": "UABC"}}}}, "not a public user nkey"),
        ({"nats": {"identities": {"match": {"nkey": "SUAM" + "A" * 54}}}}, "is a seed"),
        # The bus: no copy at all, more than JetStream keeps, a budget past the frames' TTL.
        ({"config": {"bus": {"replicas": 0}}}, "1 to 5"),
        ({"config": {"bus": {"replicas": 6}}}, "1 to 5"),
        ({"config": {"bus": {"latency_budget": 6}}}, "latency_budget"),
        ({"config": {"bus": {"transient_ttl": 1.5}}}, "latency_budget"),
    ]
    for values, message in bad:
        with pytest.raises(helm.HelmError, match=message):
            render(values)


def test_models_from_a_volume():
    objects = render({"models": {"source": "volume"}})
    for d in pod_workloads(objects):
        pod = d["spec"]["template"]["spec"]
        mounts = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "models"]
        if component(d) in ("detect", "embed", "dispatch", "admin"):
            assert mounts == [{"name": "models", "mountPath": "/opt/lfr/models", "readOnly": True}]
            (vol,) = [v for v in pod["volumes"] if v["name"] == "models"]
            assert vol["persistentVolumeClaim"]["claimName"] == "lfr-models"
        else:
            assert mounts == []


def test_service_monitor_scrapes_every_workload():
    objects = list(_rendered("transport-hub.yaml"))
    (sm,) = of_kind(objects, "ServiceMonitor")
    check_service_monitor(sm)
    selector = sm["spec"]["selector"]["matchLabels"]
    services = [s for s in of_kind(objects, "Service")
                if all(s["metadata"]["labels"].get(k) == v for k, v in selector.items())]
    assert {component(s) for s in services} == set(SERVICES)
    assert len(services) == len(services_of(objects))
    assert of_kind(list(_rendered("default")), "ServiceMonitor") == []


# NATS ---------------------------------------------------------------------------------------------

_TOKEN = re.compile(r'\s+|#[^\n]*|//[^\n]*|"(?:[^"\\]|\\.)*"|[{}\[\]]|[:=]|[,;]|[^\s{}\[\]:=,;#"]+')


def parse_nats_conf(text: str) -> dict:
    """The subset of the NATS configuration syntax the chart writes: maps, lists, quoted strings,
    bare words and booleans, comments. Repeated keys (include) become lists."""
    tokens = [t for t in _TOKEN.findall(text)
              if t.strip() and not t.startswith(("#", "//")) and t not in (",", ";")]
    pos = 0

    def value():
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok == "{":
            return mapping("}")
        if tok == "[":
            items = []
            while tokens[pos] != "]":
                items.append(value())
            pos += 1
            return items
        if tok.startswith('"'):
            return json.loads(tok)
        return {"true": True, "false": False}.get(tok, tok)

    def mapping(end):
        nonlocal pos
        out = {}
        while pos < len(tokens) and tokens[pos] != end:
            key = tokens[pos].strip('"')
            pos += 1
            if tokens[pos] in (":", "="):
                pos += 1
            v = value()
            if key in out:
                out[key] = (out[key] if isinstance(out[key], list) else [out[key]]) + [v]
            else:
                out[key] = v
        pos += 1
        return out

    return mapping(None)


def nats_users(objects: list[dict]) -> dict[str, dict]:
    """The users of the bundled NATS, by public key, from the ConfigMap the chart renders."""
    cm = named(objects, "ConfigMap", f"{RELEASE}-nats-auth")
    assert set(cm["data"]) == {"authorization.conf"}
    conf = parse_nats_conf(cm["data"]["authorization.conf"])
    assert set(conf) == {"authorization"} and set(conf["authorization"]) == {"users"}
    users = conf["authorization"]["users"]
    by_key = {u["nkey"]: u for u in users}
    assert len(by_key) == len(users), "one user per key"
    return by_key


def as_matrix(user: dict) -> dict:
    """A rendered user's permissions in the shape of files/nats-permissions.json."""
    p = user["permissions"]
    assert set(p) <= {"publish", "subscribe", "allow_responses"}
    assert set(p["publish"]) == {"allow", "deny"} and set(p["subscribe"]) == {"allow"}
    return {"publish_allow": p["publish"]["allow"], "publish_deny": p["publish"]["deny"],
            "subscribe_allow": p["subscribe"]["allow"], "allow_responses": p.get("allow_responses", False)}


def test_permission_file_is_the_matrix_of_every_identity():
    """files/nats-permissions.json is generated (`lfr bus permissions --format json`; a Rust test
    keeps it equal to the contract): here only its shape, and that it names every identity."""
    assert set(IDENTITIES) == set(SERVICES) | {"bus", "admin", "loadtest"}
    for name, p in PERMISSIONS.items():
        assert set(p) == {"publish_allow", "publish_deny", "subscribe_allow", "allow_responses"}, name
        assert p["publish_allow"] and all(isinstance(s, str) and s for s in p["publish_allow"]), name
        assert p["subscribe_allow"] == sorted(p["subscribe_allow"]), name
        assert f"_INBOX_{name}.>" in p["subscribe_allow"], name
        assert ">" not in p["publish_allow"] + p["subscribe_allow"], f"{name} may do anything"


def test_one_nats_user_per_identity_with_its_permissions():
    """The bundled NATS's users: one per identity, keyed by its public nkey from the values, with
    exactly the permissions of files/nats-permissions.json; the load test only when its key is
    given."""
    users = nats_users(list(_rendered("transport-hub.yaml")))
    assert set(users) == set(NKEYS.values())
    for identity, key in NKEYS.items():
        assert as_matrix(users[key]) == PERMISSIONS[identity], identity
    with_loadtest = {**NKEYS, "loadtest": public_nkey("loadtest")}
    users = nats_users(render(merged(case_values("transport-hub.yaml"), nkeys_values(with_loadtest))))
    assert len(users) == len(IDENTITIES) == 9
    for identity, key in with_loadtest.items():
        assert as_matrix(users[key]) == PERMISSIONS[identity], identity
    # No users ConfigMap for an external NATS: its operator includes `lfr bus credentials`'s.
    assert [o for o in _rendered("pinch-point.yaml") if o["metadata"]["name"].endswith("-nats-auth")] == []


def test_bundled_nats_needs_every_identitys_key():
    hub = case_values("transport-hub.yaml")
    for identity in NKEYS:
        values = copy.deepcopy(hub)
        values["nats"]["identities"][identity]["nkey"] = ""
        with pytest.raises(helm.HelmError, match=rf"nats\.identities\.{identity}\.nkey"):
            render(values)
    values = copy.deepcopy(hub)
    values["nats"]["identities"]["purge"]["existingSecret"] = ""
    with pytest.raises(helm.HelmError, match=r"nats\.identities\.purge\.existingSecret"):
        render(values)


def test_nats_server_accepts_the_users(tmp_path):
    """nats-server itself parses the rendered users (it checks every nkey's checksum too)."""
    nats_server = LFR_HOME / "venv" / "bin" / "nats-server"
    if not nats_server.exists():
        pytest.skip("needs nats-server (scripts/setup.sh)")
    cm = named(list(_rendered("transport-hub.yaml")), "ConfigMap", f"{RELEASE}-nats-auth")
    (tmp_path / "authorization.conf").write_text(cm["data"]["authorization.conf"])
    (tmp_path / "nats.conf").write_text("listen: 127.0.0.1:-1\ninclude ./authorization.conf\n")
    out = subprocess.run([str(nats_server), "-t", "-c", str(tmp_path / "nats.conf")],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    broken = cm["data"]["authorization.conf"].replace(NKEYS["detect"], NKEYS["detect"][:-2] + "AA")
    (tmp_path / "authorization.conf").write_text(broken)
    out = subprocess.run([str(nats_server), "-t", "-c", str(tmp_path / "nats.conf")],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0, "nats-server did not check the keys"


def test_the_nats_chart_mounts_and_includes_the_users():
    """What the NATS chart is given (it cannot take the parent's rendered content): an include of
    authorization.conf, a volume of the ConfigMap the lfr chart renders, mounted where the include
    points."""
    values = chart_values(case_values("transport-hub.yaml"))["nats"]
    include = values["config"]["merge"]["lfr$include"]
    (mount,) = [p["value"] for p in values["container"]["patch"]
                if p["op"] == "add" and p["path"] == "/volumeMounts/-" and p["value"]["name"] == "lfr-nats-auth"]
    (volume,) = [p["value"] for p in values["podTemplate"]["patch"]
                 if p["op"] == "add" and p["path"] == "/spec/volumes/-" and p["value"]["name"] == "lfr-nats-auth"]
    # The NATS chart's nats.conf is /etc/nats-config/nats.conf; includes are relative to it.
    path = posixpath.normpath(posixpath.join("/etc/nats-config", include))
    assert path == posixpath.join(mount["mountPath"], "authorization.conf") and mount["readOnly"] is True
    # The NATS chart templates `$tplYaml` values with its own context: the release name.
    assert volume["configMap"]["name"] == {"$tplYaml": "{{ .Release.Name }}-nats-auth"}
    objects = list(_rendered("transport-hub.yaml"))
    assert named(objects, "ConfigMap", f"{RELEASE}-nats-auth")
    for broken in ({"container": {"patch": []}}, {"podTemplate": {"patch": []}},
                   {"config": {"merge": {"lfr$include": None}}}):
        with pytest.raises(helm.HelmError, match="lfr-nats-auth"):
            render(merged(case_values("transport-hub.yaml"), {"nats": broken}))


def test_tls_to_nats(case, objects):
    """Every lfr pod trusts the NATS server's CA (mounted, LFR_NATS__CA, `ca` in lfr.toml) and uses
    tls:// URLs; the bundled NATS serves TLS to clients and between servers."""
    values = chart_values(case_values(case))
    ca = values["nats"]["tls"]["ca"]
    for d in pod_workloads(objects):
        pod = d["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        env = env_of(c)
        assert env["LFR_NATS__CA"]["value"] == CA_PATH
        assert env["LFR_NATS__URL"]["value"].startswith("tls://")
        (mount,) = [m for m in c["volumeMounts"] if m["name"] == "nats-ca"]
        assert mount == {"name": "nats-ca", "mountPath": posixpath.dirname(CA_PATH), "readOnly": True}
        (vol,) = [v for v in pod["volumes"] if v["name"] == "nats-ca"]
        src = vol.get("secret") or vol.get("configMap")
        # Only the certificate: never the server's private key, even from the server's Secret.
        assert src["items"] == [{"key": ca["key"] if ca["secretName"] else "ca.crt",
                                 "path": posixpath.basename(CA_PATH)}]
        if ca["secretName"]:
            assert vol["secret"]["secretName"] == ca["secretName"]
        else:  # cert-manager: the ca.crt of the server certificate's Secret
            assert vol["secret"]["secretName"] == values["nats"]["config"]["nats"]["tls"]["secretName"]
    cfg = config_toml(objects)["nats"]
    assert cfg["ca"] == CA_PATH and cfg["url"].startswith("tls://")
    if values["nats"]["enabled"]:
        nc = values["nats"]["config"]
        assert nc["nats"]["tls"]["enabled"] and nc["nats"]["tls"]["secretName"]
        assert nc["cluster"]["tls"]["enabled"] and nc["cluster"]["tls"]["secretName"]
        assert nc["cluster"]["tls"]["merge"] == {"ca_file": "/etc/nats-certs/cluster/ca.crt", "verify": True}


def test_cert_manager_makes_the_server_certificate():
    objects = list(_rendered("transport-hub.yaml"))
    (cert,) = of_kind(objects, "Certificate")
    check_certificate(cert)
    spec = cert["spec"]
    assert spec["secretName"] == "lfr-nats-server-tls"
    assert spec["issuerRef"] == {"name": "lfr-nats-ca", "kind": "Issuer"}
    names = set(spec["dnsNames"])
    svc, headless = f"{RELEASE}-nats", f"{RELEASE}-nats-headless"
    # The URL the services use, and each server's route name (tls://<pod>.<headless>:6222).
    assert f"{svc}.{NAMESPACE}.svc" in names and f"*.{headless}" in names
    assert f"*.{headless}.{NAMESPACE}.svc.cluster.local" in names
    assert {"server auth", "client auth"} <= set(spec["usages"])
    assert of_kind(list(_rendered("default")), "Certificate") == []
    # A CA from a ConfigMap (a trust bundle) instead.
    objects = render({"nats": {"tls": {"ca": {"configMapName": "lfr-trust"}}}})
    for d in pod_workloads(objects):
        (vol,) = [v for v in d["spec"]["template"]["spec"]["volumes"] if v["name"] == "nats-ca"]
        assert vol["configMap"]["name"] == "lfr-trust"
    # A trial against a plain NATS: no CA, no tls:// required.
    objects = render({"nats": {"url": "nats://10.0.0.5:4222", "tls": {"enabled": False}}})
    for d in pod_workloads(objects):
        assert "LFR_NATS__CA" not in env_of(d["spec"]["template"]["spec"]["containers"][0])
    assert "ca" not in config_toml(objects)["nats"]


def test_bundled_nats_store_is_encrypted():
    """JetStream encryption at rest: cipher and key in the NATS chart's values, the key from a
    Secret through LFR_NATS_STORE_KEY (never a value)."""
    values = chart_values(case_values("transport-hub.yaml"))["nats"]
    merge = values["config"]["jetstream"]["merge"]
    assert merge == {"cipher": "chachapoly", "key": "<< $LFR_NATS_STORE_KEY >>"}
    env = values["container"]["env"]["LFR_NATS_STORE_KEY"]
    assert set(env) == {"valueFrom"}
    assert env["valueFrom"]["secretKeyRef"] == {"name": "lfr-nats-store-key", "key": "LFR_NATS_STORE_KEY"}
    hub = case_values("transport-hub.yaml")
    for broken in ({"config": {"jetstream": {"merge": {"cipher": None, "key": None}}}},
                   {"container": {"env": {"LFR_NATS_STORE_KEY": {"value": "x" * 64}}}},
                   {"container": {"env": {"LFR_NATS_STORE_KEY": {"value": "x" * 64, "valueFrom": None}}}}):
        with pytest.raises(helm.HelmError, match="LFR_NATS_STORE_KEY"):
            render(merged(hub, {"nats": broken}))


def test_bus_init_job_and_keeper(case, objects):
    """The topology is declared as the `bus` identity, by a hook Job after every install and
    upgrade and by the keeper, which declares again whatever goes missing."""
    job = named(objects, "Job", f"{RELEASE}-bus-init")
    ann = job["metadata"]["annotations"]
    assert ann["helm.sh/hook"] == "post-install,post-upgrade"
    assert "hook-succeeded" in ann["helm.sh/hook-delete-policy"]
    assert job["spec"]["backoffLimit"] >= 1 and job["spec"]["activeDeadlineSeconds"] <= 300
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (c,) = pod["containers"]
    assert c["command"] == ["lfr", "bus", "init", "--config", "/etc/lfr/lfr.toml"]
    keeper = named(objects, "Deployment", f"{RELEASE}-bus-keeper")
    assert keeper["spec"]["replicas"] == 1
    (k,) = keeper["spec"]["template"]["spec"]["containers"]
    assert k["command"][:4] == ["lfr", "bus", "init", "--watch"] and k["command"][-2:] == ["--config", "/etc/lfr/lfr.toml"]
    services = services_of(objects)
    for w, container in ((job, c), (keeper, k)):
        assert container["image"] == services[0]["spec"]["template"]["spec"]["containers"][0]["image"]
        env = env_of(container)
        assert env["LFR_NATS__CREDENTIALS"]["value"].endswith("/bus.nk")
        assert env["LFR_NATS__URL"]["value"] == config_toml(objects)["nats"]["url"]
        assert "LFR_MASTER_KEY" not in env
        assert_restricted(w)


def test_admin_pod():
    """The `lfr` CLI's pod: the admin identity, the master key and the models; no replica unless
    scaled up for a task."""
    objects = list(_rendered("default"))
    admin = named(objects, "Deployment", f"{RELEASE}-admin")
    assert admin["spec"]["replicas"] == 0
    (c,) = admin["spec"]["template"]["spec"]["containers"]
    assert c["command"] == ["sleep", "infinity"]
    env = env_of(c)
    assert env["LFR_NATS__CREDENTIALS"]["value"] == "/etc/nats/credentials/admin.nk"
    assert env["LFR_MASTER_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "lfr-master-key"
    assert env["LFR_MODELS_DIR"]["value"] == "/opt/lfr/models"
    assert [d for d in of_kind(render({"admin": {"enabled": False}}), "Deployment")
            if component(d) == "admin"] == []


def _nats_chart() -> Path | None:
    """A copy of the NATS chart: LFR_NATS_CHART (a directory or .tgz), or what `helm dependency
    build` put under charts/."""
    if os.environ.get("LFR_NATS_CHART"):
        return Path(os.environ["LFR_NATS_CHART"])
    found = sorted((CHART / "charts").glob("nats*")) if (CHART / "charts").is_dir() else []
    return found[-1] if found else None


def test_the_nats_chart_renders_what_lfr_adds(tmp_path):
    """With the NATS chart at hand: its server configuration includes the users, serves TLS,
    encrypts the store with the key from the Secret, and its pods mount the users ConfigMap."""
    source = _nats_chart()
    if source is None:
        pytest.skip("the NATS chart is not vendored (helm dependency build, or LFR_NATS_CHART)")
    chart = tmp_path / "lfr"
    shutil.copytree(CHART, chart, ignore=shutil.ignore_patterns("charts"))
    (chart / "charts").mkdir()
    if source.is_dir():
        shutil.copytree(source, chart / "charts" / "nats")
    else:
        with tarfile.open(source) as tgz:
            tgz.extractall(chart / "charts", filter="data")
    manifests = helm.Chart.load(str(chart)).render(
        values=case_values("transport-hub.yaml"), name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects = [doc for name, text in manifests.items() if name.endswith(".yaml")
               for doc in yaml.safe_load_all(text) if doc]
    (sts,) = of_kind(objects, "StatefulSet")
    assert all(pod_labels(sts).get(k) == v for k, v in NATS_POD_LABELS.items())
    nats_cm = named(objects, "ConfigMap", f"{RELEASE}-nats-config")
    conf = nats_cm["data"]["nats.conf"]
    assert "include ../lfr-nats-auth/authorization.conf;" in conf
    assert re.search(r'"cipher": "chachapoly"', conf) and re.search(r'"key": \$LFR_NATS_STORE_KEY\b', conf)
    assert '"cert_file": "/etc/nats-certs/nats/tls.crt"' in conf
    assert re.search(r'"routes": \[\s*"tls://', conf) and '"verify": true' in conf
    assert '"max_payload": 8MB' in conf
    pod = sts["spec"]["template"]["spec"]
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["lfr-nats-auth"]["configMap"]["name"] == f"{RELEASE}-nats-auth"
    assert vols["nats-tls"]["secret"]["secretName"] == "lfr-nats-server-tls"
    for c in pod["containers"][:2]:  # nats and its config reloader
        assert {"name": "lfr-nats-auth", "mountPath": "/etc/lfr-nats-auth", "readOnly": True} in c["volumeMounts"]
    nats = pod["containers"][0]
    assert env_of(nats)["LFR_NATS_STORE_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "lfr-nats-store-key"
    assert "/etc/lfr-nats-auth/authorization.conf" in pod["containers"][1]["args"]  # reloaded on change
    svc = named(objects, "Service", f"{RELEASE}-nats")
    cfg = tomllib.loads(named(objects, "ConfigMap", f"{RELEASE}-config")["data"]["lfr.toml"])
    assert cfg["nats"]["url"] == f"tls://{svc['metadata']['name']}.{NAMESPACE}.svc:4222"
    assert of_kind(objects, "Secret") == []

    # nats-server accepts that configuration, laid out as the pod's volumes lay it out (the
    # users at ../lfr-nats-auth/ of nats.conf), with a throw-away certificate.
    nats_server, openssl = LFR_HOME / "venv" / "bin" / "nats-server", shutil.which("openssl")
    if not (nats_server.exists() and openssl):
        return
    root = tmp_path / "etc"
    for d in ("nats-config", "lfr-nats-auth", "certs"):
        (root / d).mkdir(parents=True)
    certs = root / "certs"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(certs / "tls.key"), "-out", str(certs / "tls.crt"), "-days", "1",
                    "-subj", f"/CN={RELEASE}-nats"], check=True, capture_output=True)
    shutil.copy(certs / "tls.crt", certs / "ca.crt")
    local = (conf.replace("/etc/nats-certs/nats/", f"{certs}/").replace("/etc/nats-certs/cluster/", f"{certs}/")
             .replace('"/data"', json.dumps(str(tmp_path / "data"))).replace("/var/run/nats/", f"{tmp_path}/"))
    (root / "nats-config" / "nats.conf").write_text(local)
    auth = named(objects, "ConfigMap", f"{RELEASE}-nats-auth")["data"]["authorization.conf"]
    (root / "lfr-nats-auth" / "authorization.conf").write_text(auth)
    env = {**os.environ, "SERVER_NAME": f"{RELEASE}-nats-0", "LFR_NATS_STORE_KEY": os.urandom(32).hex()}
    out = subprocess.run([str(nats_server), "-t", "-c", str(root / "nats-config" / "nats.conf")],
                         env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    del env["LFR_NATS_STORE_KEY"]  # without the Secret's key, the server refuses to start
    out = subprocess.run([str(nats_server), "-t", "-c", str(root / "nats-config" / "nats.conf")],
                         env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "LFR_NATS_STORE_KEY" in out.stdout + out.stderr


# The real services -----------------------------------------------------------------------------



def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
            return r.status == 200
    except (OSError, urllib.error.URLError):
        return False


def _unwrap(value) -> str:
    """A NATS chart value as it lands in nats.conf: `<< x >>` unquoted, anything else quoted."""
    m = re.fullmatch(r"<<\s+(.*?)\s+>>", str(value))
    return m.group(1) if m else json.dumps(value)


def _jsz(monitor_port: int) -> dict:
    url = f"http://127.0.0.1:{monitor_port}/jsz?streams=true&consumers=true&config=true"
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


def _placement(monitor_ports: list[int]) -> tuple[dict, dict]:
    """Each stream's configured replicas and the servers holding a copy; each consumer's config
    and state (the stage consumers live with their single-copy stream, on one server)."""
    streams, consumers = {}, {}
    for server, port in enumerate(monitor_ports):
        for account in _jsz(port).get("account_details", []):
            for st in account.get("stream_detail", []):
                entry = streams.setdefault(st["name"], {"replicas": st["config"].get("num_replicas", 1),
                                                        "servers": set()})
                entry["servers"].add(server)
                for c in st.get("consumer_detail") or []:
                    consumers.setdefault((st["name"], c["name"]), c)
    return streams, consumers


def test_rendered_release_runs_secured(tmp_path):
    """The hub example as the chart renders it, run for real on loopback: the bundled NATS's
    three servers (nats.config.cluster.replicas) in one cluster, with the chart's users
    (the ConfigMap's authorization.conf at the path the NATS chart's include names), TLS and the
    store encrypted as the NATS chart's values say; the bus-init Job's command declares the
    topology as `bus` and must succeed; the keeper runs; every pod of every service (four ingest
    shards on the sample photos, two match replicas, two dispatch) connects with its own seed and
    CA from its pod's environment and becomes ready. Then the placement is NATS's own account:
    every record stream and bucket on all three servers (bus.replicas 3), the transient streams
    on one, and the match consumer pinned to exactly one of the two matchers (active/standby).
    Only what the cluster provides is changed: hosts and ports, the files' directories (the seeds
    of `lfr bus credentials`, the certificate of `lfr bus tls`), the local models, and the routes
    between the servers, plain on loopback: NATS verifies both ends of a TLS route, and `lfr bus
    tls` makes a server-only certificate (cert-manager's serves both ends)."""
    lfr = REPO / "target" / "debug" / "lfr"
    binaries = {s: REPO / "target" / "debug" / f"lfr-{s}" for s in SERVICES}
    nats_server = LFR_HOME / "venv" / "bin" / "nats-server"
    models = Path(os.environ.get("LFR_MODELS_DIR", LFR_HOME / "models"))
    samples = LFR_HOME / "samples" / "faces"
    missing = [str(p) for p in [lfr, *binaries.values(), nats_server, models / "manifest.toml", samples]
               if not p.exists()]
    if missing:
        pytest.skip(f"needs `cargo build --workspace --bins` and scripts/setup.sh: missing {missing}")

    # What the operator makes first: the identities' seeds and public keys, the certificate.
    creds, tls = tmp_path / "creds", tmp_path / "tls"
    subprocess.run([str(lfr), "bus", "credentials", "--out", str(creds)], check=True, capture_output=True)
    subprocess.run([str(lfr), "bus", "tls", "--out", str(tls), "--host", "localhost", "--host", "127.0.0.1"],
                   check=True, capture_output=True)
    users = re.findall(r'# (\w+)\n\s*\{\n\s*nkey: "(U[A-Z2-7]{55})"', (creds / "nats-users.conf").read_text())
    keys = {i: k for i, k in users if i != "loadtest"}
    assert set(keys) == set(NKEYS)

    values = merged(case_values("transport-hub.yaml"), nkeys_values(keys))
    values["ingest"]["cameras"] = [
        {"id": f"sample-{i}", "source": f"dir:{samples}", "fps": 2, "repeat": True} for i in range(8)
    ]
    objects = render(values)
    nv = chart_values(values)["nats"]
    servers = int(nv["config"]["cluster"]["replicas"])
    assert servers == 3 and config_toml(objects)["bus"]["replicas"] == servers
    client_ports = [free_port() for _ in range(servers)]
    route_ports = [free_port() for _ in range(servers)]
    monitor_ports = [free_port() for _ in range(servers)]
    # The cluster's Service stands for every server: the services get all three.
    url = ",".join(f"tls://127.0.0.1:{p}" for p in client_ports)
    (cm,) = [o for o in of_kind(objects, "ConfigMap") if o["metadata"]["name"] == f"{RELEASE}-config"]
    files = {}
    for key, text in cm["data"].items():
        cfg = tomllib.loads(text)  # the chart's own text, changed only where the cluster shows
        assert cfg["nats"]["ca"] == CA_PATH and cfg["models"]["dir"] == "/opt/lfr/models"
        text = re.sub(r'(?m)^url = ".*"$', f'url = "{url}"', text)
        text = text.replace(f'ca = "{CA_PATH}"', f"ca = {json.dumps(str(tls / 'ca.pem'))}")
        text = text.replace('dir = "/opt/lfr/models"', f"dir = {json.dumps(str(models))}")
        files[key] = tmp_path / key
        files[key].write_text(text)

    # The servers: what the NATS chart writes from lfr's values, laid out as its pods' volumes are
    # (nats.conf in nats-config/, the users ConfigMap in lfr-nats-auth/, the include between).
    etc = tmp_path / "etc"
    (etc / "nats-config").mkdir(parents=True)
    (etc / "lfr-nats-auth").mkdir()
    auth = named(objects, "ConfigMap", f"{RELEASE}-nats-auth")["data"]["authorization.conf"]
    (etc / "lfr-nats-auth" / "authorization.conf").write_text(auth)
    js = nv["config"]["jetstream"]["merge"]
    assert nv["config"]["cluster"]["enabled"] and nv["config"]["cluster"]["tls"]["enabled"]
    for i in range(servers):
        routes = [f"nats-route://127.0.0.1:{p}" for j, p in enumerate(route_ports) if j != i]
        (etc / "nats-config" / f"nats-{i}.conf").write_text("\n".join([
            f"server_name: {RELEASE}-nats-{i}",
            f"port: {client_ports[i]}",
            "host: 127.0.0.1",
            f"http: 127.0.0.1:{monitor_ports[i]}",
            f"max_payload: {_unwrap(nv['config']['merge']['max_payload'])}",
            "tls {",
            f"  cert_file: {json.dumps(str(tls / 'server.pem'))}",
            f"  key_file: {json.dumps(str(tls / 'server-key.pem'))}",
            f"  timeout: {nv['config']['nats']['tls']['merge']['timeout']}",
            "}",
            "cluster {",
            f"  name: {RELEASE}-nats",
            "  host: 127.0.0.1",
            f"  port: {route_ports[i]}",
            f"  routes: [{', '.join(routes)}]",
            "}",
            "jetstream {",
            f"  store_dir: {json.dumps(str(tmp_path / f'js-{i}'))}",
            f"  cipher: {_unwrap(js['cipher'])}",
            f"  key: {_unwrap(js['key'])}",
            "}",
            f"include {nv['config']['merge']['lfr$include']}",
            "",
        ]))
    procs = []

    def start(name, argv, env):
        log = open(tmp_path / f"{name}.log", "wb")
        procs.append((name, subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)))

    def log_of(name):
        return (tmp_path / f"{name}.log").read_text(errors="replace")

    master_key = base64.b64encode(os.urandom(32)).decode()

    def pod_env(workload: dict) -> dict:
        """The pod's environment, with the cluster's paths and secrets replaced by local ones."""
        (c,) = workload["spec"]["template"]["spec"]["containers"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("LFR_")}
        for e in c.get("env", []):
            if "valueFrom" in e:
                assert e["name"] == "LFR_MASTER_KEY", e
                env[e["name"]] = master_key
            else:
                env[e["name"]] = e["value"]
        if "LFR_PURGE__ANCHOR_KEY_FILE" in env:
            env["LFR_PURGE__ANCHOR_KEY_FILE"] = str(tmp_path / "audit-anchor.key")
        identity = identity_of(workload)
        assert env["LFR_NATS__CREDENTIALS"] == f"/etc/nats/credentials/{identity}.nk"
        env["LFR_NATS__CREDENTIALS"] = str(creds / f"{identity}.nk")
        assert env["LFR_NATS__CA"] == CA_PATH
        env["LFR_NATS__CA"] = str(tls / "ca.pem")
        env["LFR_NATS__URL"] = url
        if "LFR_MODELS_DIR" in env:
            env["LFR_MODELS_DIR"] = str(models)
        return env

    def argv(workload: dict, config: Path) -> list[str]:
        (c,) = workload["spec"]["template"]["spec"]["containers"]
        cmd = [str(config) if a == "/etc/lfr/lfr.toml" else a for a in c["command"]]
        binary = cmd[0]
        return [str(lfr if binary == "lfr" else binaries[binary.removeprefix("lfr-")]), *cmd[1:]]

    try:
        store_key = os.urandom(32).hex()
        for i in range(servers):
            start(f"nats-{i}", [str(nats_server), "-c", str(etc / "nats-config" / f"nats-{i}.conf")],
                  {**os.environ, "LFR_NATS_STORE_KEY": store_key})
        # The hook Job: declares the topology as `bus` (retrying here as the Job's pods would,
        # while the servers elect JetStream's meta leader).
        job = named(objects, "Job", f"{RELEASE}-bus-init")
        deadline = time.monotonic() + 60
        while True:
            done = subprocess.run(argv(job, files["lfr.toml"]), env=pod_env(job), capture_output=True,
                                  text=True, timeout=30)
            if done.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert done.returncode == 0, f"bus-init failed: {done.stdout}{done.stderr}\n{log_of('nats-0')[-2000:]}"
        for i in range(servers):
            assert "chacha" in log_of(f"nats-{i}").lower(), f"store of nats-{i} not encrypted"
        keeper = named(objects, "Deployment", f"{RELEASE}-bus-keeper")
        start("bus-keeper", argv(keeper, files["lfr.toml"]), pod_env(keeper))
        ports = {}
        for d in services_of(objects):
            service = component(d)
            (vol,) = [v for v in d["spec"]["template"]["spec"]["volumes"] if v["name"] == "config"]
            (item,) = vol["configMap"]["items"]
            (container,) = d["spec"]["template"]["spec"]["containers"]
            assert container["command"][1:] == ["--config", "/etc/lfr/lfr.toml"]
            # Every pod of the Deployment (an autoscaled one: a single pod here).
            for pod in range(d["spec"].get("replicas", 1)):
                name = f"{d['metadata']['name']}-{pod}"
                port = ports[name] = free_port()
                env = {**pod_env(d), f"LFR_{service.upper()}__HTTP_ADDR": f"127.0.0.1:{port}",
                       "OMP_NUM_THREADS": "1"}
                if service == "dispatch":
                    env["LFR_DISPATCH__CONSOLE_ADDR"] = f"127.0.0.1:{free_port()}"
                start(name, argv(d, files[item["key"]]), env)
        assert len([n for n in ports if n.startswith(f"{RELEASE}-match-")]) == 2
        deadline = time.monotonic() + 60
        waiting = dict(ports)
        while waiting and time.monotonic() < deadline:
            for name, proc in procs:
                assert proc.poll() is None, f"{name} exited: {why_exited(name)}"
            waiting = {n: p for n, p in waiting.items() if not _ready(p)}
            time.sleep(0.3)
        assert not waiting, "not ready: " + "; ".join(f"{n}: {log_of(n)[-600:]}" for n in waiting)

        # Placement, as the servers report it.
        streams, consumers = _placement(monitor_ports)
        transient = {"FRAMES", "FACES", "EMBEDDINGS"}
        assert transient < set(streams) and "ALERTS" in streams and "KV_lfr-match-alerted" in streams
        for name, st in streams.items():
            copies = 1 if name in transient else servers
            assert (st["replicas"], len(st["servers"])) == (copies, copies), (name, st)
        match = consumers[("EMBEDDINGS", "match")]
        assert match["config"].get("priority_policy") == "pinned_client", match["config"]
        assert match["config"].get("priority_groups") == ["active"], match["config"]
        # Both matchers wait on the group, one pull each: the server pins the first template to
        # one of them and keeps the other on standby (no camera is live here to send templates).
        deadline = time.monotonic() + 20
        while match["num_waiting"] != 2 and time.monotonic() < deadline:
            time.sleep(0.5)
            match = _placement(monitor_ports)[1][("EMBEDDINGS", "match")]
        assert match["num_waiting"] == 2, match
        assert [g["group"] for g in match.get("priority_groups", [])] == ["active"], match
    finally:
        # The services first, then NATS: a service stopping while NATS is gone waits for it.
        nats = [p for p in procs if p[0].startswith("nats-")]
        for group in ([p for p in procs if p not in nats], nats):
            for _, proc in group:
                proc.send_signal(signal.SIGTERM)
            for _, proc in group:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
