#!/usr/bin/env bash
# Long fuzz campaign over every input format (issue 16): runs each Tests/FuzzTests case family at a large scale,
# time-boxed, and prints the totals (cases, clean errors, successes, hangs, crashes, peak memory) as a Markdown
# table for the README's Reliability section.
#
#   scripts/fuzz-campaign.sh [--minutes 10] [--seed 16] [--out fuzz-campaign.jsonl]
#
# --minutes is the whole campaign's budget, split evenly over the formats. A crash in-process ends that format's
# test process: the harness prints "FUZZ CRASH in case: ..." (or "FUZZ HANG: ..." after 10 s) naming the case to
# reproduce with the same --seed; the script counts it and goes on with the next format.
set -euo pipefail

minutes=10
seed=16
out=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --minutes) minutes="$2"; shift 2 ;;
        --seed) seed="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export POLICYPRUNE_SHARED="${POLICYPRUNE_SHARED:-$root/../shared}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Every swift invocation leaves a TemporaryDirectory.* of the Swift driver in $TMPDIR (scripts/test-tiers.sh): keep
# them, and the tests' scratch folders, inside $work.
mkdir -p "$work/tmp"
export TMPDIR="$work/tmp"
report="${out:-$work/report.jsonl}"
: > "$report"

tests=(testFuzzGGUFModel testFuzzGGUFTokenizerMetadata testFuzzSafetensorsAndConfig testFuzzLlama2c
       testFuzzTokenizerJSON testFuzzPlanAndRunFolder testFuzzZeroShotAndCorpora testBinaryCases)
per_test=$(python3 -c "print($minutes / ${#tests[@]})")
# Scale so high that the time box, not the case count, ends each format.
scale=100000

echo "building..." >&2
swift build -c release -Xswiftc -enable-testing --build-tests >/dev/null

crashes=0
hangs=0
for t in "${tests[@]}"; do
    log="$work/$t.log"
    start=$(date +%s)
    set +e
    POLICYPRUNE_FUZZ_SCALE=$scale POLICYPRUNE_FUZZ_SEED=$seed POLICYPRUNE_FUZZ_MINUTES=$per_test POLICYPRUNE_FUZZ_REPORT="$report" \
        timeout $(python3 -c "print(int($per_test * 60 + 180))") \
        swift test -c release -Xswiftc -enable-testing --skip-build --filter "FuzzTests.FuzzTests/$t" >"$log" 2>&1
    status=$?
    set -e
    grep -h "^fuzz " "$log" >&2 || true
    if grep -q "FUZZ CRASH" "$log"; then crashes=$((crashes + 1)); grep -h "FUZZ CRASH" "$log" >&2; fi
    if grep -q "FUZZ HANG" "$log" || [[ $status -eq 124 ]]; then hangs=$((hangs + 1)); grep -h "FUZZ HANG" "$log" >&2 || true; fi
    if [[ $status -ne 0 ]]; then
        echo "$t: exit $status after $(( $(date +%s) - start )) s (log kept in ${out:+$(dirname "$out")/}$t.log)" >&2
        [[ -n "$out" ]] && cp "$log" "$(dirname "$out")/$t.log"
    fi
done

python3 - "$report" "$seed" "$minutes" "$crashes" "$hangs" <<'EOF'
import json, sys
path, seed, minutes, crashes, hangs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
rows = [json.loads(l) for l in open(path) if l.strip()]
print(f"Campaign: seed {seed}, {minutes} min budget, {len(rows)} formats reported; process-level crashes {crashes}, hangs {hangs}\n")
print("| input | cases | clean errors | successes | hangs | crashes | slowest case (s) | peak RSS (MiB) |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
tot = dict(cases=0, cleanErrors=0, successes=0, hangs=0, crashes=0)
peak = 0.0
for r in rows:
    for k in tot: tot[k] += r.get(k, 0)
    peak = max(peak, r.get("peakRSSMiB", 0))
    print(f"| {r['format']} | {r['cases']:,} | {r['cleanErrors']:,} | {r['successes']:,} | {r['hangs']} | {r['crashes']} | {r['slowest']:.3f} | {r['peakRSSMiB']:.0f} |")
print(f"| **total** | {tot['cases']:,} | {tot['cleanErrors']:,} | {tot['successes']:,} | {tot['hangs'] + hangs} | {tot['crashes'] + crashes} | | {peak:.0f} |")
EOF
