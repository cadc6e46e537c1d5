#!/usr/bin/env bash
# Builds and runs the Essentials benchmark against the shared SmolLM2 GGUF and the largest data files.
set -euo pipefail
cd "$(dirname "$0")"
shared="${POLICYPRUNE_SHARED:-../../../shared}"
swift build -c release >/dev/null
.build/release/Bench "$shared/models/smollm2-135m-instruct-q4_1/SmolLM2-135M-Instruct.Q4_1.gguf" \
    "$shared/data/hellaswag/hellaswag_val.jsonl.gz" \
    "$shared/data/c4/c4-train.00000-of-01024.first1041docs.jsonl.gz" \
    "$shared/data/wikitext2/wiki.test.raw.gz"
