#!/usr/bin/env bash
# Set up whatever is missing, then run every check CI runs: formatting, lints, supply-chain checks
# (cargo deny), and the whole test suite against real parts (nats-server on loopback ports, OpenCV,
# real photos).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
echo "[test] formatting"; cargo fmt --all -- --check
echo "[test] lints";      cargo clippy --workspace --all-targets -- -D warnings
echo "[test] supply chain"
# Licences, bans and sources need only crates.io (deny.toml). Advisories need a local copy of the
# RustSec database, which no reachable registry publishes: they are checked, offline, only where
# one is present (LFR_ADVISORY_DB, a git checkout; docs/supply-chain.md), and said so where not.
cargo deny --locked check --hide-inclusion-graph bans licenses sources
# deny.toml's db-path, then the directory name cargo-deny 0.20 derives from the database's URL.
advisory_db=target/advisory-dbs/advisory-db-3157b0e258782691
if [ -n "${LFR_ADVISORY_DB:-}" ]; then
  [ -e "$LFR_ADVISORY_DB/.git" ] ||
    { echo "LFR_ADVISORY_DB=$LFR_ADVISORY_DB: not a git checkout of advisory-db" >&2; exit 1; }
  [ ! -e "$advisory_db" ] || [ -L "$advisory_db" ] ||
    { echo "$advisory_db is a real directory: remove it to use LFR_ADVISORY_DB" >&2; exit 1; }
  mkdir -p "$(dirname "$advisory_db")"
  ln -sfn "$(cd "$LFR_ADVISORY_DB" && pwd)" "$advisory_db"
fi
if [ -d "$advisory_db" ]; then
  echo "[test] advisories: RustSec database as of $(git -C "$advisory_db" log -1 --format=%cs)"
  cargo deny --offline --locked check --hide-inclusion-graph advisories
else
  echo "[test] advisories NOT checked: no RustSec database (LFR_ADVISORY_DB, docs/supply-chain.md)"
fi
echo "[test] build";      cargo build --workspace --bins
echo "[test] tests"
cargo nextest run --workspace --profile ci "$@"
echo "[test] helm chart"; "${LFR_HOME:-$HOME/.cache/lfr}/venv/bin/python" -m pytest -q -p no:cacheprovider helm/tests
