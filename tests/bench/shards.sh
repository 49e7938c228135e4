#!/usr/bin/env bash
# Shards in network namespaces on this machine (needs root, for `ip netns`):
# `barrage sim --mode zero` in a namespace of its own, SHARDS load
# generators each in theirs (a veth pair to the simulator's), started at one
# instant, against one process sending the whole RATE alone. Prints, for
# each: the achieved send rate (the shards' merged), the send lag p99, the
# missed arrivals, the requests ok, and for the shards their start spread.
#
#   cargo build --release -p barrage && tests/bench/shards.sh
#   RATE=3000 SHARDS=2 DURATION=10 tests/bench/shards.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=$(realpath "${BIN:-target/release/barrage}")
RATE=${RATE:-3000}
SHARDS=${SHARDS:-2}
DURATION=${DURATION:-10}
tag=$$
sim_ns="bbsim$tag"
work=$(mktemp -d)
cleanup() {
    for i in $(seq 0 $((SHARDS - 1))); do ip netns del "bbsh$tag-$i" 2>/dev/null || true; done
    ip netns del "$sim_ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$sim_ns"
ip -n "$sim_ns" link set lo up
for i in $(seq 0 $((SHARDS - 1))); do
    ns="bbsh$tag-$i"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip link add "bb${tag}s$i" type veth peer name "bb${tag}c$i"
    ip link set "bb${tag}s$i" netns "$sim_ns"
    ip link set "bb${tag}c$i" netns "$ns"
    ip -n "$sim_ns" addr add "10.78.$i.1/24" dev "bb${tag}s$i"
    ip -n "$ns" addr add "10.78.$i.2/24" dev "bb${tag}c$i"
    ip -n "$sim_ns" link set "bb${tag}s$i" up
    ip -n "$ns" link set "bb${tag}c$i" up
done
ip netns exec "$sim_ns" "$BIN" sim --mode zero --host 0.0.0.0 --port 18090 >"$work/sim.out" 2>/dev/null &
sim=$!
for _ in $(seq 50); do grep -q listening "$work/sim.out" 2>/dev/null && break; sleep 0.1; done

report() {
    python3 - "$@" <<'PY'
import json, sys
label, merged = sys.argv[1], sys.argv[2]
s = json.load(open(f"{merged}/summary.json"))
t = s["total"]
spread = s.get("shard_start_spread_ms")
print(f'{label:<22} {t["achieved_rate"]:9.1f} {t["send_lag_ms"]["p99"]:9.3f} {t["missed"]:8d} {t["succeeded"]:8d} '
      + (f'{spread:10.3f}' if spread is not None else f'{"-":>10}'))
PY
}

printf '%-22s %9s %9s %8s %8s %10s\n' run achieved lag_p99 missed ok spread_ms
args=(run --quiet --reporter json --shape constant --rate "$RATE" --duration "$DURATION" --max-tokens 64 --prompt-tokens 16 --seed 3)
ip netns exec "bbsh$tag-0" "$BIN" "${args[@]}" --target http://10.78.0.1:18090 --output "$work/one" >/dev/null
report "1 process" "$work/one"

at=$(python3 -c 'import time; print(f"{time.time() + 4:.3f}")')
pids=()
for i in $(seq 0 $((SHARDS - 1))); do
    ip netns exec "bbsh$tag-$i" "$BIN" "${args[@]}" --target "http://10.78.$i.1:18090" \
        --shard "$i/$SHARDS" --start-at "$at" --output "$work/shard$i" >/dev/null &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
dirs=()
for i in $(seq 0 $((SHARDS - 1))); do dirs+=("$work/shard$i"); done
"$BIN" merge "${dirs[@]}" --output "$work/merged" --reporter json >/dev/null 2>&1
report "$SHARDS shards, merged" "$work/merged"
kill -TERM $sim; wait $sim 2>/dev/null || true
