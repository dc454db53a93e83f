#!/usr/bin/env bash
# Set up whatever is missing, build, and run the all-in-one system (`lfr up`): a local NATS server,
# every service, and the sample camera. Extra arguments go to `lfr up` (try --help). Ctrl-C stops.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
cargo build --release --workspace --bins
exec target/release/lfr up "$@"
