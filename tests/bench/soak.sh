#!/usr/bin/env bash
# Soak: one long constant-rate run (DURATION seconds, an hour by default)
# against `barrage sim --mode zero` on another core, sampling the client's
# resident memory and open descriptors every INTERVAL seconds. A client
# that leaks shows a slope; this one must stay flat. Prints one line per
# sample, then the first, last and largest values after the first minute,
# the least-squares slope of each per hour, and the run's accounting.
#
#   cargo build --release -p barrage && tests/bench/soak.sh
#   RATE=2000 DURATION=600 tests/bench/soak.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-target/release/barrage}
RATE=${RATE:-1000}
DURATION=${DURATION:-3600}
INTERVAL=${INTERVAL:-10}
TOKENS=${TOKENS:-64}
work=$(mktemp -d)
sim=
cleanup() {
    [ -n "$sim" ] && kill "$sim" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
# Client and server on different cores. taskset (and env, without it)
# execs its command, so $! is the process itself.
if command -v taskset >/dev/null; then
    on_server=(taskset -c 1) on_client=(taskset -c 0)
else
    on_server=(env) on_client=(env)
fi
"${on_server[@]}" "$BIN" sim --mode zero --port 0 >"$work/sim.out" 2>/dev/null &
sim=$!
for _ in $(seq 50); do grep -q listening "$work/sim.out" 2>/dev/null && break; sleep 0.1; done
addr=$(sed -n 's/.*http:\/\/\([^ ]*\).*/\1/p' "$work/sim.out")
"${on_client[@]}" "$BIN" run --quiet --target "http://$addr" --rate "$RATE" --shape constant --duration "$DURATION" \
    --max-tokens "$TOKENS" --prompt-tokens 16 --output "$work/run" >/dev/null 2>"$work/run.err" &
client=$!
echo "soak: $RATE req/s for $DURATION s, sampling every $INTERVAL s" >&2
printf '%8s %10s %6s\n' t_s rss_MiB fds
: >"$work/samples"
start=$(date +%s)
while kill -0 $client 2>/dev/null; do
    sleep "$INTERVAL"
    [ -r /proc/$client/status ] || break
    rss=$(awk '/^VmRSS:/ {print $2 / 1024}' /proc/$client/status 2>/dev/null || true)
    fds=$(ls /proc/$client/fd 2>/dev/null | wc -l)
    [ -n "$rss" ] || break
    t=$(($(date +%s) - start))
    printf '%8d %10.1f %6d\n' "$t" "$rss" "$fds" | tee -a "$work/samples"
done
wait $client || echo "barrage run exited with $?: $(tail -3 "$work/run.err")" >&2
python3 - "$work/samples" "$work/run/summary.json" <<'PY'
import json, sys
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
steady = [r for r in rows if r[0] >= 60] or rows
def slope(xs, ys):
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else 0.0
t = [r[0] for r in steady]
for name, col, unit in [("RSS", 1, "MiB"), ("descriptors", 2, "")]:
    v = [r[col] for r in steady]
    print(f"{name}: first {v[0]:.1f} last {v[-1]:.1f} max {max(v):.1f} {unit}, "
          f"slope {3600 * slope(t, v):+.2f} {unit}/hour over {len(v)} samples after the first minute")
s = json.load(open(sys.argv[2]))["stages"][0]
print(f'scheduled {s["scheduled"]} sent {s["sent"]} ok {s["succeeded"]} failed {s["failed"]} '
      f'missed {s.get("missed", 0)} accounted {s["accounted"]}; send lag p99 {s["send_lag_ms"]["p99"]:.3f} ms; '
      f'client saturated: {(s.get("client") or {}).get("saturated")}')
PY
