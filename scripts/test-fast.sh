#!/usr/bin/env bash
# The fast test tier (synthetic models, stories260K, tokenizer and data fixtures; under 2 minutes of tests on 2
# cores): everything but the SmolLM2 tier of scripts/test-tiers.sh. Builds first unless --skip-build is given;
# extra arguments go to `swift test` (e.g. --parallel).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/test-tiers.sh
if [ "${1:-}" = "--skip-build" ]; then shift; else swift_in_private_tmp build -c release -Xswiftc -enable-testing --build-tests; fi
swift_in_private_tmp test -c release -Xswiftc -enable-testing --skip-build --skip "$SMOLLM2_TIER" "$@"
