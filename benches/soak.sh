#!/usr/bin/env bash
# The soak test (issue 4): a writer through the proxy for 10 minutes while a
# master is killed and restarted every 30 s. Prints acknowledged writes,
# errors by kind, keys lost and the longest stall.
#
#   bash benches/soak.sh [builtin|redis] [seconds] [period-seconds]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash .ci/install-deps
export SOAK_BACKEND=${1:-builtin}
export SOAK_SECS=${2:-600}
export SOAK_PERIOD_SECS=${3:-30}
cargo nextest run --release --test soak --run-ignored only --no-capture
