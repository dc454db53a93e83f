#!/usr/bin/env bash
# Set up whatever is missing, build the pipeline's services and the load test optimised, and ramp
# simulated cameras through a local NATS server and the real services until the latency budget
# breaks. The report lands in loadtest/results/<UTC time>/ (report.md, plots, results.json).
# Extra arguments go to lfr-loadtest (try --help), e.g. `scripts/loadtest.sh --fps 5 --cameras 8`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
cargo build --release -p lfr-detect -p lfr-embed -p lfr-match -p lfr-loadtest
exec target/release/lfr-loadtest "$@"
