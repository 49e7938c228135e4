#!/usr/bin/env bash
# Barrage as a load generator: for each rate, a constant-rate run of
# DURATION seconds against `barrage sim --mode zero` (64-token streamed
# responses, one SSE frame per token) on the same machine. Prints, per rate:
# achieved send rate, send lag p50/p99/max, requests ok and failed (a
# failure is a run that did not keep up, whatever its achieved rate),
# frames/s, the client's CPU seconds per 1,000 successful requests, its peak
# RSS, and the simulator's CPU seconds per 1,000 requests sent.
#
#   cargo build --release -p barrage && tests/bench/loadgen.sh
#   RATES="1000 3000" DURATION=20 tests/bench/loadgen.sh
#   ARGS="--config more.yaml" tests/bench/loadgen.sh   # extra `barrage run` arguments
#   SCRAPE=1 tests/bench/loadgen.sh   # serve --metrics-listen, scraped every second
#   KEEP=1 tests/bench/loadgen.sh     # keep the run directories (their path is printed)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-target/release/barrage}
RATES=${RATES:-"1000 2000 3000 4000 5000"}
DURATION=${DURATION:-10}
TOKENS=${TOKENS:-64}
ARGS=${ARGS:-}
SCRAPE=${SCRAPE:-}
work=$(mktemp -d)
[ -z "${KEEP:-}" ] || echo "# runs in $work"
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"; [ -z "${scraper:-}" ] || kill "$scraper" 2>/dev/null || true' EXIT
if [ -n "$SCRAPE" ]; then
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    ARGS="$ARGS --metrics-listen 127.0.0.1:$port --metrics-linger 0"
    # As Prometheus would: one GET a second, whether or not a run is serving.
    (while true; do curl -s -o /dev/null "http://127.0.0.1:$port/metrics" || true; sleep 1; done) &
    scraper=$!
fi

printf '%-6s %9s %8s %8s %8s %8s %8s %10s %12s %10s %12s\n' rate achieved lag_p50 lag_p99 lag_max ok failed frames/s cpu_s/1k_ok rss_MiB sim_cpu/1k
for rate in $RATES; do
    "$BIN" sim --mode zero --port 0 >"$work/sim.out" 2>/dev/null &
    sim=$!
    for _ in $(seq 50); do grep -q listening "$work/sim.out" 2>/dev/null && break; sleep 0.1; done
    addr=$(sed -n 's/.*http:\/\/\([^ ]*\).*/\1/p' "$work/sim.out")
    sim_cpu0=$(awk '{print $14+$15}' /proc/$sim/stat)
    python3 - "$BIN" "$addr" "$rate" "$DURATION" "$TOKENS" "$work/run-$rate" "$ARGS" >"$work/usage" <<'PY'
import resource, shlex, subprocess, sys
bin_, addr, rate, duration, tokens, out, args = sys.argv[1:]
subprocess.run([bin_, "run", "--quiet", "--target", f"http://{addr}", "--rate", rate, "--shape", "constant",
                "--duration", duration, "--max-tokens", tokens, "--prompt-tokens", "16", "--output", out]
               + shlex.split(args), stdout=subprocess.DEVNULL)
u = resource.getrusage(resource.RUSAGE_CHILDREN)
print(u.ru_utime + u.ru_stime, u.ru_maxrss / 1024)
PY
    sim_cpu1=$(awk '{print $14+$15}' /proc/$sim/stat)
    kill -TERM $sim; wait $sim 2>/dev/null || true
    read -r cpu rss <"$work/usage"
    python3 - "$work/run-$rate/summary.json" "$rate" "$cpu" "$rss" "$sim_cpu0" "$sim_cpu1" "$TOKENS" <<'PY'
import json, os, sys
path, rate, cpu, rss, s0, s1, tokens = sys.argv[1:]
s = json.load(open(path))["stages"][0]
lag = s["send_lag_ms"]
ok, failed = s["succeeded"], s["failed"]
frames = ok * (int(tokens) + 3) / max(s["sent"] / s["achieved_rate"], 1e-9)
tick = os.sysconf("SC_CLK_TCK")
sim_cpu = (float(s1) - float(s0)) / tick
print(f'{rate:<6} {s["achieved_rate"]:9.1f} {lag["p50"]:8.3f} {lag["p99"]:8.3f} {lag["max"]:8.3f} {ok:8d} {failed:8d} {frames:10.0f} '
      f'{1000 * float(cpu) / max(ok, 1):12.3f} {float(rss):10.1f} {1000 * sim_cpu / max(s["sent"], 1):12.3f}')
for error, n in sorted(s.get("errors", {}).items(), key=lambda e: -e[1])[:3]:
    print(f'       {n} × {error[:150]}')
PY
done
