#!/usr/bin/env bash
# Quantizes F32 GGUF exports with llama.cpp's llama-quantize (Q4_K_M by default), counts the tensors it had to
# leave in F16 (a row width no quant block divides: the case `--channel-multiple` exists for), and times the
# quantized files with llama-bench in one run, alternating the files round by round so load on the machine falls
# on all of them alike. Not part of CI; results in BENCHMARKS.md ("Quantized exports in llama.cpp").
#
# Usage: scripts/bench-quantized-exports.sh LLAMA_BIN_DIR NAME=FILE.gguf [NAME=FILE.gguf ...]
#   (the first is the reference the ratios are taken against, e.g. the dense export)
# Environment: TYPE (default Q4_K_M), ROUNDS (default 3), THREADS (default 2), OUT (default: beside each file).
set -euo pipefail
BIN="$1"; shift
TYPE="${TYPE:-Q4_K_M}"; ROUNDS="${ROUNDS:-3}"; THREADS="${THREADS:-2}"
names=(); files=()
for arg in "$@"; do
  name="${arg%%=*}"; src="${arg#*=}"
  out="${OUT:-$(dirname "$src")}/$(basename "$src" .gguf).$TYPE.gguf"
  "$BIN/llama-quantize" "$src" "$out" "$TYPE" "$THREADS" > "$out.log" 2>&1 || { echo "llama-quantize failed on $src (log: $out.log)" >&2; exit 1; }
  names+=("$name"); files+=("$out")
done
declare -A pp tg
for ((r = 1; r <= ROUNDS; r++)); do
  for i in "${!files[@]}"; do
    line=$("$BIN/llama-bench" -m "${files[$i]}" -t "$THREADS" -p 256 -n 64 -r 1 -o csv 2>/dev/null | tail -n +2)
    # csv columns end with ...,"n_prompt","n_gen",...,"avg_ts","stddev_ts": take n_prompt/n_gen rows' avg_ts.
    p=$(printf '%s\n' "$line" | python3 -c 'import csv,sys; r=list(csv.reader(sys.stdin)); print(r[0][-2] if r else "nan")')
    g=$(printf '%s\n' "$line" | python3 -c 'import csv,sys; r=list(csv.reader(sys.stdin)); print(r[1][-2] if len(r) > 1 else "nan")')
    pp[$i]="${pp[$i]:-} $p"; tg[$i]="${tg[$i]:-} $g"
  done
done
printf '| export | %s size | F16 fallbacks | prompt t/s (pp256, best of %d) | vs first | generation t/s (tg64, best) | vs first |\n|---|---|---|---|---|---|---|\n' "$TYPE" "$ROUNDS"
for i in "${!files[@]}"; do
  f16=$(grep -c "falling back to *f16" "${files[$i]}.log" || true)
  python3 - "${names[$i]}" "$(stat -c %s "${files[$i]}")" "$f16" "${pp[$i]}" "${tg[$i]}" "${pp[0]}" "${tg[0]}" <<'EOF'
import sys
name, size, f16, pp, tg, pp0, tg0 = sys.argv[1:]
best = lambda s: max(float(x) for x in s.split())
print(f"| {name} | {int(size)/2**20:.1f} MiB | {f16} | {best(pp):.0f} | {best(pp)/best(pp0):.2f} | {best(tg):.1f} | {best(tg)/best(tg0):.2f} |")
EOF
done
