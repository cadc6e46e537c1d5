#!/usr/bin/env bash
# The SmolLM2 test tier (scripts/test-tiers.sh): the tests that load SmolLM2-135M or run long end-to-end comparisons.
# Builds first unless --skip-build is given; extra arguments go to `swift test`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/test-tiers.sh
if [ "${1:-}" = "--skip-build" ]; then shift; else swift_in_private_tmp build -c release -Xswiftc -enable-testing --build-tests; fi
swift_in_private_tmp test -c release -Xswiftc -enable-testing --skip-build --filter "$SMOLLM2_TIER" "$@"
