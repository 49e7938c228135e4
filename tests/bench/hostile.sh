#!/usr/bin/env bash
# The plugin-boundary attacks, measured: the `hostile` test codec
# (tests/plugins/hostile) against the embedded simulator, with the figures
# the boundary's limits are about. Prints, per attack, what the host let
# through.
#
#   cargo build --release -p barrage && tests/bench/hostile.sh
#   BIN=old/target/release/barrage tests/bench/hostile.sh   # another build
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-target/release/barrage}
cargo build --quiet --profile plugin --target wasm32-wasip2 --target-dir target/plugins -p hostile
HOSTILE=target/plugins/wasm32-wasip2/plugin/hostile.wasm
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

field() { python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$1" "$2"; }

echo "# hold: each stream holds 240 MiB (under the 256 MiB per-instance cap), 20 req/s for 3 s"
for budget in default 1024; do
    flags=()
    [ "$budget" = default ] || flags=(--plugin-memory-budget-mib "$budget")
    "$BIN" run --quiet --codec "$HOSTILE" --codec-config '{"attack":"hold","mib":240}' \
        --plugin-deadline-ms 10000 --rate 20 --duration 3 --max-tokens 100 \
        --output "$work/hold-$budget" "${flags[@]}" >/dev/null 2>&1 || true
    s="$work/hold-$budget/summary.json"
    printf 'budget %-5s peak RSS %7.0f MiB, plugin memory peak %7.0f MiB, ok %s, failed %s\n' "$budget" \
        "$(field "$s" "s['host']['peak_rss_mib']")" "$(field "$s" "s['host']['plugin_memory_peak_mib']")" \
        "$(field "$s" "s['stages'][0]['succeeded']")" "$(field "$s" "s['stages'][0]['failed']")"
done

echo "# flood: 10 MiB malformed reasons and 10 MiB log lines on every push, 30 requests"
"$BIN" run --quiet --codec "$HOSTILE" --codec-config '{"attack":"flood","reason_mib":10,"log_mib":10,"events":0}' \
    --plugin-deadline-ms 10000 --rate 30 --requests 30 --output "$work/flood" >/dev/null 2>"$work/flood.err" || true
printf 'records.jsonl %s bytes, stderr %s bytes\n' "$(stat -c %s "$work/flood/records.jsonl")" "$(stat -c %s "$work/flood.err")"

echo "# slow encode: every second encode loops, 100 req/s for 10 s"
"$BIN" run --quiet --codec "$HOSTILE" --codec-config '{"attack":"slow-encode"}' \
    --rate 100 --duration 10 --output "$work/slow" >/dev/null 2>&1 || true
s="$work/slow/summary.json"
printf 'achieved %.1f req/s, send lag p99 %.2f ms, ok %s, encode timeouts %s\n' \
    "$(field "$s" "s['stages'][0]['achieved_rate']")" "$(field "$s" "s['stages'][0]['send_lag_ms']['p99']")" \
    "$(field "$s" "s['stages'][0]['succeeded']")" \
    "$(field "$s" "sum(n for k, n in s['stages'][0]['errors'].items() if 'encode failed' in k)")"
