#!/usr/bin/env bash
# Runs PolicyPrune's GGUF exports in llama.cpp, the reference GGUF runtime, and sets llama-perplexity's number beside
# PolicyPrune's own under the same protocol (`eval ppl --protocol llama-cpp`: same file, same text, same chunks), per
# family and plan shape. Not part of CI (building llama.cpp takes ~10 minutes); the results are in RESULTS.md.
#
# Usage: scripts/check-llama-cpp.sh [LLAMA_BIN_DIR]
#   LLAMA_BIN_DIR  folder with llama-perplexity (default: what ../shared/tools/build-llama-cpp.sh prints, building
#                  llama.cpp on first use)
# Environment: METRIC (score metric for the plans, default wanda-sp), OUT (work folder, default a new temp folder), CHUNKS (default 16), CTX (default 128),
#   CASES (a regex on the case names, default all), PG_PLAN (a SmolLM2 plan.json, e.g. a prune run's, exported as an extra case), POLICYPRUNE_SHARED,
#   POLICYPRUNE_GEMMA3 (the Gemma 3 270M GGUF; default ~/.cache/policyprune/models/gemma-3-270m-q4_k_m.gguf).
# Prints one row per case: llama.cpp's PPL, PolicyPrune's PPL, their relative difference, and whether llama.cpp
# loaded the file; exits non-zero if llama.cpp fails to load an export or the two differ by more than 1e-3.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SHARED="${POLICYPRUNE_SHARED:-$ROOT/../shared}"
BIN="${1:-$(bash "$SHARED/tools/build-llama-cpp.sh")}"
OUT="${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/pp-llama-cpp.XXXXXX")}"
CHUNKS="${CHUNKS:-16}"; CTX="${CTX:-128}"
PP="$ROOT/.build/release/policyprune"
[ -x "$PP" ] || (cd "$ROOT" && swift build -c release --product policyprune >&2)
mkdir -p "$OUT"
TEXT="$OUT/wiki.test.raw"
[ -f "$TEXT" ] || gzip -dc "$SHARED/data/wikitext2/wiki.test.raw.gz" > "$TEXT"
SMOL="$SHARED/models/smollm2-135m-instruct-q4_1/SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA="${POLICYPRUNE_GEMMA3:-$HOME/.cache/policyprune/models/gemma-3-270m-q4_k_m.gguf}"
FAM="$ROOT/Tests/TransformerTests/Fixtures/families"
THREADS="${THREADS:-2}"
status=0
printf '| case | arch | export | llama.cpp PPL | PolicyPrune PPL | relative difference | llama.cpp load |\n|---|---|---|---|---|---|---|\n'

# check NAME MODEL [score options...]: score a plan ($METRIC, default wanda-sp; none when no options), export F32 GGUF, run both.
check() {
  local name="$1" model="$2"; shift 2
  local gguf="$OUT/$name.gguf" plan=() arch ours theirs rel load="yes"
  [[ "$name" =~ ${CASES:-.} ]] || return 0
  if [ "$#" -gt 0 ]; then
    if [ "$1" = "--plan" ]; then plan=(--plan "$2")
    else "$PP" score --model "$model" --metric "${METRIC:-wanda-sp}" --out "$OUT/$name.plan.json" "$@" > "$OUT/$name.score.out" 2>&1
         plan=(--plan "$OUT/$name.plan.json"); fi
  fi
  if ! "$PP" export --model "$model" "${plan[@]}" --format gguf --dtype f32 --out "$gguf" --force > "$OUT/$name.export.out" 2>&1; then
    # export refuses, before writing, what llama.cpp cannot run: a row saying so, not a failure.
    printf '| %s | — | refused | — | — | — | %s |\n' "$name" "$(grep -m1 -i error "$OUT/$name.export.out")"
    return 0
  fi
  arch=$(python3 - "$gguf" <<'EOF'
import struct, sys
f = open(sys.argv[1], 'rb'); f.read(8); f.read(16)
def s(): n, = struct.unpack('<Q', f.read(8)); return f.read(n).decode()
k = s(); t, = struct.unpack('<I', f.read(4)); print(s() if k == 'general.architecture' and t == 8 else '?')
EOF
)
  ours=$(POLICYPRUNE_THREADS=$THREADS "$PP" eval ppl --model "$gguf" --data "$TEXT" --protocol llama-cpp --context "$CTX" \
         --limit-windows "$CHUNKS" --json 2> "$OUT/$name.ours.err" | python3 -c 'import json,sys; print("%.4f" % json.load(sys.stdin)["report"]["ppl"])')
  if "$BIN/llama-perplexity" -m "$gguf" -f "$TEXT" -c "$CTX" -b "$CTX" --chunks "$CHUNKS" -t "$THREADS" \
       > "$OUT/$name.llama.out" 2> "$OUT/$name.llama.err"; then
    theirs=$(grep -o 'Final estimate: PPL = [0-9.]*' "$OUT/$name.llama.err" "$OUT/$name.llama.out" | head -1 | awk '{print $NF}')
    rel=$(python3 -c "print('%.1e' % (abs($theirs - $ours) / $ours))")
    if ! python3 -c "import sys; sys.exit(0 if abs($theirs - $ours) / $ours <= 1e-3 else 1)"; then
      # The phi3 fixture has a sliding window of 8; llama.cpp disables Phi-3's sliding window ("Phi SWA is
      # currently disabled", PR 13676) and attends to everything, PolicyPrune follows transformers.
      if [[ "$name" =~ ^phi3-(dense|uniform)$ ]]; then load="yes (llama.cpp ignores Phi-3's sliding window)"; else status=1; fi
    fi
  else
    theirs="—"; rel="—"; load="no: $(grep -m1 -i 'error\|failed' "$OUT/$name.llama.err" || tail -1 "$OUT/$name.llama.err")"; status=1
  fi
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$arch" "$(du -h "$gguf" | cut -f1)" "$theirs" "$ours" "$rel" "$load"
}

check smollm2-dense "$SMOL"
check smollm2-uniform-mlp50 "$SMOL" --scope per-layer --attention-rate 0 --mlp-rate 0.5
check smollm2-global-50 "$SMOL" --scope global --rate 0.5
[ -n "${PG_PLAN:-}" ] && check smollm2-pg-plan "$SMOL" --plan "$PG_PLAN"
for fam in llama3 mistral qwen2 qwen3 phi3 phi3-longrope gemma3; do
  # The tiny gemma3 fixture's rows are gemma3-tiny-*, apart from the real 270M's gemma3-* below.
  label="$fam"; [ "$fam" = gemma3 ] && label=gemma3-tiny
  check "$label-dense" "$FAM/$fam.gguf"
  # Phi-3 keeps its attention: llama.cpp's phi3 needs every query head, and the fixture's sliding window has no
  # other llama.cpp arch (export refuses it; with --rate 0.5 the row says so).
  if [[ "$fam" == phi3* ]]; then rates=(--attention-rate 0 --mlp-rate 0.5); else rates=(--rate 0.5); fi
  check "$label-uniform" "$FAM/$fam.gguf" --scope per-layer "${rates[@]}" --channel-multiple 16
done
if [ -f "$GEMMA" ]; then
  check gemma3-dense "$GEMMA"
  check gemma3-uniform-mlp "$GEMMA" --scope per-layer --attention-rate 0 --mlp-rate 0.3125
  check gemma3-heterogeneous "$GEMMA" --scope global --attention-rate 0 --mlp-rate 0.3
fi
echo "files and logs: $OUT" >&2
exit $status
