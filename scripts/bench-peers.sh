#!/usr/bin/env bash
# The F32 forward of policyprune beside PyTorch's on the same model and shapes, alternating in one run.
# Usage: scripts/bench-peers.sh PYTHON [MODEL] [ROUNDS]
#   PYTHON  a Python with torch and transformers (and gguf, for a .gguf model), e.g. venv/bin/python
#   MODEL   default: the shipped SmolLM2-135M-Instruct GGUF in $POLICYPRUNE_SHARED (or ../shared)
#   ROUNDS  alternations of the two (default 3); each side reports its best of 3 passes after a warm-up
# Environment: THREADS (default 2) sets both sides' threads; BATCH (8) and SEQ (128) the shapes.
# Prints a table: tokens/s per round and side, and policyprune / PyTorch per round.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${1:?usage: scripts/bench-peers.sh PYTHON [MODEL] [ROUNDS]}"
SHARED="${POLICYPRUNE_SHARED:-$ROOT/../shared}"
MODEL="${2:-$SHARED/models/smollm2-135m-instruct-q4_1/SmolLM2-135M-Instruct.Q4_1.gguf}"
ROUNDS="${3:-3}"; THREADS="${THREADS:-2}"; BATCH="${BATCH:-8}"; SEQ="${SEQ:-128}"
BIN="$ROOT/.build/release/policyprune"
[ -x "$BIN" ] || (cd "$ROOT" && swift build -c release --product policyprune >&2)
"$PY" -c "import torch, transformers" 2>/dev/null || { echo "error: $PY has no torch + transformers" >&2; exit 2; }
[ -e "$MODEL" ] || { echo "error: model not found: $MODEL" >&2; exit 2; }
TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
echo "model $MODEL, $BATCH x $SEQ tokens, $THREADS threads a side, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
printf '| round | policyprune tokens/s | PyTorch tokens/s | policyprune / PyTorch |\n|---|---|---|---|\n'
for r in $(seq 1 "$ROUNDS"); do
  POLICYPRUNE_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS" "$BIN" bench --model "$MODEL" --batch "$BATCH" \
    --seq "$SEQ" --keep 0 --repeats 3 --json > "$TMP/pp.json"
  OMP_NUM_THREADS="$THREADS" "$PY" "$ROOT/scripts/bench_peers_torch.py" --model "$MODEL" --batch "$BATCH" \
    --seq "$SEQ" --repeats 3 --threads "$THREADS" > "$TMP/pt.json"
  "$PY" - "$TMP/pp.json" "$TMP/pt.json" "$r" <<'PYEOF'
import json, sys
pp = json.load(open(sys.argv[1])); pt = json.load(open(sys.argv[2]))
ours = next(f["f32TokensPerSecond"] for f in pp["forward"] if f["name"] == "dense")
print(f"| {sys.argv[3]} | {ours:.0f} | {pt['tokensPerSecond']:.0f} | {ours / pt['tokensPerSecond']:.2f} |")
PYEOF
done
echo "load average at the end $(cut -d' ' -f1-3 /proc/loadavg); peer: $(cat "$TMP/pt.json")" >&2
