"""Offline tests of the lfr Helm chart (helm/lfr).

Helm 4 runs in-process through helm-python-sdk (no helm binary, no cluster, no network): the chart
is linted and rendered with its default values and with each example, and every rendered object is
validated against the Kubernetes API schemas bundled in kubernetes-validate (strict: unknown fields
are errors), for the oldest Kubernetes the chart supports and the newest the validator knows.
ServiceMonitor (a Prometheus Operator CRD) has no bundled schema; it gets a structural hand-check.

Then the properties operators rely on are asserted for every workload: the restricted Pod Security
profile, probes, resources, network policies, a single Ingress (the console), autoscaling, no
secret material in the chart, and an lfr.toml that parses and configures every service.

Run: $LFR_HOME/venv/bin/python -m pytest -q helm/tests   (scripts/setup.sh installs the tools)
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
import re
import signal
import socket
import subprocess
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

CHART = Path(__file__).resolve().parent.parent / "lfr"
EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))
RELEASE = "lfr"
NAMESPACE = "lfr"
SERVICES = ["ingest", "detect", "embed", "match", "dispatch", "purge"]
PORTS = dict(zip(SERVICES, range(9101, 9107)))
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


@functools.lru_cache(maxsize=None)
def _rendered(case: str) -> tuple:
    values = None if case == "default" else load_values(CHART / "examples" / case)
    return tuple(render(values))


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
    values = None if case == "default" else load_values(CHART / "examples" / case)
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


def test_every_object_is_valid_kubernetes(objects):
    kinds = set()
    for obj in objects:
        obj.pop("__template", None)
        kinds.add(obj["kind"])
        if obj["kind"] == "ServiceMonitor":
            check_service_monitor(obj)
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} (k8s {version}): {e.message} at {list(e.path)}")
    assert {"Deployment", "Service", "ConfigMap", "NetworkPolicy", "PodDisruptionBudget", "Ingress",
            "ServiceAccount"} <= kinds


def test_objects_are_unique_and_namespaced_by_release(objects):
    keys = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(keys) == len(set(keys)), "duplicate objects"
    for o in objects:
        assert o["metadata"]["name"].startswith(RELEASE)
        assert o["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
        assert "namespace" not in o["metadata"], "the release namespace applies"


# Workloads ------------------------------------------------------------------------------------------


def test_one_workload_per_service(case, objects):
    deployments = of_kind(objects, "Deployment")
    assert {component(d) for d in deployments} == set(SERVICES)
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
    """The Kubernetes "restricted" Pod Security Standard, and the chart's own stricter settings."""
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
    for d in of_kind(objects, "Deployment"):
        assert_restricted(d)
    for sa in of_kind(objects, "ServiceAccount"):
        assert sa["automountServiceAccountToken"] is False


def test_probes_and_resources(objects):
    for d in of_kind(objects, "Deployment"):
        name = d["metadata"]["name"]
        for c in d["spec"]["template"]["spec"]["containers"]:
            live, ready = c["livenessProbe"]["httpGet"], c["readinessProbe"]["httpGet"]
            assert (live["path"], live["port"]) == ("/healthz", "metrics"), name
            assert (ready["path"], ready["port"]) == ("/readyz", "metrics"), name
            assert c["startupProbe"]["httpGet"]["path"] == "/healthz", name
            for kind in ("requests", "limits"):
                assert c["resources"][kind]["cpu"] and c["resources"][kind]["memory"], (name, kind)


def test_secrets_come_from_existing_secrets(objects):
    for d in of_kind(objects, "Deployment"):
        service = component(d)
        pod = d["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        env = {e["name"]: e for e in c.get("env", [])}
        for e in env.values():
            if e["name"] in ("LFR_MASTER_KEY", "LFR_DISPATCH__API_TOKEN"):
                assert "value" not in e and e["valueFrom"]["secretKeyRef"]["name"], e
        assert ("LFR_MASTER_KEY" in env) == (service in ("match", "dispatch")), service
        # The NATS credentials: a Secret volume, and lfr.toml points at the file.
        vols = {v["name"]: v for v in pod["volumes"]}
        assert vols["nats-credentials"]["secret"]["secretName"] == "lfr-nats-creds"
        (mount,) = [m for m in c["volumeMounts"] if m["name"] == "nats-credentials"]
        assert mount["readOnly"] is True
    assert config_toml(objects)["nats"]["credentials"] == "/etc/nats/lfr.creds"


BASE64_32 = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{43}=(?![A-Za-z0-9+/=])")


def test_no_secret_material_in_the_chart(case, objects):
    """No Secret is rendered, and no 32-byte base64 value (the master key's shape) appears."""
    assert of_kind(objects, "Secret") == []
    values_files = [CHART / "values.yaml"] + EXAMPLES
    texts = [yaml.safe_dump(o) for o in objects] + [p.read_text() for p in values_files]
    for text in texts:
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
    deployments = of_kind(objects, "Deployment")
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
    assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "nats",
                                                  "app.kubernetes.io/instance": RELEASE,
                                                  "app.kubernetes.io/component": "nats"}
    assert config_toml(hub)["nats"]["url"] == f"nats://{RELEASE}-nats.{NAMESPACE}.svc:4222"
    assert nats_peers(pinch) == [{"ipBlock": {"cidr": "10.60.0.10/32"}}]
    assert config_toml(pinch)["nats"]["url"] == "nats://10.60.0.10:4222"


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
    for d in of_kind(objects, "Deployment"):
        # The autoscaler owns the replica count; a fixed one would be reset on every upgrade.
        assert ("replicas" in d["spec"]) == (component(d) not in ("detect", "embed"))
    match = [d for d in of_kind(objects, "Deployment") if component(d) == "match"]
    assert [d["spec"]["replicas"] for d in match] == [1]
    assert len(load_values(CHART / "examples" / "transport-hub.yaml")["ingest"]["cameras"]) == 40


def test_no_autoscaler_by_default():
    assert of_kind(list(_rendered("default")), "HorizontalPodAutoscaler") == []


def test_match_stays_single_unless_allowed():
    with pytest.raises(helm.HelmError, match="corroboration"):
        render({"match": {"replicas": 2}})
    with pytest.raises(helm.HelmError, match="corroboration"):
        render({"match": {"autoscaling": {"enabled": True}}})
    objects = render({"match": {"allowMultipleReplicas": True, "autoscaling": {"enabled": True}}})
    hpas = [h["spec"]["scaleTargetRef"]["name"] for h in of_kind(objects, "HorizontalPodAutoscaler")]
    assert hpas == [f"{RELEASE}-match"]


def test_disruption_budgets(objects):
    pdbs = of_kind(objects, "PodDisruptionBudget")
    for d in of_kind(objects, "Deployment"):
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
    assert cfg["nats"]["url"].startswith("nats://")
    # Whole numbers stay integers (lfr's integer keys refuse floats).
    assert cfg["bus"]["transient_max_bytes"] == 268435456 and isinstance(cfg["ingest"]["jpeg_quality"], int)
    # Every pod's config volume maps its key to /etc/lfr/lfr.toml.
    for d in of_kind(objects, "Deployment"):
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
    for d in of_kind(objects, "Deployment"):
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
    ]
    for values, message in bad:
        with pytest.raises(helm.HelmError, match=message):
            render(values)


def test_models_from_a_volume():
    objects = render({"models": {"source": "volume"}})
    for d in of_kind(objects, "Deployment"):
        pod = d["spec"]["template"]["spec"]
        mounts = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "models"]
        if component(d) in ("detect", "embed", "dispatch"):
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
    assert len(services) == len(of_kind(objects, "Deployment"))
    assert of_kind(list(_rendered("default")), "ServiceMonitor") == []


# The real services -----------------------------------------------------------------------------

REPO = CHART.parent.parent
LFR_HOME = Path(os.environ.get("LFR_HOME", Path.home() / ".cache" / "lfr"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
            return r.status == 200
    except (OSError, urllib.error.URLError):
        return False


def test_rendered_config_is_accepted_by_the_services(tmp_path):
    """Every service starts and becomes ready on the lfr.toml the chart renders (the hub example,
    with its cameras replaced by the sample photos and four ingest shards), against a real
    nats-server on loopback. Only the cluster-specific paths are changed: the NATS URL, no
    credentials file, the local models directory, loopback ports."""
    binaries = {s: REPO / "target" / "debug" / f"lfr-{s}" for s in SERVICES}
    nats_server = LFR_HOME / "venv" / "bin" / "nats-server"
    models = Path(os.environ.get("LFR_MODELS_DIR", LFR_HOME / "models"))
    samples = LFR_HOME / "samples" / "faces"
    missing = [str(p) for p in [*binaries.values(), nats_server, models / "manifest.toml", samples] if not p.exists()]
    if missing:
        pytest.skip(f"needs `cargo build --workspace --bins` and scripts/setup.sh: missing {missing}")

    values = load_values(CHART / "examples" / "transport-hub.yaml")
    values["ingest"]["cameras"] = [
        {"id": f"sample-{i}", "source": f"dir:{samples}", "fps": 2, "repeat": True} for i in range(8)
    ]
    objects = render(values)
    nats_port = _free_port()
    (cm,) = of_kind(objects, "ConfigMap")
    files = {}
    for key, text in cm["data"].items():
        cfg = tomllib.loads(text)  # the chart's own text, changed only where the cluster shows
        assert "credentials" in cfg["nats"] and cfg["models"]["dir"] == "/opt/lfr/models"
        text = re.sub(r'(?m)^credentials = ".*"\n', "", text)
        text = re.sub(r'(?m)^url = ".*"$', f'url = "nats://127.0.0.1:{nats_port}"', text)
        text = text.replace('dir = "/opt/lfr/models"', f"dir = {json.dumps(str(models))}")
        files[key] = tmp_path / key
        files[key].write_text(text)

    (tmp_path / "nats.conf").write_text(
        f'port: {nats_port}\nmax_payload: 8MB\njetstream {{ store_dir: "{tmp_path / "js"}" }}\n')
    procs = []

    def start(name, argv, env=None):
        log = open(tmp_path / f"{name}.log", "wb")
        procs.append((name, subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                             env={**os.environ, **(env or {})})))

    try:
        start("nats", [str(nats_server), "-c", str(tmp_path / "nats.conf")])
        env = {"LFR_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(), "OMP_NUM_THREADS": "1",
               "LFR_DISPATCH__CONSOLE_ADDR": f"127.0.0.1:{_free_port()}"}
        ports = {}
        for d in of_kind(objects, "Deployment"):
            service = component(d)
            (vol,) = [v for v in d["spec"]["template"]["spec"]["volumes"] if v["name"] == "config"]
            (item,) = vol["configMap"]["items"]
            port = ports[d["metadata"]["name"]] = _free_port()
            (container,) = d["spec"]["template"]["spec"]["containers"]
            argv = [str(binaries[service]), "--config", str(files[item["key"]])]
            assert container["command"][1:] == ["--config", "/etc/lfr/lfr.toml"]
            start(d["metadata"]["name"], argv,
                  {**env, f"LFR_{service.upper()}__HTTP_ADDR": f"127.0.0.1:{port}"})
        deadline = time.monotonic() + 45
        waiting = dict(ports)
        while waiting and time.monotonic() < deadline:
            for name, proc in procs:
                assert proc.poll() is None, f"{name} exited: {(tmp_path / f'{name}.log').read_text()[-2000:]}"
            waiting = {n: p for n, p in waiting.items() if not _ready(p)}
            time.sleep(0.3)
        assert not waiting, "not ready: " + "; ".join(
            f"{n}: {(tmp_path / f'{n}.log').read_text()[-600:]}" for n in waiting)
    finally:
        # The services first, then NATS: a service stopping while NATS is gone waits for it.
        for group in (procs[1:], procs[:1]):
            for _, proc in group:
                proc.send_signal(signal.SIGTERM)
            for _, proc in group:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
