#!/usr/bin/env bash
# Set up whatever is missing, then run every check CI runs: formatting, lints, and the whole test
# suite against real parts (nats-server on loopback ports, OpenCV, real photos).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
echo "[test] formatting"; cargo fmt --all -- --check
echo "[test] lints";      cargo clippy --workspace --all-targets -- -D warnings
echo "[test] build";      cargo build --workspace --bins
echo "[test] tests"
cargo nextest run --workspace --profile ci "$@"
echo "[test] helm chart"; "${LFR_HOME:-$HOME/.cache/lfr}/venv/bin/python" -m pytest -q -p no:cacheprovider helm/tests
