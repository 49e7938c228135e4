#!/usr/bin/env bash
# Barrage's measurement error against the simulator's ground truth at several
# rates: plain-mode simulator (TTFT 20 ms, ITL 5 ms, 16-token streams) in its
# own process, `barrage run` at each rate for DURATION seconds, then
# accuracy.py compares measured TTFT with the true one per request.
#
#   cargo build --release -p barrage && tests/bench/accuracy.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-target/release/barrage}
RATES=${RATES:-"500 2000"}
DURATION=${DURATION:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for rate in $RATES; do
    "$BIN" sim --mode plain --ttft-ms 20 --itl-ms 5 --port 0 --ground-truth "$work/truth-$rate.jsonl" >"$work/sim.out" 2>/dev/null &
    sim=$!
    for _ in $(seq 50); do grep -q listening "$work/sim.out" 2>/dev/null && break; sleep 0.1; done
    addr=$(sed -n 's/.*http:\/\/\([^ ]*\).*/\1/p' "$work/sim.out")
    "$BIN" run --quiet --target "http://$addr" --rate "$rate" --shape poisson --duration "$DURATION" \
        --max-tokens 16 --prompt-tokens 16 --output "$work/run-$rate" >/dev/null
    kill -TERM $sim; wait $sim 2>/dev/null || true
    echo "rate $rate/s (achieved $(python3 -c "import json;print(round(json.load(open('$work/run-$rate/summary.json'))['stages'][0]['achieved_rate'],1))")/s):"
    python3 tests/bench/accuracy.py "$work/run-$rate" "$work/truth-$rate.jsonl"
done
